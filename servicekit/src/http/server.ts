// The HTTP(S) server both services run: a route is found (the hot path without parsing the URL),
// the caller authenticated before the handler, the body read, the reply written, every request
// counted and every failure logged; HTTP upgrades go to the routes that take them.
import http from "node:http";
import type https from "node:https";
import type { Duplex } from "node:stream";
import type { Logger } from "pino";
import type { AuthResult } from "./auth";
import { BODY_LIMIT_BYTES, readJson } from "./body";
import { HttpError, MethodNotAllowed } from "./errors";
import { errorReply, refuseUpgrade, send } from "./reply";
import type { Reply, RequestContext, Router } from "./router";
import { parseTarget, type Target } from "./target";
import { tlsServerOptions, type TlsMaterial } from "./tls";

/** What the server needs of a service's metrics. */
export interface RequestMetrics {
  recordRequest(method: string, route: string, status: number, seconds: number): void;
  authFailure(reason: string): void;
}

export interface ServerDeps {
  router: Router;
  /** Checks the Authorization header of routes whose `auth` is `token`. */
  verifier: { check(header: string | undefined): AuthResult };
  log: Logger;
  metrics: RequestMetrics;
  bodyLimitBytes?: number;
}

export function createHttpServer(deps: ServerDeps, tls?: TlsMaterial): http.Server {
  const options: http.ServerOptions = {
    // Only requests meant for an upgrade route are upgrades; any other `Upgrade` header (h2c, a
    // stray websocket) is an ordinary request that gets an ordinary answer.
    shouldUpgradeCallback: (req) => deps.router.takesUpgrade(req.method ?? "", req.url ?? "/"),
  };
  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => handle(deps, req, res);
  // node:https is loaded only when there is TLS material (it costs memory, decision 0005).
  const server: http.Server = tls
    ? // eslint-disable-next-line @typescript-eslint/no-require-imports
      (require("node:https") as typeof https).createServer(
        { ...options, ...tlsServerOptions(tls) },
        handler,
      )
    : http.createServer(options, handler);
  server.on(
    "upgrade",
    (req: http.IncomingMessage, socket: Duplex, head: Buffer) =>
      void handleUpgrade(deps, req, socket, head),
  );
  server.keepAliveTimeout = 65_000;
  return server;
}

const NO_PARAMS: Record<string, string> = Object.freeze({});

/** The handler's view of a request; the query and the abort signal are made only when read. */
class Context implements RequestContext {
  private abort: AbortController | undefined;
  private parsedQuery: URLSearchParams | undefined;

  constructor(
    readonly req: http.IncomingMessage,
    readonly res: http.ServerResponse,
    readonly params: Record<string, string>,
    readonly body: unknown,
    query: URLSearchParams | undefined,
  ) {
    this.parsedQuery = query;
  }

  get query(): URLSearchParams {
    return (this.parsedQuery ??= new URLSearchParams());
  }

  /** Aborted when the client goes away (or already has). */
  get signal(): AbortSignal {
    if (!this.abort) {
      const abort = new AbortController();
      this.abort = abort;
      if (this.res.closed) abort.abort();
      else this.res.once("close", () => abort.abort());
    }
    return this.abort.signal;
  }
}

type Answer = Reply | void;
const isPromise = (x: Answer | Promise<Answer>): x is Promise<Answer> => x instanceof Promise;

function handle(deps: ServerDeps, req: http.IncomingMessage, res: http.ServerResponse): void {
  const started = performance.now();
  const method = req.method ?? "GET";
  // Hot path (GET /status, /health, /metrics, /tools): a parameterless route named exactly by
  // the raw URL needs no URL parsing, and a synchronous handler no promise.
  const route = deps.router.exact(method, req.url ?? "/");
  if (!route?.handler || route.body) {
    void handleParsed(deps, req, res, method, started);
    return;
  }
  let reply: Answer | Promise<Answer>;
  try {
    if ((route.auth ?? "token") === "token") authenticate(deps, req, route.path);
    reply = route.handler(new Context(req, res, NO_PARAMS, undefined, undefined));
  } catch (err) {
    reply = errorReply(deps.log, err, method, route.path);
  }
  if (!isPromise(reply)) {
    finish(deps, req, res, method, route.path, reply, started);
    return;
  }
  reply.then(
    (r) => finish(deps, req, res, method, route.path, r, started),
    (err: unknown) =>
      finish(
        deps,
        req,
        res,
        method,
        route.path,
        errorReply(deps.log, err, method, route.path),
        started,
      ),
  );
}

