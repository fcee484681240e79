// The edge's side of the lanes: getting a server's shared lane or a lane of a session's own, the
// in-flight cap per server, and the fan-out of server-initiated notifications to the sessions and
// listen streams that want them. A lane that cannot be had becomes a Refusal naming the cause.
import type { Logger } from "pino";
import type { GatewayDeps, GatewayServer } from "./deps";
import type { JsonRpcNotification, Lane } from "../upstream/types";
import { ErrorCodes, UpstreamUnavailable } from "../upstream/types";
import { AGGREGATE, isObject, Refusal } from "./protocol";

/** Something that takes notifications of a server's shared lane: a session or a listen stream. */
export interface Subscriber {
  offer(n: JsonRpcNotification, server: string): void;
  /** The server's shared lane was replaced (restart): subscriptions made on `old` are gone. */
  laneReplaced?(server: string, old: Lane, lane: Lane): void;
}

/** Who listens to which endpoint (a server name, or AGGREGATE for `/mcp`). */
export class Hub {
  private readonly byEndpoint = new Map<string, Set<Subscriber>>();

  add(endpoint: string, s: Subscriber): void {
    let set = this.byEndpoint.get(endpoint);
    if (!set) this.byEndpoint.set(endpoint, (set = new Set()));
    set.add(s);
  }

  remove(endpoint: string, s: Subscriber): void {
    const set = this.byEndpoint.get(endpoint);
    if (!set) return;
    set.delete(s);
    if (set.size === 0) this.byEndpoint.delete(endpoint);
  }

  /** Whether anyone would hear a notification of this server. */
  interested(server: string): boolean {
    return this.byEndpoint.has(server) || this.byEndpoint.has(AGGREGATE);
  }

  /** A notification of `server`'s shared lane: its subscribers, and `/mcp` for tool list changes. */
  deliver(server: string, n: JsonRpcNotification): void {
    for (const s of [...(this.byEndpoint.get(server) ?? [])]) s.offer(n, server);
    if (n.method === "notifications/tools/list_changed")
      for (const s of [...(this.byEndpoint.get(AGGREGATE) ?? [])]) s.offer(n, server);
  }

  replaced(server: string, old: Lane, lane: Lane): void {
    for (const s of [...(this.byEndpoint.get(server) ?? [])]) s.laneReplaced?.(server, old, lane);
  }

  count(endpoint: string): number {
    return this.byEndpoint.get(endpoint)?.size ?? 0;
  }
}

const LIST_CHANGED = ["tools", "prompts", "resources"] as const;

export class Upstreams {
  private readonly attached = new Map<string, { lane: Lane; off: () => void }>();
  private readonly seen = new WeakSet<Lane>();
  private readonly ended = new WeakSet<Lane>();
  private readonly inFlight = new Map<string, number>();
  private readonly retries = new Map<string, NodeJS.Timeout>();
  private stopped = false;

  constructor(
    private readonly deps: GatewayDeps,
    private readonly hub: Hub,
    private readonly log: Logger,
  ) {}

  /** Whether a lane is still up (it has not reported its end). */
  isOpen(lane: Lane): boolean {
    return !this.ended.has(lane);
  }

  /** The server's shared lane, connected; a Refusal naming the cause when it cannot be had. */
  async shared(server: GatewayServer): Promise<Lane> {
    if (!server.running) throw stoppedRefusal(server.name);
    let lane: Lane;
    try {
      lane = await server.supervisor.lane(this.deps.limits.connectTimeoutMs);
    } catch (err) {
      throw this.unavailable(err, server.name);
    }
    this.watch(lane);
    this.attach(server.name, lane);
    return lane;
  }

  /** A lane of a session's own (isolation `per_session`); the DTMA caps them (503 when refused). */
  async own(server: GatewayServer): Promise<Lane> {
    if (!server.running) throw stoppedRefusal(server.name);
    let lane: Lane;
    try {
      lane = await server.supervisor.openSessionLane(this.deps.limits.connectTimeoutMs);
    } catch (err) {
      const r = this.unavailable(err, server.name);
      throw new Refusal(
        503,
        r.code,
        `no lane of its own for this session on server "${server.name}": ${r.message}`,
        r.data,
        r.headers ?? { "retry-after": "5" },
      );
    }
    this.watch(lane);
    return lane;
  }

