import type { IncomingMessage } from "node:http";
import { HttpError } from "./errors";

export interface RequestContext {
  req: IncomingMessage;
  params: Record<string, string>;
  query: URLSearchParams;
  /** Parsed JSON body (PUT/POST with a body), otherwise undefined. */
  body: unknown;
  /** Aborted when the client goes away (long polls stop early). */
  signal: AbortSignal;
}

export interface Reply {
  status: number;
  /** An object is sent as JSON; a Buffer or string as is, with `contentType`. */
  body?: unknown;
  contentType?: string;
}

export interface Route {
  method: string;
  path: string;
  /** Every route but /health needs the bearer token. */
  public?: boolean;
  /** Whether the route reads a JSON body. */
  body?: boolean;
  handler: (ctx: RequestContext) => Promise<Reply> | Reply;
}

interface Compiled extends Route {
  segments: string[];
}

export class Router {
  private readonly routes: Compiled[] = [];

  add(...routes: Route[]): this {
    for (const r of routes) this.routes.push({ ...r, segments: r.path.split("/").slice(1) });
    return this;
  }

  /** The route for a request, its path parameters, or an HttpError (404, 405, 400). */
  match(method: string, pathname: string): { route: Compiled; params: Record<string, string> } {
    const parts = pathname.split("/").slice(1);
    let pathMatched = false;
    for (const route of this.routes) {
      const params = matchSegments(route.segments, parts);
      if (!params) continue;
      pathMatched = true;
      if (route.method === method) return { route, params };
    }
    if (pathMatched)
      throw new HttpError(405, "method_not_allowed", `${method} is not allowed here`);
    throw new HttpError(404, "not_found", "no such route");
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
