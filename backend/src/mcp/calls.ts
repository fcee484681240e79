// One request forwarded to a lane and its answer: JSON, or SSE when the request carries a progress
// token and the client takes SSE (progress events first, then the answer). Whatever ends the call
// early — the client going away or closing the stream, `notifications/cancelled`, DELETE, expiry,
// shutdown — aborts it, which cancels it upstream. Every tools/call leaves one audit line.
import type { JsonObject, JsonRpcId, Lane, CallOutcome } from "../upstream/types";
import { ErrorCodes } from "../upstream/types";
import type { Core, Ctx } from "./core";
import { isRefusal, outcomeOf, writeJson } from "./core";
import type { GatewayServer } from "./deps";
import { acceptsSse } from "./headers";
import { progressTokenOf, Refusal, resultMessage, upstreamParams } from "./protocol";
import type { Session } from "./sessions";
import { requestKey } from "./sessions";
import { SseStream } from "./sse";

/** How long past the request timeout the edge waits for a lane that does not answer at all. */
const SAFETY_MARGIN_MS = 2_000;

/** The HTTP side of one request: where progress and the answer go, and its abort signal. */
class Exchange {
  readonly abort = new AbortController();
  private readonly sse: SseStream | undefined;
  private answered = false;

  constructor(
    core: Core,
    private readonly ctx: Ctx,
    stream: boolean,
  ) {
    if (stream) this.sse = new SseStream(ctx.res, core.keepAlive);
    ctx.res.once("close", () => {
      if (!this.answered) this.abort.abort(new Error("the client went away"));
    });
  }

  get streaming(): boolean {
    return this.sse !== undefined;
  }

  progress(params: JsonObject): void {
    this.sse?.send({ jsonrpc: "2.0", method: "notifications/progress", params });
  }

  /** Writes the answer (status applies to JSON answers); returns its size in bytes. */
  finish(message: unknown, status = 200, headers?: Readonly<Record<string, string>>): number {
    this.answered = true;
    if (this.sse) {
      const bytes = Buffer.byteLength(JSON.stringify(message));
      this.sse.end(message);
      return bytes;
    }
    return writeJson(this.ctx.res, status, message, headers);
  }
}

export interface Forward {
  server: GatewayServer;
  lane: Lane;
  id: JsonRpcId;
  method: string;
  /** The client's params (shaped for the server here). */
  params: JsonObject | undefined;
  /** The legacy session the call belongs to (its cancels and its end reach the call). */
  session?: Session;
  /** Era shaping of a result (2026-07-28 fields). */
  shape?: (result: JsonObject) => JsonObject;
  /** HTTP status of an error answer (2026-07-28: 404 for an unknown method). */
  errorStatus?: (code: number) => number;
}

export interface Answered {
  outcome: string;
  bytes: number;
}

/** Sends the request to the lane and writes its answer. Refusals before the call are thrown. */
export async function forward(core: Core, ctx: Ctx, f: Forward): Promise<Answered> {
  const release = core.upstreams.slot(f.server.name);
  const key = requestKey(f.id);
  if (f.session?.inflight?.has(key)) {
    release();
    throw new Refusal(
      400,
      ErrorCodes.InvalidRequest,
      `request id ${String(f.id)} is already in flight in this session`,
    );
  }
  const token = progressTokenOf(f.params);
  const x = new Exchange(core, ctx, token !== undefined && acceptsSse(ctx.req));
  core.active.add(x.abort);
  if (f.session) (f.session.inflight ??= new Map()).set(key, x.abort);
  let outcome: CallOutcome;
  try {
    outcome = await callLane(core, f.lane, f.method, upstreamParams(f.params), {
      signal: x.abort.signal,
      ...(x.streaming && token !== undefined
        ? { progressToken: token, onProgress: (p: JsonObject) => x.progress(p) }
        : {}),
    });
  } finally {
    release();
    core.active.delete(x.abort);
    if (f.session?.inflight?.get(key) === x.abort) {
      f.session.inflight.delete(key);
      f.session.lastUsed = core.now();
    }
  }
  if ("result" in outcome) {
    const result = f.shape ? f.shape(outcome.result) : outcome.result;
    return { outcome: outcomeOf({ result }), bytes: x.finish(resultMessage(f.id, result)) };
  }
  const status = f.errorStatus?.(outcome.error.code) ?? 200;
  return {
    outcome: outcomeOf(outcome),
    bytes: x.finish({ jsonrpc: "2.0", id: f.id, error: outcome.error }, status),
  };
}

/** One lane call with the request timeout; the lane never rejects, and this never hangs. */
export async function callLane(
  core: Core,
  lane: Lane,
  method: string,
  params: JsonObject | undefined,
  opts: {
    signal?: AbortSignal;
    progressToken?: string | number;
    onProgress?: (p: JsonObject) => void;
  },
): Promise<CallOutcome> {
  const timeoutMs = core.deps.limits.requestTimeoutMs;
  let timer: NodeJS.Timeout | undefined;
  const safety = new Promise<CallOutcome>((resolve) => {
    timer = setTimeout(
      () =>
        resolve({
          error: {
            code: ErrorCodes.RequestTimeout,
            message: `no answer from server "${lane.server}" within ${timeoutMs} ms`,
          },
        }),
      timeoutMs + SAFETY_MARGIN_MS,
    );
  });
  try {
    return await Promise.race([lane.call(method, params, { timeoutMs, ...opts }), safety]);
  } catch (err) {
    core.log.warn(
      { server: lane.server, method, error: err instanceof Error ? err.name : typeof err },
      "lane call failed",
    );
    return { error: { code: ErrorCodes.InternalError, message: "the lane failed" } };
  } finally {
    clearTimeout(timer);
  }
}

/** Runs one tools/call and writes its audit line, however it ends. */
export async function audited(
  core: Core,
  ctx: Ctx,
  a: { server: string; tool: string; era: string; session?: Session },
  run: () => Promise<Answered>,
): Promise<void> {
  const started = performance.now();
  let outcome = "error";
  let bytes = 0;
  try {
    const r = await run();
    outcome = r.outcome;
    bytes = r.bytes;
  } catch (err) {
    if (!isRefusal(err)) outcome = "error";
    else if (err.outcome) outcome = err.outcome;
    else outcome = err.code === ErrorCodes.Unavailable ? "unavailable" : "rejected";
    throw err;
  } finally {
    const seconds = (performance.now() - started) / 1000;
    core.deps.metrics.toolCall(
      core.deps.servers.get(a.server) ? a.server : "unknown",
      outcome,
      seconds,
    );
    core.log.info(
      {
        audit: "tools/call",
        principal: ctx.principal.id,
        tokenId: ctx.principal.tokenId,
        session: a.session?.hash,
        era: a.era,
        server: a.server,
        tool: a.tool.slice(0, 128),
        ms: Math.round(seconds * 1000),
        outcome,
        bytes,
      },
      "tool call",
    );
  }
}
