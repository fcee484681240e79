import type { Logger } from "pino";
import type { Queryable } from "../db/rows";
import type { EngineEvent } from "../engine/types";
import type { SecretScrubber } from "../secrets/scrubber";

/** An attempt's engine events on their way to the database, scrubbed as they arrive. */
export interface EventSink {
  push: (e: EngineEvent) => void;
  /** Writes everything pushed so far. */
  flush: () => Promise<void>;
  /** Waits for writes in flight and hands back what is not written yet (for the final statement). */
  drain: () => Promise<EngineEvent[]>;
}

/** Engine events reach the database (and the event stream) at most this long after they happen. */
const EVENT_WRITE_DELAY_MS = 250;

/**
 * Engine callbacks are synchronous; events are collected for up to EVENT_WRITE_DELAY_MS and written
 * as one multi-row insert, one write at a time, so their ids follow commit order and a stream
 * reading "after id N" never skips one. What is still collected when the engine call ends goes
 * into the operation's final statement.
 */
export function eventSink(
  log: Logger,
  db: Queryable,
  operationId: string,
  scrubber: SecretScrubber,
): EventSink {
  let pending: EngineEvent[] = [];
  let writing: Promise<void> | undefined;
  let timer: NodeJS.Timeout | undefined;
  const write = () => {
    timer = undefined;
    if (writing || pending.length === 0) return;
    const batch = pending;
    pending = [];
    writing = db
      .query(insertEventsSql("$1", "$2"), [operationId, eventsJson(batch)])
      .then(
        () => undefined,
        (err: Error) => log.warn({ operationId, err: err.message }, "events not recorded"),
      )
      .finally(() => {
        writing = undefined;
        if (pending.length > 0) schedule();
      });
  };
  const schedule = () => {
    timer ??= setTimeout(write, EVENT_WRITE_DELAY_MS);
  };
  const settled = async () => {
    clearTimeout(timer);
    timer = undefined;
    while (writing) await writing;
  };
  return {
    push: (e: EngineEvent) => {
      pending.push({
        type: e.type,
        message: e.message && scrubber.text(e.message),
        data: scrubber.value(e.data),
      });
      schedule();
    },
    flush: async () => {
      await settled();
      write();
      await settled();
    },
    drain: async () => {
      await settled();
      const rest = pending;
      pending = [];
      return rest;
    },
  };
}

/** Events as the JSON array `insertEventsSql` reads. */
export function eventsJson(events: EngineEvent[]): string {
  return JSON.stringify(
    events.map((e) => ({ type: e.type, message: e.message ?? null, data: e.data ?? null })),
  );
}

/** Inserts a JSON array of events in array order (so their ids follow it), as one statement. */
export function insertEventsSql(operationParam: string, eventsParam: string): string {
  return `insert into toolbox_operation_events (operation_id, type, message, data)
     select ${operationParam}::uuid, t.type, t.message, t.data
     from rows from (jsonb_to_recordset(${eventsParam}::jsonb) as (type text, message text, data jsonb))
       with ordinality as t(type, message, data, ord)
     order by t.ord`;
}
