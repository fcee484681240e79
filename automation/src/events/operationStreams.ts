import type { ServerResponse } from "node:http";
import type { Pool } from "pg";
import { HttpError } from "../auth/auth";
import { Listener } from "../db/listener";

// Operations' event streams (issue 13, item 9; decision 0030). Each stream used to query
// Postgres every 250 ms for as long as it was open: 1,500 listeners were 6,000 queries a second
// and +80 MB of RSS that stayed. Now one LISTEN connection per process hears migration 7's
// triggers (an operation's events written, its status changed), and each operation that has
// listeners is read once per wake — events and status in one statement — for all of them. An
// idle stream costs a keep-alive comment every 15 s and no query. While the LISTEN connection is
// down every open operation is read each `fallbackPollMs`, and once more when it is back.

/** Channel of migration 7's triggers; the payload is the operation's id. */
export const OPERATION_EVENTS_CHANNEL = "agentopia_toolbox_operation_events";

const PAGE = 500;
const KEEP_ALIVE_MS = 15_000;
/** A client this far behind (bytes buffered for it) is cut off; it may resume with Last-Event-ID. */
const MAX_BUFFERED = 1 << 20;

export interface StreamLimits {
  /** Streams one user's sessions may hold at once. */
  perUser: number;
  /** Streams the service token may hold at once. */
  perService: number;
}

interface Subscriber {
  res: ServerResponse;
  after: bigint;
  release(): void;
}

interface Topic {
  subs: Set<Subscriber>;
  reading: boolean;
  again: boolean;
}

interface EventJson {
  id: string;
  at: string;
  type: string;
  message: string | null;
  data: unknown;
}

type Log = { warn(obj: object, msg: string): void };

export interface OperationStreamsOptions {
  pool: Pool;
  log: Log;
  /** LISTEN on this database; absent: every open operation is read each fallbackPollMs. */
  connectionString?: string;
  fallbackPollMs: number;
  limits: StreamLimits;
}

export class OperationStreams {
  private readonly topics = new Map<string, Topic>();
  private readonly held = new Map<string, number>();
  private readonly listener?: Listener;
  private timers: NodeJS.Timeout[] = [];

  constructor(private readonly opts: OperationStreamsOptions) {
    if (opts.connectionString) {
      this.listener = new Listener({
        connectionString: opts.connectionString,
        channel: OPERATION_EVENTS_CHANNEL,
        log: opts.log,
        onNotify: (id) => this.wake(id),
        onConnected: () => this.wakeAll(),
      });
    }
  }

  async start(): Promise<void> {
    await this.listener?.start();
    const poll = setInterval(() => {
      if (!this.listener?.connected) this.wakeAll();
    }, this.opts.fallbackPollMs);
    const keepAlive = setInterval(() => {
      for (const topic of this.topics.values())
        for (const sub of topic.subs) this.write(sub, ": keep-alive\n\n");
    }, KEEP_ALIVE_MS);
    this.timers = [poll, keepAlive];
    for (const t of this.timers) t.unref();
  }

  /** Ends every stream (without `end`: the operation goes on; clients resume). */
  async stop(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    for (const topic of this.topics.values()) for (const sub of topic.subs) this.close(sub);
    this.topics.clear();
    await this.listener?.stop();
  }

  /** Open streams, for metrics and tests. */
  get open(): number {
    let n = 0;
    for (const topic of this.topics.values()) n += topic.subs.size;
    return n;
  }