  /** Takes one of the server's in-flight places (503 with Retry-After when none is left). */
  slot(server: string): () => void {
    const n = this.inFlight.get(server) ?? 0;
    const max = this.deps.limits.maxInFlightPerServer;
    if (n >= max) {
      const r = new Refusal(
        503,
        ErrorCodes.Unavailable,
        `server "${server}" has ${n} calls in flight, its limit (maxInFlightPerServer); retry shortly`,
        { server, inFlight: n },
        { "retry-after": "1" },
      );
      r.outcome = "limited";
      throw r;
    }
    this.inFlight.set(server, n + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.inFlight.get(server) ?? 1) - 1;
      if (left > 0) this.inFlight.set(server, left);
      else this.inFlight.delete(server);
    };
  }

  inFlightByServer(): Record<string, number> {
    return Object.fromEntries(this.inFlight);
  }

  close(): void {
    this.stopped = true;
    for (const t of this.retries.values()) clearTimeout(t);
    this.retries.clear();
    for (const { off } of this.attached.values()) off();
    this.attached.clear();
  }

  private watch(lane: Lane): void {
    if (this.seen.has(lane)) return;
    this.seen.add(lane);
    lane.closed.then(
      () => this.ended.add(lane),
      () => this.ended.add(lane),
    );
  }

  /** One listener per shared lane; a new lane for a server replaces the old one's listener. */
  private attach(server: string, lane: Lane): void {
    if (this.stopped) return;
    const current = this.attached.get(server);
    if (current?.lane === lane) return;
    current?.off();
    const off = lane.onNotification((n) => this.hub.deliver(server, n));
    this.attached.set(server, { lane, off });
    const settle = () => this.sharedEnded(server, lane);
    lane.closed.then(settle, settle);
    if (current) {
      // A restarted server: its lists may differ, and subscriptions made on the old lane are gone.
      this.hub.replaced(server, current.lane, lane);
      const caps = lane.initialize.capabilities;
      for (const kind of LIST_CHANGED) {
        const cap = caps[kind];
        if (isObject(cap) && cap.listChanged === true)
          this.hub.deliver(server, {
            jsonrpc: "2.0",
            method: `notifications/${kind}/list_changed`,
          });
      }
    }
  }

  /** The shared lane ended: while anyone listens, get the next one (with backoff) to keep hearing. */
  private sharedEnded(server: string, lane: Lane): void {
    const current = this.attached.get(server);
    if (current?.lane !== lane) return;
    current.off();
    this.reattach(server, 500);
  }

  private reattach(server: string, delayMs: number): void {
    if (this.stopped || this.retries.has(server) || !this.hub.interested(server)) return;
    const t = setTimeout(() => {
      this.retries.delete(server);
      const s = this.deps.servers.get(server);
      if (this.stopped || !s || !s.running || !this.hub.interested(server)) return;
      this.shared(s).catch((err: unknown) => {
        const hint = err instanceof Refusal ? retryAfterMs(err) : undefined;
        this.reattach(server, Math.min(30_000, Math.max(hint ?? 0, delayMs * 2)));
      });
    }, delayMs);
    t.unref();
    this.retries.set(server, t);
  }

  private unavailable(err: unknown, server: string): Refusal {
    if (err instanceof UpstreamUnavailable) {
      const hard = err.state === "stopped" || err.state === "crash_loop";
      const retry =
        err.retryAfterSeconds !== undefined
          ? String(Math.max(1, Math.ceil(err.retryAfterSeconds)))
          : undefined;
      return new Refusal(
        hard ? 503 : 200,
        ErrorCodes.Unavailable,
        `server "${server}" is unavailable (${err.state}): ${err.message}`,
        {
          server,
          state: err.state,
          ...(err.retryAfterSeconds !== undefined
            ? { retryAfterSeconds: err.retryAfterSeconds }
            : {}),
        },
        hard && retry ? { "retry-after": retry } : undefined,
      );
    }
    this.log.warn(
      { server, error: err instanceof Error ? err.name : typeof err },
      "server lane failed",
    );
    return new Refusal(503, ErrorCodes.Unavailable, `server "${server}" is unavailable`, {
      server,
    });
  }
}

function stoppedRefusal(server: string): Refusal {
  return new Refusal(503, ErrorCodes.Unavailable, `server "${server}" is stopped`, {
    server,
    state: "stopped",
  });
}

function retryAfterMs(r: Refusal): number | undefined {
  const header = r.headers?.["retry-after"];
  if (header !== undefined) return Number(header) * 1000;
  const data = r.data;
  return isObject(data) && typeof data.retryAfterSeconds === "number"
    ? data.retryAfterSeconds * 1000
    : undefined;
}

/** Makes a subscription again on a server's new lane (the old one ended with the process). */
export function resubscribe(
  subs: Map<string, Lane>,
  uri: string,
  lane: Lane,
  ended: () => boolean,
  timeoutMs: number,
): void {
  const opts = { timeoutMs };
  lane.subscribe(uri, opts).then(
    (o) => {
      if (!("result" in o)) subs.delete(uri);
      else if (ended()) void lane.unsubscribe(uri, opts);
      else subs.set(uri, lane);
    },
    () => subs.delete(uri),
  );
}
