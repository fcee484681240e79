import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { HttpError, MethodNotAllowed } from "./errors";
import { parseTarget } from "./target";

export interface RequestContext {
  req: IncomingMessage;
  /** For handlers that write their own answer (streams): they return nothing. */
  res: ServerResponse;
  params: Record<string, string>;
  query: URLSearchParams;
  /** Parsed JSON body (PUT/POST with a body), otherwise undefined. */
  body: unknown;
  /** Aborted when the client goes away (long polls stop early). */
  signal: AbortSignal;
}

/** An HTTP upgrade (`Connection: Upgrade`): the handler owns the socket once it is called. */
export interface UpgradeContext {
  req: IncomingMessage;
  params: Record<string, string>;
  query: URLSearchParams;
  socket: Duplex;
  /** Bytes the client sent after the request head. */
  head: Buffer;
}

export interface Reply {
  status: number;
  /** An object is sent as JSON; a Buffer or string as is, with `contentType`. */
  body?: unknown;
  contentType?: string;
  /** Headers computed once with the body (see `preparedReply`); sent as they are. */
  headers?: Readonly<Record<string, string>>;
  /** Strong validator of the body: a request whose If-None-Match names it gets a 304. */
  etag?: string;
  /** Headers sent besides those servicekit computes for a body (Allow, Retry-After, Upgrade). */
  extraHeaders?: Readonly<Record<string, string>>;
}

/**
 * A reply built once and sent many times (GET /status per sample, GET /health): the body is
 * serialized and the headers are computed here, so a request only writes them. The body stays a
 * string: node:http then sends the head and the body as one chunk (a Buffer takes a second
 * chunk and the vectored-write path).
 */
export function preparedReply(body: string, contentType: string, etag?: string): Reply {
  const headers: Record<string, string> = {
    "content-type": contentType,
    "content-length": String(Buffer.byteLength(body)),
    "cache-control": "no-store",
  };
  if (etag) headers.etag = etag;
  return { status: 200, body, contentType, headers, ...(etag ? { etag } : {}) };
}

/**
 * Who checks the caller: `token` (default) the server, against its bearer tokens; `none` nobody
 * (health only); `handler` the handler itself, because it needs to know who the caller is.
 */
export type RouteAuth = "token" | "none" | "handler";

export interface Route {
  method: string;
  path: string;
  auth?: RouteAuth;
  /** Whether the route reads a JSON body. */
  body?: boolean;
  /** The body cap of this route (bytes); default the server's. */
  bodyLimitBytes?: number;
  /** The answer, or nothing when the handler wrote it to `ctx.res` itself. */
  handler?: (ctx: RequestContext) => Promise<Reply | void> | Reply;
  /** Set instead of `handler` on a route that takes an HTTP upgrade. */
  upgrade?: (ctx: UpgradeContext) => Promise<void> | void;
  /** The protocol an upgrade route takes: named in `Upgrade` of the 426 a plain request gets. */
  protocol?: string;
}

/**
 * A GET route also answers HEAD (node:http leaves the body out) unless its handler checks the
 * caller itself: such a route (a stream, the MCP endpoints) decides what HEAD means by adding it.
 */
function answersHead(route: Route): boolean {
  return route.method === "GET" && route.handler !== undefined && route.auth !== "handler";
}

export interface Compiled extends Route {
  segments: string[];
}

export class Router {
  private readonly routes: Compiled[] = [];
  /** Routes without parameters by path, then method: the hot path skips URL parsing. */
  private readonly fixed = new Map<string, Map<string, Compiled>>();

  add(...routes: Route[]): this {
    for (const r of routes) {
      const compiled = { ...r, segments: r.path.split("/").slice(1) };
      this.routes.push(compiled);
      // Only plain paths (parsing them as a URL changes nothing) that no earlier parameterized route takes.
      if (!/^(\/[A-Za-z0-9_-]+)+$/.test(r.path)) continue;
      if (this.routes.some((e) => e.path.includes(":") && safeMatch(e.segments, compiled.segments)))
        continue;
      let byMethod = this.fixed.get(r.path);
      if (!byMethod) this.fixed.set(r.path, (byMethod = new Map<string, Compiled>()));
      if (!byMethod.has(r.method)) byMethod.set(r.method, compiled);
    }
    return this;
  }

  /** Every route, in the order added (the OpenAPI document is built from them). */
  list(): readonly Route[] {
    return this.routes;
  }

  /**
   * The parameterless route whose path is exactly `rawUrl` (no query, no encoding to undo), or
   * undefined: then `match` on the parsed pathname decides (404, 405, parameters).
   */
  exact(method: string, rawUrl: string): Compiled | undefined {
    const byMethod = this.fixed.get(rawUrl);
    const route = byMethod?.get(method);
    if (route || method !== "HEAD") return route;
    const get = byMethod?.get("GET");
    return get && answersHead(get) ? get : undefined;
  }

  /** Whether a request for this target is meant for an upgrade route (read before the upgrade). */
  takesUpgrade(method: string, rawUrl: string): boolean {
    const target = parseTarget(rawUrl);
    if (!target) return false;
    try {
      return this.match(method, target.pathname).route.upgrade !== undefined;
    } catch {
      return false;
    }
  }

  /**
   * The route for a request, its path parameters, or an HttpError: 404, 400 (a parameter's
   * percent-encoding), 405 naming the allowed methods. HEAD is answered by the GET route.
   */
  match(method: string, pathname: string): { route: Compiled; params: Record<string, string> } {
    const parts = pathname.split("/").slice(1);
    const allowed: string[] = [];
    let publicPath = true;
    let head: { route: Compiled; params: Record<string, string> } | undefined;
    for (const route of this.routes) {
      const params = matchSegments(route.segments, parts);
      if (!params) continue;
      if (route.method === method) return { route, params };
      const headToo = answersHead(route);
      if (method === "HEAD" && headToo) head ??= { route, params };
      for (const m of headToo ? [route.method, "HEAD"] : [route.method])
        if (!allowed.includes(m)) allowed.push(m);
      if (route.auth !== "none") publicPath = false;
    }
    if (head) return head;
    if (allowed.length) throw new MethodNotAllowed(method, allowed, publicPath);
    throw new HttpError(404, "not_found", "no such route");
  }
}

function safeMatch(pattern: string[], parts: string[]): boolean {
  try {
    return matchSegments(pattern, parts) !== null;
  } catch {
    return true;
  }
}

function matchSegments(pattern: string[], parts: string[]): Record<string, string> | null {
  if (pattern.length !== parts.length) return null;
  const params: Record<string, string> = {};
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i];
    const part = parts[i];
    if (p.startsWith(":")) {
      try {
        params[p.slice(1)] = decodeURIComponent(part);
      } catch {
        throw new HttpError(
          400,
          "invalid_path",
          "malformed percent-encoding in the path",
          p.slice(1),
        );
      }
    } else if (p !== part) {
      return null;
    }
  }
  return params;
}
