// Hand-written guards for the JSON-RPC 2.0 messages an MCP server sends (no schema library: the
// backend stays small). A message is classified once; anything that is not one of the three
// shapes is dropped by the caller and counted, never fatal.
import type {
  CallOutcome,
  JsonObject,
  JsonRpcErrorObject,
  JsonRpcId,
  JsonRpcNotification,
  JsonRpcRequest,
} from "./types";
import { ErrorCodes } from "./types";

export interface JsonRpcResponse {
  jsonrpc: "2.0";
  id: JsonRpcId | null;
  result?: unknown;
  error?: unknown;
}

export type Incoming =
  | { kind: "request"; message: JsonRpcRequest }
  | { kind: "notification"; message: JsonRpcNotification }
  | { kind: "response"; message: JsonRpcResponse }
  | { kind: "invalid" };

/** A server's text cut short, as it goes into an error message of the gateway's. */
export function bounded(text: string, max = 200): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

export function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isId(value: unknown): value is JsonRpcId {
  return typeof value === "string" || (typeof value === "number" && Number.isFinite(value));
}

/** Sorts a parsed value into request, notification, response or invalid. */
export function classify(value: unknown): Incoming {
  if (!isObject(value) || value.jsonrpc !== "2.0") return { kind: "invalid" };
  const { method, params, id } = value;
  if (params !== undefined && !isObject(params)) return { kind: "invalid" };
  if (typeof method === "string") {
    if (id === undefined) {
      return { kind: "notification", message: value as unknown as JsonRpcNotification };
    }
    if (isId(id)) return { kind: "request", message: value as unknown as JsonRpcRequest };
    return { kind: "invalid" };
  }
  if (method !== undefined) return { kind: "invalid" };
  const hasResult = "result" in value;
  const hasError = "error" in value;
  if (hasResult === hasError) return { kind: "invalid" };
  if (!(isId(id) || id === null)) return { kind: "invalid" };
  return { kind: "response", message: value as unknown as JsonRpcResponse };
}

/** Parses one line; `undefined` when it is not JSON. */
export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

export function errorOutcome(code: number, message: string, data?: unknown): CallOutcome {
  const error: JsonRpcErrorObject = { code, message };
  if (data !== undefined) error.data = data;
  return { error };
}

/**
 * The outcome a server's response carries. MCP results are objects; anything else, or an error
 * that is not `{code: integer, message: string}`, is answered as the server's malformed answer.
 */
export function outcomeOf(response: JsonRpcResponse): CallOutcome {
  if ("result" in response) {
    if (isObject(response.result)) return { result: response.result };
    return errorOutcome(ErrorCodes.InternalError, "the server sent a malformed result");
  }
  const e = response.error;
  if (isObject(e) && Number.isInteger(e.code) && typeof e.message === "string") {
    const error: JsonRpcErrorObject = { code: e.code as number, message: e.message };
    if (e.data !== undefined) error.data = e.data;
    return { error };
  }
  return errorOutcome(ErrorCodes.InternalError, "the server sent a malformed error");
}

// An over-long line is never parsed: the id of the call it answers is looked for in its first and
// last bytes only. The TypeScript SDK writes `{"result":…,"jsonrpc":"2.0","id":5}` (id last);
// Python's and Go's write `{"jsonrpc":"2.0","id":5,"result":…}` (id first).
const TAIL_ID = /"id"\s*:\s*(\d{1,15})\s*\}\s*$/;
const HEAD_ID =
  /^\s*\{\s*(?:"jsonrpc"\s*:\s*"2\.0"\s*,\s*)?"id"\s*:\s*(\d{1,15})\s*,\s*(?:"jsonrpc"\s*:\s*"2\.0"\s*,\s*)?"(?:result|error)"/;
const STARTS_AS_REQUEST = /^\s*\{\s*"(?:method|params)"/;
const RESPONSE_FIRST = /^\s*\{\s*"(?:result|error)"/;

/**
 * The integer id of the response an over-long message probably is, from its first and last
 * bytes; `undefined` when it looks like a request or notification or no id is found. The caller
 * only acts on ids it minted and still waits for.
 */
export function findResponseId(head: string, tail: string): number | undefined {
  if (STARTS_AS_REQUEST.test(head)) return undefined;
  const first = HEAD_ID.exec(head);
  if (first) return Number(first[1]);
  if (
    RESPONSE_FIRST.test(head) ||
    /^\s*\{\s*"jsonrpc"\s*:\s*"2\.0"\s*,\s*"(?:result|error)"/.test(head)
  ) {
    const last = TAIL_ID.exec(tail);
    if (last) return Number(last[1]);
  }
  return undefined;
}