async function handleParsed(
  deps: ServerDeps,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  method: string,
  started: number,
): Promise<void> {
  let routeLabel = "unmatched";
  let reply: Answer;
  try {
    // A target no route can have is refused before auth: the answer is the same for every one.
    const target = requestTarget(req);
    let matched: ReturnType<Router["match"]> | undefined;
    let unmatched: unknown;
    try {
      matched = deps.router.match(method, target.pathname);
      // An upgrade route asked for without the upgrade.
      if (!matched.route.handler) {
        const protocol = matched.route.protocol;
        unmatched = new HttpError(
          426,
          "upgrade_required",
          `this route takes an HTTP upgrade${protocol ? ` (Upgrade: ${protocol})` : ""}`,
          undefined,
          undefined,
          protocol ? { upgrade: protocol, connection: "Upgrade" } : undefined,
        );
        matched = undefined;
      }
    } catch (err) {
      unmatched = err;
    }
    // Unknown routes need the token too: an anonymous caller learns nothing about the API. A
    // wrong method on a public path (DELETE /health) is no secret.
    const publicRefusal = unmatched instanceof MethodNotAllowed && unmatched.publicPath;
    const auth = matched?.route.auth ?? (publicRefusal ? "none" : "token");
    if (auth === "token") authenticate(deps, req, matched?.route.path ?? routeLabel);
    if (!matched) throw unmatched;
    const { route, params } = matched;
    routeLabel = route.path;
    const body = route.body
      ? await readJson(req, route.bodyLimitBytes ?? deps.bodyLimitBytes ?? BODY_LIMIT_BYTES)
      : undefined;
    const query = new URLSearchParams(target.search);
    reply = await route.handler!(new Context(req, res, params, body, query));
  } catch (err) {
    reply = errorReply(deps.log, err, method, routeLabel);
  }
  finish(deps, req, res, method, routeLabel, reply, started);
}

function finish(
  deps: ServerDeps,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  method: string,
  route: string,
  reply: Answer,
  started: number,
): void {
  if (reply === undefined) {
    // The handler answered (a stream): counted once the answer is over.
    res.once("close", () =>
      deps.metrics.recordRequest(
        method,
        route,
        res.statusCode,
        (performance.now() - started) / 1000,
      ),
    );
    return;
  }
  const status = send(req, res, reply);
  const seconds = (performance.now() - started) / 1000;
  deps.metrics.recordRequest(method, route, status, seconds);
  // Every failure is logged with its reason (auth failures also by `authenticate`, 500s also
  // with the error by `errorReply`); a successful request only at debug level.
  if (status >= 400) {
    const error = (reply.body as { error?: unknown } | undefined)?.error;
    deps.log.info(
      { method, route, status: String(status), error, ms: Math.round(seconds * 1000) },
      "request",
    );
  } else if (deps.log.isLevelEnabled("debug")) {
    deps.log.debug(
      { method, route, status: String(status), ms: Math.round(seconds * 1000) },
      "request",
    );
  }
}

/** The request's path and query; 400 naming `target` when it is neither form HTTP allows. */
function requestTarget(req: http.IncomingMessage): Target {
  const target = parseTarget(req.url ?? "/");
  if (target) return target;
  throw new HttpError(
    400,
    "invalid_target",
    "the request target must be a path or an absolute http(s) URL",
    "target",
  );
}

function authenticate(deps: ServerDeps, req: http.IncomingMessage, route: string): void {
  const result = deps.verifier.check(req.headers.authorization);
  if (!result.ok) throw refused(deps, req, route, result.reason);
}

/** Counts and logs a refused caller (never its token) and gives the 401 to answer. */
export function refused(
  deps: Pick<ServerDeps, "log" | "metrics">,
  req: http.IncomingMessage,
  route: string,
  reason: string,
): HttpError {
  deps.metrics.authFailure(reason);
  deps.log.warn({ reason, route, remote: req.socket.remoteAddress }, "auth failed");
  return new HttpError(401, "unauthorized", `bearer token ${reason}`);
}

async function handleUpgrade(
  deps: ServerDeps,
  req: http.IncomingMessage,
  socket: Duplex,
  head: Buffer,
): Promise<void> {
  const started = performance.now();
  const method = req.method ?? "POST";
  let routeLabel = "unmatched";
  socket.on("error", () => socket.destroy());
  try {
    // Only targets a route takes are upgrades (shouldUpgradeCallback), so this parses.
    const target = requestTarget(req);
    const { route, params } = deps.router.match(method, target.pathname);
    routeLabel = route.path;
    if ((route.auth ?? "token") === "token") authenticate(deps, req, route.path);
    const query = new URLSearchParams(target.search);
    await route.upgrade!({ req, params, query, socket, head });
    deps.metrics.recordRequest(method, routeLabel, 101, (performance.now() - started) / 1000);
  } catch (err) {
    const reply = errorReply(deps.log, err, method, routeLabel);
    deps.metrics.recordRequest(
      method,
      routeLabel,
      reply.status,
      (performance.now() - started) / 1000,
    );
    deps.log.info({ method, route: routeLabel, status: String(reply.status) }, "upgrade refused");
    refuseUpgrade(socket, reply);
  }
}
