// The multiplexer both lane kinds share: lane-minted ids and progress tokens, timeouts and
// cancellation, answers for server requests, notification fan-out, subscriptions (ref-counted in
// subscriptions.ts), the handshake (handshake.ts) and the end of the lane. The transport
// (stdio.ts, http.ts) only moves messages; it hands every message the server sends to `receive`
// and reports the end with `close`.
import { randomInt } from "node:crypto";
import { acceptInitialize, initializeParams } from "./handshake";
import type { Incoming } from "./jsonrpc";
import { classify, errorOutcome, isObject, outcomeOf } from "./jsonrpc";
import { Subscriptions } from "./subscriptions";
import { timerMs } from "./timers";
import type { CommonLaneOptions, LaneStats, LaneTransport, UpstreamLane } from "./transport";
import type {
  CallOptions,
  CallOutcome,
  InitializeResult,
  JsonObject,
  JsonRpcNotification,
  JsonRpcRequest,
} from "./types";
import { ErrorCodes } from "./types";

/** Notifications every `onNotification` listener gets (`notifications/message` only with forwardLogs). */
const SERVER_WIDE = new Set([
  "notifications/tools/list_changed",
  "notifications/prompts/list_changed",
  "notifications/resources/list_changed",
  "notifications/resources/updated",
]);

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
  private readonly subscriptions = new Subscriptions(
    (method, params, opts) => this.call(method, params, opts),
    () => this.endReason !== null,
  );
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
    const outcome = await this.call("initialize", initializeParams(this.opts.clientVersion), {
      timeoutMs,
    });
    const accepted =
      this.endReason !== null && "error" in outcome
        ? `${this.endReason} before initializing`
        : acceptInitialize(outcome, timeoutMs);
    if (typeof accepted === "string") {
      this.close(accepted);
      throw new Error(accepted);
    }
    this.init = accepted;
    this.transport?.notify({ jsonrpc: "2.0", method: "notifications/initialized" });
    this.opts.log?.info(
      { server: this.server, protocolVersion: accepted.protocolVersion },
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
    return this.subscriptions.subscribe(uri, opts);
  }

  unsubscribe(uri: string, opts: CallOptions): Promise<CallOutcome> {
    return this.subscriptions.unsubscribe(uri, opts);
  }

  /** How many subscribers hold `uri` (for tests and status). */
  subscribers(uri: string): number {
    return this.subscriptions.holders(uri);
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
