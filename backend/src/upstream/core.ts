// The multiplexer both lane kinds share: lane-minted ids and progress tokens, timeouts and
// cancellation, answers for server requests, notification fan-out, ref-counted subscriptions and
// the end of the lane. The transport (stdio.ts, http.ts) only moves messages; it hands every
// message the server sends to `receive` and reports the end with `close`.
import { randomInt } from "node:crypto";
import type { Logger } from "pino";
import type { Incoming } from "./jsonrpc";
import { classify, errorOutcome, isObject, outcomeOf } from "./jsonrpc";
import type {
  CallOptions,
  CallOutcome,
  InitializeResult,
  JsonObject,
  JsonRpcErrorObject,
  JsonRpcId,
  JsonRpcNotification,
  JsonRpcRequest,
  Lane,
} from "./types";
import { ErrorCodes } from "./types";

/** The name the gateway gives itself in its own `initialize` (servers see this, never an agent). */
export const GATEWAY_CLIENT_NAME = "agentopia-toolbox-gateway";
/** The version the gateway asks for; the server may answer an older one it supports. */
export const GATEWAY_PROTOCOL_VERSION = "2025-11-25";
/** The sessionful-era versions a lane accepts in the server's InitializeResult. */
export const SUPPORTED_PROTOCOL_VERSIONS: readonly string[] = [
  "2025-11-25",
  "2025-06-18",
  "2025-03-26",
  "2024-11-05",
  "2024-10-07",
];

/** Notifications every `onNotification` listener gets (`notifications/message` only with forwardLogs). */
const SERVER_WIDE = new Set([
  "notifications/tools/list_changed",
  "notifications/prompts/list_changed",
  "notifications/resources/list_changed",
  "notifications/resources/updated",
]);

/** What a lane dropped or answered on its own; counters only (never contents). */
export interface LaneStats {
  /** Lines or events that were not JSON or not JSON-RPC. */
  invalid: number;
  /** Messages over the cap, dropped (the call each one answered got MessageTooLarge). */
  oversized: number;
  /** Responses for no call in flight: late answers after a timeout or cancel, unknown ids. */
  unmatched: number;
  /** Requests from the server, answered by the lane (`ping` with `{}`, anything else -32601). */
  serverRequests: number;
  /** Notifications dropped: log messages on shared lanes, progress of no call, other methods. */
  droppedNotifications: number;
}

/** A lane as the lane factories return it: the contract plus its counters. */
export interface UpstreamLane extends Lane {
  readonly stats: Readonly<LaneStats>;
}

/** Options both lane kinds take. */
export interface CommonLaneOptions {
  /** The server (tool) name, as `Lane.server`. */
  server: string;
  /** The cap on one message from the server, in bytes (a stdio line, an HTTP body, an SSE event). */
  maxMessageBytes: number;
  /** The lane's creation fails when the server has not answered `initialize` within this. */
  initializeTimeoutMs: number;
  /** `clientInfo.version` in the gateway's `initialize`. Default "0.1.0". */
  clientVersion?: string;
  /**
   * Pass `notifications/message` (server logs) to listeners: for per-session lanes only.
   * Default false: shared lanes drop them, since they cannot be attributed to one session.
   */
  forwardLogs?: boolean;
  /** Lifecycle and drop counts are logged here (never a message's contents). */
  log?: Logger;
}

export interface OutgoingResponse {
  jsonrpc: "2.0";
  id: JsonRpcId;
  result?: JsonObject;
  error?: JsonRpcErrorObject;
}

/** What a lane needs from the connection underneath. */
export interface LaneTransport {
  /** Sends a request. Its answer comes back through `LaneCore.receive` (or `settle` on failure). */
  request(message: JsonRpcRequest): void;
  notify(message: JsonRpcNotification): void;
  respond(message: OutgoingResponse): void;
  /**
   * The gateway stopped waiting for this call (cancel, timeout). Returns true when the request
   * never left the gateway (still queued), so no `notifications/cancelled` is needed.
   */
  withdraw(id: number): boolean;
  /** The lane ended: release the connection. */
  shutdown(reason: string): void;
}

interface Pending {
  id: number;
  method: string;
  resolve: (outcome: CallOutcome) => void;
  timer: NodeJS.Timeout;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  /** The caller's token, restored on progress; undefined when the call asked for none. */
  callerToken: string | number | undefined;
  onProgress: ((params: JsonObject) => void) | undefined;
}

