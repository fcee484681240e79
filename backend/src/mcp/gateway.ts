// The MCP edge's routes: `/mcp/:server` (one server, everything passed through) and `/mcp` (the
// tools of every server the caller may use). Each request, in this order: Origin (403), the
// bearer token (401, before the body is read), the server and whether the caller may use it
// (403/404), the caller's rate (429), the body (413/415/400), then the era it speaks.
import type { IncomingMessage } from "node:http";
import type { RequestContext, Route } from "@agentopia-toolboxes/servicekit/http";
import { HttpError, readJson, refused } from "@agentopia-toolboxes/servicekit/http";
import type { Principal } from "../auth/principal";
import { mayUse } from "../auth/principal";
import type { JsonRpcId } from "../upstream/types";
import { ErrorCodes } from "../upstream/types";
import type { Core, Ctx } from "./core";
import { writeJson, writeRefusal } from "./core";
import type { GatewayDeps, GatewayServer } from "./deps";
import { header, originAllowed } from "./headers";
import { legacyDelete, legacyGet, legacyPost } from "./legacy";
import { modernPost } from "./modern";
import {
  AGGREGATE,
  classify,
  errorMessage,
  isModernMessage,
  methodLabel,
  Refusal,
  SERVER_NAME,
  trunc,
} from "./protocol";
import { RateLimiter } from "./ratelimit";
import type { Session } from "./sessions";
import { SessionStore } from "./sessions";
import { KeepAlive } from "./sse";
import { Hub, Upstreams } from "./upstream";

interface McpStats {
  /** Sessions open now, by server ("*" is `/mcp`). */
  sessions: Record<string, number>;
  /** `subscriptions/listen` streams open now, by server. */
  listens: Record<string, number>;
  /** Calls in flight, by server. */
  inFlight: Record<string, number>;
  /** SSE streams open (GET streams, streamed answers, listen streams). */
  streams: number;
}

export interface McpGateway {
  routes: Route[];
  stats(): McpStats;
  /** Ends every session and stream and cancels every call (shutdown); later requests get 503. */
  closeAll(reason?: string): void;
}