  /**
   * Takes one of the principal's stream slots, or refuses with 429 too_many_streams. The slot is
   * given back when the stream closes; call the returned function if it never opens.
   */
  reserve(principal: { kind: "service" } | { kind: "user"; userId: string }): () => void {
    const key = principal.kind === "service" ? "service" : `user:${principal.userId}`;
    const limit =
      principal.kind === "service" ? this.opts.limits.perService : this.opts.limits.perUser;
    const now = this.held.get(key) ?? 0;
    if (now >= limit) {
      throw new HttpError(
        429,
        "too_many_streams",
        `${limit} event streams are open for this ${principal.kind === "service" ? "token" : "user"}; close one first`,
        undefined,
        { "retry-after": "5" },
      );
    }
    this.held.set(key, now + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.held.get(key) ?? 1) - 1;
      if (left > 0) this.held.set(key, left);
      else this.held.delete(key);
    };
  }

  /**
   * Streams the operation's events after `after` (an event id, "0" for all) to `res`, whose
   * head is already written, then `end` with the final status; gives the slot back on close.
   */
  subscribe(operationId: string, after: string, res: ServerResponse, release: () => void): void {
    const sub: Subscriber = { res, after: BigInt(after), release };
    let topic = this.topics.get(operationId);
    if (!topic) {
      topic = { subs: new Set(), reading: false, again: false };
      this.topics.set(operationId, topic);
    }
    topic.subs.add(sub);
    res.on("close", () => this.unsubscribe(operationId, sub));
    this.wake(operationId);
  }

  private unsubscribe(operationId: string, sub: Subscriber): void {
    sub.release();
    const topic = this.topics.get(operationId);
    if (!topic) return;
    topic.subs.delete(sub);
    if (topic.subs.size === 0 && !topic.reading) this.topics.delete(operationId);
  }

  private wakeAll(): void {
    for (const id of this.topics.keys()) this.wake(id);
  }

  /** Reads the operation for all its listeners; a wake during a read makes it read again. */
  private wake(operationId: string): void {
    const topic = this.topics.get(operationId);
    if (!topic) return;
    if (topic.reading) {
      topic.again = true;
      return;
    }
    topic.reading = true;
    void this.read(operationId, topic).finally(() => {
      topic.reading = false;
      if (topic.subs.size === 0) this.topics.delete(operationId);
    });
  }

  private async read(operationId: string, topic: Topic): Promise<void> {
    try {
      do {
        topic.again = false;
        if (topic.subs.size === 0) return;
        let from: bigint | undefined;
        for (const s of topic.subs) if (from === undefined || s.after < from) from = s.after;
        const { rows } = await this.opts.pool.query<{ status: string; events: EventJson[] }>(
          `select o.status,
             coalesce((select json_agg(json_build_object('id', e.id::text, 'at', e.at,
                 'type', e.type, 'message', e.message, 'data', e.data) order by e.id)
               from (select * from toolbox_operation_events
                     where operation_id = o.id and id > $2 order by id limit $3) e),
               '[]'::json) as events
           from toolbox_operations o where o.id = $1`,
          [operationId, String(from), PAGE],
        );
        const status = rows[0]?.status;
        const events = rows[0]?.events ?? [];
        for (const e of events) {
          const id = BigInt(e.id);
          const text = `id: ${e.id}\nevent: ${e.type}\ndata: ${JSON.stringify({
            type: e.type,
            message: e.message,
            data: e.data,
            at: new Date(e.at),
          })}\n\n`;
          for (const sub of topic.subs) {
            if (id > sub.after) {
              this.write(sub, text);
              sub.after = id;
            }
          }
        }
        if (events.length === PAGE) topic.again = true;
        else if (status === undefined || status === "succeeded" || status === "failed") {
          const end = `event: end\ndata: ${JSON.stringify({ status: status ?? "unknown" })}\n\n`;
          for (const sub of topic.subs) {
            this.write(sub, end);
            this.close(sub);
          }
          topic.subs.clear();
          return;
        }
      } while (topic.again);
    } catch (err) {
      this.opts.log.warn(
        { operationId, err: (err as Error).message },
        "event streams of an operation ended early",
      );
      for (const sub of topic.subs) this.close(sub);
      topic.subs.clear();
    }
  }

  private write(sub: Subscriber, text: string): void {
    if (sub.res.writableLength > MAX_BUFFERED) sub.res.destroy();
    else if (!sub.res.writableEnded) sub.res.write(text);
  }

  private close(sub: Subscriber): void {
    sub.release();
    sub.res.end();
  }
}
