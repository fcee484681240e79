import type { ServerResponse } from "node:http";
import type { FastifyReply, FastifyRequest } from "fastify";
import type { Pool } from "pg";
import { HttpError, type Principal } from "../auth/auth";
import { Listener } from "../db/listener";

// Event streams of operations and fleet operations (issue 13, item 9; decision 0030). Each stream
// used to query Postgres every 250 ms for as long as it was open: 1,500 listeners were 6,000
// queries a second and +80 MB of RSS that stayed. Now a source whose writes are notified (the
// operations': migration 7's triggers, on an operation's events written and its status changed)
// is heard on one LISTEN connection per process, and each operation that has listeners is read
// once per wake — events and status in one statement — for all of them. An idle stream costs a
// keep-alive comment every 15 s and no query. A source without notifications (the fleet's), and
// any source while its LISTEN connection is down, is read each `fallbackPollMs` for each of its
// operations that has listeners, and once more when the connection is back.

/** Where a stream's events are: an operations table and its events table, which are alike. */
export interface StreamSource {
  /** Keeps its operations apart from other sources' (an id is unique within its table). */
  readonly name: string;
  /** Table of the operations, with `id` and `status`. */
  readonly operations: string;
  /** Table of their events: `id` (ascending), `operation_id`, `at`, `type`, `message`, `data`. */
  readonly events: string;
  /** SQL over the operation `o` that is true once it is final (then its stream ends). */
  readonly final: string;
  /** Channel notified with the operation's id on every write of its events and its status. */
  readonly channel?: string;
}

const PAGE = 500;
const KEEP_ALIVE_MS = 15_000;
/** A client this far behind (bytes buffered for it) is cut off; it may resume with Last-Event-ID. */
const MAX_BUFFERED = 1 << 20;

interface StreamLimits {
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
  source: StreamSource;
  id: string;
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

export interface EventStreamsOptions {
  pool: Pool;
  log: Log;
  /** Every source streams may follow (the notified ones are listened to). */
  sources: readonly StreamSource[];
  /** LISTEN on this database; absent: every open operation is read each fallbackPollMs. */
  connectionString?: string;
  fallbackPollMs: number;
  limits: StreamLimits;
}

export class EventStreams {
  private readonly topics = new Map<string, Topic>();
  private readonly held = new Map<string, number>();
  private readonly listeners = new Map<string, Listener>();
  private timers: NodeJS.Timeout[] = [];

  constructor(private readonly opts: EventStreamsOptions) {
    const { connectionString } = opts;
    if (!connectionString) return;
    for (const source of opts.sources) {
      const { channel } = source;
      if (channel === undefined) continue;
      this.listeners.set(
        source.name,
        new Listener({
          connectionString,
          channel,
          log: opts.log,
          onNotify: (id) => this.wake(topicKey(source, id)),
          onConnected: () => this.wakeAll((t) => t.source === source),
        }),
      );
    }
  }

  async start(): Promise<void> {
    await Promise.all([...this.listeners.values()].map((l) => l.start()));
    const poll = setInterval(
      () => this.wakeAll((t) => !this.listeners.get(t.source.name)?.connected),
      this.opts.fallbackPollMs,
    );
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
    await Promise.all([...this.listeners.values()].map((l) => l.stop()));
  }

  /** Open streams, for metrics and tests. */
  get open(): number {
    let n = 0;
    for (const topic of this.topics.values()) n += topic.subs.size;
    return n;
  }

  /**
   * Answers with the operation's events as server-sent events: every recorded event from the
   * start (or after Last-Event-ID), then new ones as they are written anywhere, then `end` with
   * the final status. The principal holds at most so many streams at once (429 beyond).
   */
  serve(
    source: StreamSource,
    id: string,
    principal: Principal,
    req: FastifyRequest,
    reply: FastifyReply,
  ): void {
    const release = this.reserve(principal);
    const lastId = req.headers["last-event-id"];
    const after = typeof lastId === "string" && /^\d{1,18}$/.test(lastId) ? lastId : "0";
    reply.hijack();
    reply.raw.writeHead(200, {
      "content-type": "text/event-stream",
      "cache-control": "no-store",
      connection: "keep-alive",
      "x-accel-buffering": "no",
    });
    this.subscribe(source, id, after, reply.raw, release);
  }

  /**
   * Takes one of the principal's stream slots, or refuses with 429 too_many_streams. The slot is
   * given back when the stream closes.
   */
  private reserve(principal: Principal): () => void {
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
  private subscribe(
    source: StreamSource,
    id: string,
    after: string,
    res: ServerResponse,
    release: () => void,
  ): void {
    const key = topicKey(source, id);
    const sub: Subscriber = { res, after: BigInt(after), release };
    let topic = this.topics.get(key);
    if (!topic) {
      topic = { source, id, subs: new Set(), reading: false, again: false };
      this.topics.set(key, topic);
    }
    topic.subs.add(sub);
    res.on("close", () => this.unsubscribe(key, sub));
    this.wake(key);
  }

  private unsubscribe(key: string, sub: Subscriber): void {
    sub.release();
    const topic = this.topics.get(key);
    if (!topic) return;
    topic.subs.delete(sub);
    if (topic.subs.size === 0 && !topic.reading) this.topics.delete(key);
  }

  private wakeAll(which: (topic: Topic) => boolean): void {
    for (const [key, topic] of this.topics) if (which(topic)) this.wake(key);
  }

  /** Reads the operation for all its listeners; a wake during a read makes it read again. */
  private wake(key: string): void {
    const topic = this.topics.get(key);
    if (!topic) return;
    if (topic.reading) {
      topic.again = true;
      return;
    }
    topic.reading = true;
    void this.read(topic).finally(() => {
      topic.reading = false;
      if (topic.subs.size === 0) this.topics.delete(key);
    });
  }

  private async read(topic: Topic): Promise<void> {
    const { source } = topic;
    try {
      do {
        topic.again = false;
        if (topic.subs.size === 0) return;
        let from: bigint | undefined;
        for (const s of topic.subs) if (from === undefined || s.after < from) from = s.after;
        const { rows } = await this.opts.pool.query<{
          status: string;
          final: boolean;
          events: EventJson[];
        }>(
          `select o.status, (${source.final}) as final,
             coalesce((select json_agg(json_build_object('id', e.id::text, 'at', e.at,
                 'type', e.type, 'message', e.message, 'data', e.data) order by e.id)
               from (select * from ${source.events}
                     where operation_id = o.id and id > $2 order by id limit $3) e),
               '[]'::json) as events
           from ${source.operations} o where o.id = $1`,
          [topic.id, String(from), PAGE],
        );
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
        else if (rows[0] === undefined || rows[0].final) {
          const end = `event: end\ndata: ${JSON.stringify({ status: rows[0]?.status ?? "unknown" })}\n\n`;
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
        { source: source.name, operationId: topic.id, err: (err as Error).message },
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

const topicKey = (source: StreamSource, id: string) => `${source.name}:${id}`;
