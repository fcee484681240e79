import type { Queryable } from "../db/rows";
import type { StreamSource } from "../events/eventStreams";

/** An event of a fleet operation (an upgrade or a reconciliation run), as its stream sends it. */
export interface FleetEvent {
  type: string;
  message?: string;
  data?: unknown;
}

/** Writes events in array order (their ids follow it), as one statement. */
export async function addFleetEvents(
  db: Queryable,
  operationId: string,
  events: FleetEvent[],
): Promise<void> {
  if (events.length === 0) return;
  await db.query(
    `insert into fleet_operation_events (operation_id, type, message, data)
     select $1::uuid, t.type, t.message, t.data
     from rows from (jsonb_to_recordset($2::jsonb) as (type text, message text, data jsonb))
       with ordinality as t(type, message, data, ord)
     order by t.ord`,
    [
      operationId,
      JSON.stringify(
        events.map((e) => ({ type: e.type, message: e.message ?? null, data: e.data ?? null })),
      ),
    ],
  );
}

/**
 * A fleet operation's events, notified by migration 9's triggers (the payload is the operation's
 * id); its stream ends once it is finished (a stopped upgrade's stays open: it may be resumed).
 */
export const FLEET_EVENTS: StreamSource = {
  name: "fleet",
  operations: "fleet_operations",
  events: "fleet_operation_events",
  final: "o.finished_at is not null",
  channel: "agentopia_fleet_operation_events",
};
