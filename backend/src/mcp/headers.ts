// Reading the request headers the edge decides on. Node joins repeated custom headers with ", "
// and has already refused control characters; what is left to check is done here.
import type { IncomingMessage } from "node:http";

/** One header as a string (repeated ones joined by node), or undefined. */
export function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  if (v === undefined) return undefined;
  return Array.isArray(v) ? v.join(", ") : v;
}

/** A present Origin must be one of the allowed ones, exactly (`scheme://host[:port]`). */
export function originAllowed(req: IncomingMessage, allowed: readonly string[]): boolean {
  const origin = req.headers.origin;
  return origin === undefined || allowed.includes(origin);
}

function mediaTypes(req: IncomingMessage): string[] | undefined {
  const accept = header(req, "accept");
  if (accept === undefined || accept.trim() === "") return undefined;
  return accept.split(",").map((t) => t.split(";")[0].trim().toLowerCase());
}

/** Whether an SSE answer may be sent (the client lists it, or anything). */
export function acceptsSse(req: IncomingMessage): boolean {
  const types = mediaTypes(req);
  return (
    types !== undefined &&
    types.some((t) => t === "text/event-stream" || t === "text/*" || t === "*/*")
  );
}

const HEADER_SAFE = /^[\t\x20-\x7e]*$/;
const SENTINEL = /^=\?base64\?([A-Za-z0-9+/]*={0,2})\?=$/;
const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * A mirrored header value (`Mcp-Name`, 2026-07-28): plain visible ASCII, or the Base64 sentinel
 * `=?base64?…?=` of the UTF-8 value. Undefined when the value is neither.
 */
export function decodeMirrored(raw: string): string | undefined {
  if (!HEADER_SAFE.test(raw)) return undefined;
  if (!(raw.startsWith("=?base64?") && raw.endsWith("?=") && raw.length >= 11)) return raw;
  const m = SENTINEL.exec(raw);
  if (!m || m[1].length % 4 !== 0) return undefined;
  try {
    return utf8.decode(Buffer.from(m[1], "base64"));
  } catch {
    return undefined;
  }
}