interface Subscription {
  holders: number;
  /** Callers waiting for the one upstream `resources/subscribe` in flight, or null once it is done. */
  waiting: Set<(outcome: CallOutcome) => void> | null;
}

/** A delay Node's timers accept: below 0 is now, above 2^31−1 ms would fire at once. */
export function timerMs(ms: number): number {
  return Number.isFinite(ms) ? Math.min(Math.max(0, ms), 2_147_483_647) : 2_147_483_647;
}

function bounded(text: string, max = 200): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

function validInitializeResult(value: JsonObject): value is InitializeResult {
  const info = value.serverInfo;
  return (
    typeof value.protocolVersion === "string" &&
    isObject(value.capabilities) &&
    isObject(info) &&
    typeof info.name === "string" &&
    typeof info.version === "string" &&
    (value.instructions === undefined || typeof value.instructions === "string")
  );
}

export class LaneCore implements UpstreamLane {
  readonly server: string;
  readonly stats: LaneStats = {
    invalid: 0,
    oversized: 0,
    unmatched: 0,
    serverRequests: 0,
    droppedNotifications: 0,
  };
  readonly closed: Promise<string>;

  private transport: LaneTransport | null = null;
  private init: InitializeResult | null = null;
  /** Opaque ids: a random start, so a re-attached process's late answers never match. */
  private nextId = randomInt(1, 2 ** 30);
  private readonly pending = new Map<number, Pending>();
  private readonly listeners = new Set<(n: JsonRpcNotification) => void>();
  private readonly subscriptions = new Map<string, Subscription>();
  private endReason: string | null = null;
  private resolveClosed!: (reason: string) => void;

  constructor(private readonly opts: CommonLaneOptions) {
    this.server = opts.server;
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
  }

  attach(transport: LaneTransport): void {
    this.transport = transport;
  }

  get initialize(): InitializeResult {
    if (this.init === null) throw new Error("the lane is not initialized");
    return this.init;
  }

  /** The negotiated protocol version once initialized (http: the MCP-Protocol-Version header). */
  get protocolVersion(): string | undefined {
    return this.init?.protocolVersion;
  }

  get inFlight(): number {
    return this.pending.size;
  }

  get ended(): boolean {
    return this.endReason !== null;
  }

  /** Runs the gateway's own `initialize` and `notifications/initialized`; throws (lane closed) on failure. */
  async handshake(): Promise<void> {
    const timeoutMs = this.opts.initializeTimeoutMs;
    const outcome = await this.call(
      "initialize",
      {
        protocolVersion: GATEWAY_PROTOCOL_VERSION,
        capabilities: {},
        clientInfo: { name: GATEWAY_CLIENT_NAME, version: this.opts.clientVersion ?? "0.1.0" },
      },
      { timeoutMs },
    );
    let failure: string | null = null;
    if ("error" in outcome) {
      if (this.endReason !== null) failure = `${this.endReason} before initializing`;
      else if (outcome.error.code === ErrorCodes.RequestTimeout)
        failure = `the server did not answer initialize within ${timeoutMs} ms`;
      else failure = `initialize failed: ${bounded(outcome.error.message)}`;
    } else if (!validInitializeResult(outcome.result)) {
      failure = "the server's initialize result is malformed";
    } else if (!SUPPORTED_PROTOCOL_VERSIONS.includes(outcome.result.protocolVersion)) {
      failure = `the server answered an unsupported protocol version (${bounded(outcome.result.protocolVersion, 40)})`;
    } else {
      this.init = outcome.result;
    }
    if (failure !== null) {
      this.close(failure);
      throw new Error(failure);
    }
    this.transport?.notify({ jsonrpc: "2.0", method: "notifications/initialized" });
    this.opts.log?.info(
      { server: this.server, protocolVersion: this.init?.protocolVersion },
      "upstream lane initialized",
    );
  }

  /** Takes a previous InitializeResult (the same process, still running): no handshake. */
  adopt(result: InitializeResult): void {
    this.init = result;
  }