export function createMcpGateway(deps: GatewayDeps): McpGateway {
  const now = deps.now ?? Date.now;
  const log = deps.log;
  const hub = new Hub();
  const store = new SessionStore(deps.limits.sessionIdleMs, now);
  const listens = new Map<string, Set<{ close(): void }>>();
  const core: Core = {
    deps,
    log,
    now,
    store,
    hub,
    upstreams: new Upstreams(deps, hub, log),
    keepAlive: new KeepAlive(deps.limits.keepAliveMs),
    active: new Set(),
    listens,
    listenCount: (endpoint) => listens.get(endpoint)?.size ?? 0,
    endSession: (s, reason) => endSession(core, s, reason),
  };
  // What servicekit's `refused` counts: the failure only (the server counts the request).
  const authMetrics = {
    authFailure: (reason: string) => deps.metrics.authFailure(reason),
    recordRequest: () => undefined,
  };
  const limiter = new RateLimiter(deps.limits.ratePerMinute, deps.limits.rateBurst, now);
  let closing = false;

  const sweepEvery = Math.min(30_000, Math.max(25, Math.floor(deps.limits.sessionIdleMs / 4)));
  const sweeper = setInterval(() => {
    for (const s of store.idle()) endSession(core, s, "expired");
  }, sweepEvery);
  sweeper.unref();

  async function handle(rc: RequestContext, route: string): Promise<void> {
    const { req, res } = rc;
    let id: JsonRpcId | undefined;
    let endpointLabel = "unknown";
    let method = req.method === "POST" ? "other" : (req.method ?? "other");
    let outcome = "ok";
    try {
      if (closing)
        throw new Refusal(503, ErrorCodes.Unavailable, "the gateway is shutting down", undefined, {
          "retry-after": "5",
        });
      if (!originAllowed(req, deps.allowedOrigins))
        throw new Refusal(403, ErrorCodes.InvalidRequest, "Forbidden: this Origin is not allowed");
      const principal = await authenticate(req, route);
      const { endpoint, server } = resolve(principal, rc.params.server);
      endpointLabel = endpoint;
      const take = limiter.take(principal.id);
      if (!take.ok) {
        deps.metrics.rateLimited();
        throw new Refusal(
          429,
          ErrorCodes.Unavailable,
          `rate limit: at most ${deps.limits.ratePerMinute} requests a minute (burst ${deps.limits.rateBurst}); retry in ${take.retryAfterSeconds} s`,
          { retryAfterSeconds: take.retryAfterSeconds },
          { "retry-after": String(take.retryAfterSeconds) },
        );
      }
      const ctx: Ctx = { req, res, principal, endpoint, server, route, method };
      if (req.method === "POST") {
        const msg = classify(await body(req));
        if (msg.kind === "request" || msg.kind === "invalid") id = msg.id;
        method =
          msg.kind === "request" || msg.kind === "notification"
            ? methodLabel(msg.method)
            : msg.kind;
        ctx.method = method;
        if (msg.kind === "batch")
          throw new Refusal(
            400,
            ErrorCodes.InvalidRequest,
            "batches are not supported: send one JSON-RPC message per POST",
          );
        if (msg.kind === "invalid") throw new Refusal(400, ErrorCodes.InvalidRequest, msg.message);
        if (isModernMessage(msg)) await modernPost(core, ctx, msg);
        else await legacyPost(core, ctx, msg);
      } else {
        // GET and DELETE exist only for sessions: 2026-07-28 has neither.
        if (header(req, "mcp-session-id") === undefined)
          throw new Refusal(
            405,
            ErrorCodes.InvalidRequest,
            `${req.method} needs an Mcp-Session-Id (2026-07-28 has no GET stream and no DELETE: use POST, and subscriptions/listen for notifications)`,
            undefined,
            { allow: "POST" },
          );
        if (req.method === "GET") legacyGet(core, ctx);
        else legacyDelete(core, ctx);
      }
    } catch (err) {
      if (err instanceof Refusal) {
        outcome = err.status >= 400 ? "refused" : "error";
        writeRefusal(res, err, id);
      } else {
        outcome = "failed";
        log.error(
          {
            err:
              err instanceof Error
                ? { name: err.name, message: err.message, stack: err.stack }
                : String(err),
            route,
          },
          "mcp request failed",
        );
        writeJson(res, 500, errorMessage(id, ErrorCodes.InternalError, "internal error (logged)"));
      }
    }
    deps.metrics.mcpRequest(endpointLabel, method, outcome);
  }

  async function authenticate(req: IncomingMessage, route: string): Promise<Principal> {
    let result: Awaited<ReturnType<GatewayDeps["authenticate"]>>;
    try {
      result = await deps.authenticate(req);
    } catch (err) {
      log.error({ error: err instanceof Error ? err.name : typeof err }, "authenticate failed");
      result = { reason: "invalid" };
    }
    if ("reason" in result) {
      const e = refused({ log, metrics: authMetrics }, req, route, result.reason);
      throw new Refusal(401, ErrorCodes.InvalidRequest, `Unauthorized: ${e.message}`, undefined, {
        "www-authenticate": "Bearer",
      });
    }
    return result;
  }

  function resolve(
    principal: Principal,
    name: string | undefined,
  ): { endpoint: string; server: GatewayServer | undefined } {
    if (name === undefined) return { endpoint: AGGREGATE, server: undefined };
    // A server this principal may not use is refused whether or not it exists.
    if (!mayUse(principal, name))
      throw new Refusal(
        403,
        ErrorCodes.InvalidRequest,
        `this token may not use server "${trunc(name)}"`,
      );
    const server = SERVER_NAME.test(name) ? deps.servers.get(name) : undefined;
    if (!server)
      throw new Refusal(
        404,
        ErrorCodes.InvalidRequest,
        `no server "${trunc(name)}" on this toolbox`,
      );
    return { endpoint: server.name, server };
  }

  async function body(req: IncomingMessage): Promise<unknown> {
    try {
      return await readJson(req, deps.limits.maxBodyBytes);
    } catch (err) {
      if (err instanceof HttpError)
        throw new Refusal(
          err.status,
          err.status === 400 ? ErrorCodes.ParseError : ErrorCodes.InvalidRequest,
          err.status === 400 ? "Parse error: the body is not valid JSON" : err.message,
        );
      throw new Refusal(400, ErrorCodes.ParseError, "Parse error: the body could not be read");
    }
  }

  const routes: Route[] = [];
  for (const [path, route] of [
    ["/mcp", "/mcp"],
    ["/mcp/:server", "/mcp/:server"],
  ] as const)
    for (const m of ["POST", "GET", "DELETE"])
      routes.push({ method: m, path, auth: "handler", handler: (rc) => handle(rc, route) });

  return {
    routes,
    stats: () => ({
      sessions: store.byEndpoint(),
      listens: Object.fromEntries([...listens].map(([k, v]) => [k, v.size])),
      inFlight: core.upstreams.inFlightByServer(),
      streams: core.keepAlive.size,
    }),
    closeAll(reason = "shutdown") {
      closing = true;
      clearInterval(sweeper);
      for (const set of [...listens.values()]) for (const l of [...set]) l.close();
      for (const s of store.all()) endSession(core, s, reason);
      for (const a of [...core.active]) a.abort(new Error(`gateway ${reason}`));
      core.upstreams.close();
      core.keepAlive.endAll();
    },
  };
}

/** Ends a session: its calls are cancelled upstream, its stream, subscriptions and own lanes end. */
function endSession(core: Core, s: Session, reason: string): void {
  if (s.closed) return;
  s.closed = true;
  core.store.remove(s);
  if (s.subscriber) core.hub.remove(s.endpoint, s.subscriber);
  s.subscriber = undefined;
  for (const a of s.inflight?.values() ?? []) a.abort(new Error(`session ended: ${reason}`));
  s.stream?.end();
  s.stream = undefined;
  const opts = { timeoutMs: core.deps.limits.requestTimeoutMs };
  for (const [uri, lane] of s.subscriptions ?? [])
    if (lane !== s.lane && core.upstreams.isOpen(lane)) void lane.unsubscribe(uri, opts);
  s.subscriptions = undefined;
  s.lane?.close(`session ended: ${reason}`);
  for (const p of s.aggregateLanes?.values() ?? [])
    p.then(
      (lane) => lane.close(`session ended: ${reason}`),
      () => undefined,
    );
  s.aggregateLanes = undefined;
  core.deps.metrics.sessionClosed(s.endpoint, reason);
  core.log.info({ session: s.hash, endpoint: s.endpoint, reason }, "mcp session ended");
}
