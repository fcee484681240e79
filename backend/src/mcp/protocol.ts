// What the edge knows of MCP itself: the protocol versions of both eras, the reserved `_meta`
// keys of 2026-07-28, the shape of one JSON-RPC message, and the answers the gateway gives on its
// own. Pure functions only: no I/O, nothing here can fail other than by returning a verdict.
import type { JsonObject, JsonRpcErrorObject, JsonRpcId } from "../upstream/types";
import { bounded, isObject } from "../upstream/jsonrpc";
import { ErrorCodes } from "../upstream/types";

/** The per-request (stateless) era: `_meta` on every request, `server/discover`, no sessions. */
export const MODERN_VERSIONS: readonly string[] = ["2026-07-28"];
/** The sessionful era (`initialize`, `Mcp-Session-Id`), newest first. */
export const LEGACY_VERSIONS: readonly string[] = [
  "2025-11-25",
  "2025-06-18",
  "2025-03-26",
  "2024-11-05",
];
export const LATEST_LEGACY_VERSION = "2025-11-25";
/** What a sessionful request without `MCP-Protocol-Version` is taken to speak (the spec's rule). */
export const DEFAULT_HEADER_VERSION = "2025-03-26";
export const SUPPORTED_VERSIONS: readonly string[] = [...MODERN_VERSIONS, ...LEGACY_VERSIONS];

/** Revision identifiers are ISO dates: 2026-07-28 and later are the modern era. */
export const isModernVersion = (v: string): boolean => v >= "2026-07-28";

export const META = {
  protocolVersion: "io.modelcontextprotocol/protocolVersion",
  clientInfo: "io.modelcontextprotocol/clientInfo",
  clientCapabilities: "io.modelcontextprotocol/clientCapabilities",
  logLevel: "io.modelcontextprotocol/logLevel",
  serverInfo: "io.modelcontextprotocol/serverInfo",
  subscriptionId: "io.modelcontextprotocol/subscriptionId",
} as const;

/** `_meta` keys of 2026-07-28 that describe the client: never forwarded to a (legacy) server. */
const MODERN_REQUEST_META_KEYS: readonly string[] = [
  META.protocolVersion,
  META.clientInfo,
  META.clientCapabilities,
  META.logLevel,
];

export const LOG_LEVELS: ReadonlySet<string> = new Set([
  "debug",
  "info",
  "notice",
  "warning",
  "error",
  "critical",
  "alert",
  "emergency",
]);

/** Methods of 2026-07-28 a server answers (besides `server/discover` and `subscriptions/listen`). */
export const MODERN_FORWARDED: ReadonlySet<string> = new Set([
  "tools/list",
  "tools/call",
  "prompts/list",
  "prompts/get",
  "resources/list",
  "resources/read",
  "resources/templates/list",
  "completion/complete",
]);

/** Results that carry caching hints in 2026-07-28 (`ttlMs`, `cacheScope`). */
const CACHEABLE: ReadonlySet<string> = new Set([
  "server/discover",
  "tools/list",
  "prompts/list",
  "resources/list",
  "resources/templates/list",
  "resources/read",
]);

/** Methods whose `Mcp-Name` header mirrors a body field, and which field. */
export const NAME_SOURCE: Readonly<Record<string, "name" | "uri">> = {
  "tools/call": "name",
  "prompts/get": "name",
  "resources/read": "uri",
};

/** Metric label for a method: the methods of either era, anything else is "other". */
const KNOWN_METHODS: ReadonlySet<string> = new Set([
  ...MODERN_FORWARDED,
  "server/discover",
  "subscriptions/listen",
  "initialize",
  "ping",
  "logging/setLevel",
  "resources/subscribe",
  "resources/unsubscribe",
  "notifications/initialized",
  "notifications/cancelled",
]);
export const methodLabel = (method: string): string =>
  KNOWN_METHODS.has(method) ? method : "other";

export type Incoming =
  | { kind: "request"; id: JsonRpcId; method: string; params: JsonObject | undefined }
  | { kind: "notification"; method: string; params: JsonObject | undefined }
  | { kind: "response"; id: JsonRpcId }
  | { kind: "batch" }
  | { kind: "invalid"; id?: JsonRpcId; message: string };

export { isObject };

/** An agent's text cut short, as it goes into a refusal. */
export const trunc = (s: string): string => bounded(s, 100);

const isId = (v: unknown): v is JsonRpcId =>
  (typeof v === "string" && v.length <= 256) || (typeof v === "number" && Number.isFinite(v));