  call(method: string, params: JsonObject | undefined, opts: CallOptions): Promise<CallOutcome> {
    if (method === "ping") return Promise.resolve({ result: {} });
    if (this.endReason !== null || this.transport === null) {
      return Promise.resolve(
        errorOutcome(
          ErrorCodes.Unavailable,
          `the lane is closed: ${this.endReason ?? "not attached"}`,
        ),
      );
    }
    if (opts.signal?.aborted) {
      return Promise.resolve(errorOutcome(ErrorCodes.Cancelled, "the request was cancelled"));
    }
    const id = this.nextId++;
    const meta = isObject(params?._meta) ? params._meta : undefined;
    const callerToken =
      opts.progressToken ??
      (typeof meta?.progressToken === "string" || typeof meta?.progressToken === "number"
        ? meta.progressToken
        : undefined);
    let sent = params;
    if (meta !== undefined || callerToken !== undefined) {
      // The caller's token never reaches the server; the lane's id stands in for it.
      const rest: JsonObject = { ...meta };
      delete rest.progressToken;
      const outMeta: JsonObject = callerToken === undefined ? rest : { ...rest, progressToken: id };
      sent = { ...(params ?? {}), _meta: outMeta };
    }
    const transport = this.transport;
    return new Promise<CallOutcome>((resolve) => {
      const p: Pending = {
        id,
        method,
        resolve,
        timer: setTimeout(
          () =>
            this.giveUp(
              id,
              ErrorCodes.RequestTimeout,
              `no answer within ${opts.timeoutMs} ms`,
              "timeout",
            ),
          timerMs(opts.timeoutMs),
        ),
        signal: opts.signal,
        onAbort: undefined,
        callerToken,
        onProgress: opts.onProgress,
      };
      if (opts.signal) {
        p.onAbort = () =>
          this.giveUp(id, ErrorCodes.Cancelled, "the request was cancelled", "cancelled");
        opts.signal.addEventListener("abort", p.onAbort, { once: true });
      }
      this.pending.set(id, p);
      const message: JsonRpcRequest = { jsonrpc: "2.0", id, method };
      if (sent !== undefined) message.params = sent;
      transport.request(message);
    });
  }

