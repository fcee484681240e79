// What every handler of the edge shares: the dependencies, the session store, the lanes, the
// streams, and writing an answer. One Core per gateway (no module-level state).
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "pino";
import type { Principal } from "../auth/principal";
import type { JsonObject } from "../upstream/types";
import type { GatewayDeps, GatewayServer } from "./deps";
import type { ErrorMessage } from "./protocol";
import { errorMessage, Refusal } from "./protocol";
import type { Session, SessionStore } from "./sessions";
import type { KeepAlive } from "./sse";
import type { Hub, Upstreams } from "./upstream";

export interface Core {
  deps: GatewayDeps;
  log: Logger;
  now: () => number;
  store: SessionStore;
  hub: Hub;
  upstreams: Upstreams;
  keepAlive: KeepAlive;
  /** Every call in flight (any era): aborted at shutdown. */
  active: Set<AbortController>;
  /** Open `subscriptions/listen` streams by endpoint; `close` ends one gracefully (shutdown). */
  listens: Map<string, Set<{ close(): void }>>;
  /** Open `subscriptions/listen` streams of an endpoint (they count against the session cap). */
  listenCount(endpoint: string): number;
  /** Ends a session (DELETE, expiry, its lane ended, shutdown) and frees what it holds. */
  endSession(s: Session, reason: string): void;
}

/** One POST, GET or DELETE as the handlers see it once the caller is known. */
export interface Ctx {
  req: IncomingMessage;
  res: ServerResponse;
  principal: Principal;
  /** A server name, or AGGREGATE for `/mcp`. */
  endpoint: string;
  /** The server of a `/mcp/:server` endpoint. */
  server: GatewayServer | undefined;
  /** The route, for logs and refusals. */
  route: string;
  /** Metric label of the method (filled once the body is read). */
  method: string;
}

const JSON_HEADERS = { "content-type": "application/json", "cache-control": "no-store" };

/** Writes one JSON answer (nothing when the response is already under way or gone). */
export function writeJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Readonly<Record<string, string>> = {},
): number {
  const payload = JSON.stringify(body);
  if (res.headersSent || res.destroyed) return Buffer.byteLength(payload);
  res.writeHead(status, {
    ...JSON_HEADERS,
    ...headers,
    "content-length": String(Buffer.byteLength(payload)),
  });
  res.end(payload);
  return Buffer.byteLength(payload);
}

export function writeStatus(
  res: ServerResponse,
  status: number,
  headers: Readonly<Record<string, string>> = {},
): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, headers).end();
}

/** The JSON-RPC error body of a refusal (with the request's id when it is known). */
function refusalBody(r: Refusal, id?: string | number): ErrorMessage {
  return errorMessage(id, r.code, r.message, r.data);
}

export function writeRefusal(res: ServerResponse, r: Refusal, id?: string | number): number {
  return writeJson(res, r.status, refusalBody(r, id), r.headers);
}

export const isRefusal = (e: unknown): e is Refusal => e instanceof Refusal;

/** The outcome label of an answer, for metrics and audit lines. */
export function outcomeOf(answer: { result?: JsonObject; error?: { code: number } }): string {
  if (answer.result) return answer.result.isError === true ? "tool_error" : "ok";
  switch (answer.error?.code) {
    case -32001:
      return "timeout";
    case -32002:
      return "cancelled";
    case -32000:
      return "unavailable";
    default:
      return "error";
  }
}