/** What one POST body is; anything that is not exactly one JSON-RPC message is `invalid`. */
export function classify(body: unknown): Incoming {
  if (Array.isArray(body)) return { kind: "batch" };
  if (!isObject(body)) return { kind: "invalid", message: "the body must be a JSON-RPC object" };
  const id = "id" in body ? body.id : undefined;
  const validId = isId(id) ? id : undefined;
  if (body.jsonrpc !== "2.0")
    return { kind: "invalid", id: validId, message: 'jsonrpc must be "2.0"' };
  if ("method" in body) {
    const method = body.method;
    if (typeof method !== "string" || method.length === 0 || method.length > 256)
      return { kind: "invalid", id: validId, message: "method must be a non-empty string" };
    const params = body.params;
    if (params !== undefined && !isObject(params))
      return { kind: "invalid", id: validId, message: "params must be an object" };
    if (!("id" in body)) return { kind: "notification", method, params };
    if (validId === undefined)
      return {
        kind: "invalid",
        message: "id must be a string (at most 256 characters) or a number",
      };
    return { kind: "request", id: validId, method, params };
  }
  if (validId !== undefined && "result" in body !== "error" in body)
    return { kind: "response", id: validId };
  return {
    kind: "invalid",
    id: validId,
    message: "not a JSON-RPC request, notification or response",
  };
}

/** The request's `_meta` object, if it has one. */
export const metaOf = (params: JsonObject | undefined): JsonObject | undefined =>
  params && isObject(params._meta) ? params._meta : undefined;

/** Modern if the body carries the 2026-07-28 version claim, or names a method only that era has. */
export function isModernMessage(msg: Incoming): boolean {
  if (msg.kind !== "request" && msg.kind !== "notification") return false;
  if (msg.method === "server/discover" || msg.method === "subscriptions/listen") return true;
  const meta = metaOf(msg.params);
  return meta !== undefined && META.protocolVersion in meta;
}

/** The caller's progress token, when it is a valid one. */
export function progressTokenOf(params: JsonObject | undefined): string | number | undefined {
  const token = metaOf(params)?.progressToken;
  return typeof token === "string" || (typeof token === "number" && Number.isFinite(token))
    ? token
    : undefined;
}

/**
 * The params as they go to the server: without the progress token (the lane mints its own from
 * `CallOptions`) and without the 2026-07-28 client keys; `_meta` is dropped when nothing is left.
 */
export function upstreamParams(params: JsonObject | undefined): JsonObject | undefined {
  const meta = metaOf(params);
  if (!params || !meta) return params;
  const rest: JsonObject = {};
  for (const [k, v] of Object.entries(meta))
    if (k !== "progressToken" && !MODERN_REQUEST_META_KEYS.includes(k)) rest[k] = v;
  const out: JsonObject = { ...params };
  if (Object.keys(rest).length > 0) out._meta = rest;
  else delete out._meta;
  return out;
}

export interface ResultMessage {
  jsonrpc: "2.0";
  id: JsonRpcId;
  result: JsonObject;
}
export interface ErrorMessage {
  jsonrpc: "2.0";
  id?: JsonRpcId;
  error: JsonRpcErrorObject;
}

export const resultMessage = (id: JsonRpcId, result: JsonObject): ResultMessage => ({
  jsonrpc: "2.0",
  id,
  result,
});

/** An error answer; without an id when the request's id is not known (the spec's form). */
export function errorMessage(
  id: JsonRpcId | undefined,
  code: number,
  message: string,
  data?: unknown,
): ErrorMessage {
  const error: JsonRpcErrorObject =
    data === undefined ? { code, message } : { code, message, data };
  return id === undefined ? { jsonrpc: "2.0", error } : { jsonrpc: "2.0", id, error };
}

/**
 * A request the gateway answers itself with an HTTP status and a JSON-RPC error: thrown anywhere
 * on the way, written once by the route. Status 200 is a JSON-RPC error of the method.
 */
export class Refusal extends Error {
  /** The audit and metric outcome when it is not the plain one (e.g. "limited"). */
  outcome: string | undefined;

  constructor(
    readonly status: number,
    readonly code: number,
    message: string,
    readonly data?: unknown,
    readonly headers?: Readonly<Record<string, string>>,
  ) {
    super(message);
    this.name = "Refusal";
  }
}

export const invalidParams = (message: string): Refusal =>
  new Refusal(200, ErrorCodes.InvalidParams, message);

/** 2026-07-28 results: `resultType` always; caching hints on the cacheable ones (always private). */
export function modernResult(method: string, result: JsonObject, ttlMs: number): JsonObject {
  const out: JsonObject = { ...result };
  if (typeof out.resultType !== "string") out.resultType = "complete";
  if (out.resultType === "complete" && CACHEABLE.has(method)) {
    const ttl = out.ttlMs;
    out.ttlMs = typeof ttl === "number" && Number.isSafeInteger(ttl) && ttl >= 0 ? ttl : ttlMs;
    // Every answer depends on who asks (the gateway filters by token): never shared caches.
    out.cacheScope = "private";
  }
  return out;
}

/** The server's capabilities in the shape of 2026-07-28 (tasks moved to an extension). */
export function modernCapabilities(capabilities: JsonObject): JsonObject {
  const out: JsonObject = {};
  for (const key of [
    "experimental",
    "logging",
    "completions",
    "prompts",
    "resources",
    "tools",
    "extensions",
  ])
    if (isObject(capabilities[key])) out[key] = capabilities[key];
  return out;
}

/** A DNS label: what server names are, so `<server>__<tool>` splits at the first `__`. */
export const SERVER_NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
export const NAMESPACE_SEPARATOR = "__";
/** The aggregate endpoint's key among server names (not a DNS label, so it cannot clash). */
export const AGGREGATE = "*";