  onNotification(listener: (n: JsonRpcNotification) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  subscribe(uri: string, opts: CallOptions): Promise<CallOutcome> {
    if (this.endReason !== null) return this.call("resources/subscribe", { uri }, opts);
    const existing = this.subscriptions.get(uri);
    if (existing && existing.waiting === null) {
      existing.holders++;
      return Promise.resolve({ result: {} });
    }
    let sub = existing;
    if (!sub) {
      const fresh: Subscription = { holders: 0, waiting: new Set() };
      sub = fresh;
      this.subscriptions.set(uri, fresh);
      void this.call("resources/subscribe", { uri }, { timeoutMs: opts.timeoutMs }).then(
        (outcome) => {
          const waiting = fresh.waiting ?? new Set();
          fresh.waiting = null;
          if ("result" in outcome) {
            fresh.holders += waiting.size;
            if (fresh.holders === 0) {
              // Everyone gave up while it was in flight: take it back.
              this.subscriptions.delete(uri);
              if (this.endReason === null)
                void this.call("resources/unsubscribe", { uri }, { timeoutMs: opts.timeoutMs });
            }
          } else if (this.subscriptions.get(uri) === fresh) {
            this.subscriptions.delete(uri);
          }
          for (const w of waiting) w(outcome);
        },
      );
    }
    const waiting = sub.waiting!;
    return new Promise<CallOutcome>((resolve) => {
      const finish = (outcome: CallOutcome): void => {
        clearTimeout(timer);
        opts.signal?.removeEventListener("abort", onAbort);
        waiting.delete(finish);
        resolve(outcome);
      };
      const timer = setTimeout(
        () =>
          finish(errorOutcome(ErrorCodes.RequestTimeout, `no answer within ${opts.timeoutMs} ms`)),
        timerMs(opts.timeoutMs),
      );
      const onAbort = (): void =>
        finish(errorOutcome(ErrorCodes.Cancelled, "the request was cancelled"));
      if (opts.signal?.aborted) return onAbort();
      opts.signal?.addEventListener("abort", onAbort, { once: true });
      waiting.add(finish);
    });
  }

  unsubscribe(uri: string, opts: CallOptions): Promise<CallOutcome> {
    const sub = this.subscriptions.get(uri);
    // Not held (or not confirmed yet): nothing of this caller's to take back upstream.
    if (!sub || sub.waiting !== null || sub.holders === 0) return Promise.resolve({ result: {} });
    sub.holders--;
    if (sub.holders > 0) return Promise.resolve({ result: {} });
    this.subscriptions.delete(uri);
    return this.call("resources/unsubscribe", { uri }, opts);
  }

  /** How many subscribers hold `uri` (for tests and status). */
  subscribers(uri: string): number {
    return this.subscriptions.get(uri)?.holders ?? 0;
  }

  close(reason: string): void {
    if (this.endReason !== null) return;
    this.endReason = reason;
    const calls = [...this.pending.values()];
    this.pending.clear();
    for (const p of calls) this.finish(p, errorOutcome(ErrorCodes.InternalError, reason));
    this.subscriptions.clear();
    this.listeners.clear();
    try {
      this.transport?.shutdown(reason);
    } finally {
      this.opts.log?.info(
        { server: this.server, reason, stats: this.stats },
        "upstream lane closed",
      );
      this.resolveClosed(reason);
    }
  }

  /** Answers a call in flight from the gateway's side (a transport failure); false if not in flight. */
  settle(id: number, outcome: CallOutcome): boolean {
    const p = this.pending.get(id);
    if (!p) return false;
    this.finish(p, outcome);
    return true;
  }

  /** Whether the lane still waits for this id. */
  waitsFor(id: number): boolean {
    return this.pending.has(id);
  }

  /** A message over the cap was dropped; `id` is the response id found at its edges, if any. */
  oversized(id: number | undefined): void {
    this.stats.oversized++;
    if (id !== undefined) {
      this.settle(
        id,
        errorOutcome(
          ErrorCodes.MessageTooLarge,
          `the server's message exceeded ${this.opts.maxMessageBytes} bytes`,
        ),
      );
    }
  }

  /** One parsed message from the server. */
  receive(value: unknown): void {
    if (this.endReason !== null) return;
    const incoming: Incoming = classify(value);
    switch (incoming.kind) {
      case "invalid":
        this.stats.invalid++;
        return;
      case "response": {
        const { id } = incoming.message;
        if (typeof id !== "number" || !this.settle(id, outcomeOf(incoming.message))) {
          this.stats.unmatched++;
        }
        return;
      }
      case "request": {
        const { id, method } = incoming.message;
        this.stats.serverRequests++;
        // The gateway declared no client capabilities: only ping can be served.
        this.transport?.respond(
          method === "ping"
            ? { jsonrpc: "2.0", id, result: {} }
            : {
                jsonrpc: "2.0",
                id,
                error: { code: ErrorCodes.MethodNotFound, message: "Method not found" },
              },
        );
        return;
      }
      case "notification":
        this.notification(incoming.message);
    }
  }

  private notification(n: JsonRpcNotification): void {
    if (n.method === "notifications/progress") {
      const token = n.params?.progressToken;
      const p = typeof token === "number" ? this.pending.get(token) : undefined;
      if (!p || p.callerToken === undefined || !n.params) {
        this.stats.droppedNotifications++;
        return;
      }
      if (p.onProgress) {
        const params: JsonObject = { ...n.params, progressToken: p.callerToken };
        try {
          p.onProgress(params);
        } catch (err) {
          this.opts.log?.warn({ server: this.server, err }, "a progress listener threw");
        }
      }
      return;
    }
    if (
      SERVER_WIDE.has(n.method) ||
      (n.method === "notifications/message" && this.opts.forwardLogs === true)
    ) {
      const out: JsonRpcNotification = { jsonrpc: "2.0", method: n.method };
      if (n.params !== undefined) out.params = n.params;
      for (const listener of [...this.listeners]) {
        try {
          listener(out);
        } catch (err) {
          this.opts.log?.warn({ server: this.server, err }, "a notification listener threw");
        }
      }
      return;
    }
    // notifications/cancelled for a request of the server's (already answered), logs on a
    // shared lane, anything else.
    this.stats.droppedNotifications++;
  }

  private giveUp(id: number, code: number, message: string, reason: string): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.finish(p, errorOutcome(code, message));
    const unsent = this.transport?.withdraw(id) ?? true;
    // The specification forbids cancelling initialize.
    if (!unsent && p.method !== "initialize" && this.endReason === null) {
      this.transport?.notify({
        jsonrpc: "2.0",
        method: "notifications/cancelled",
        params: { requestId: id, reason },
      });
    }
  }

  private finish(p: Pending, outcome: CallOutcome): void {
    clearTimeout(p.timer);
    if (p.onAbort) p.signal?.removeEventListener("abort", p.onAbort);
    this.pending.delete(p.id);
    p.resolve(outcome);
  }
}
