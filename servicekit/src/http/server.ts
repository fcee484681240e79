import http from "node:http";
import type https from "node:https";
import type { Duplex } from "node:stream";
import type { Logger } from "pino";
import type { AuthResult } from "./auth";
import { HttpError, MethodNotAllowed } from "./errors";
import type { Reply, RequestContext, Router } from "./router";
import { parseTarget, type Target } from "./target";

export const BODY_LIMIT_BYTES = 128 * 1024;

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

const JSON_TYPE = "application/json; charset=utf-8";

/** A certificate (chain) and its private key, PEM: the server then speaks only TLS. */
export interface TlsMaterial {
  cert: string;
  key: string;
}

/**
 * TLS 1.2 and 1.3 only; for 1.2 only forward-secret AEAD suites (TLS 1.3's are all AEAD and keep
 * Node's defaults).
 */
const TLS12_CIPHERS = [
  "ECDHE-ECDSA-AES128-GCM-SHA256",
  "ECDHE-RSA-AES128-GCM-SHA256",
  "ECDHE-ECDSA-AES256-GCM-SHA384",
  "ECDHE-RSA-AES256-GCM-SHA384",
  "ECDHE-ECDSA-CHACHA20-POLY1305",
  "ECDHE-RSA-CHACHA20-POLY1305",
].join(":");

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
        {
          ...options,
          cert: tls.cert,
          key: tls.key,
          minVersion: "TLSv1.2",
          ciphers: `${TLS12_CIPHERS}:TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256`,
          honorCipherOrder: true,
        },
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

/** Reads a JSON body of at most `limit` bytes (413 above it, 415 when not JSON, 400 when malformed). */
export function readJson(req: http.IncomingMessage, limit: number): Promise<unknown> {
  const declared = Number(req.headers["content-length"] ?? 0);
  if (declared > limit) {
    req.resume();
    return Promise.reject(tooLarge(limit));
  }
  const type = req.headers["content-type"] ?? "";
  if (!/^application\/json\s*(;|$)/i.test(type)) {
    req.resume();
    return Promise.reject(
      new HttpError(415, "unsupported_media_type", "the body must be application/json", "body"),
    );
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.removeAllListeners("data");
        req.resume();
        reject(tooLarge(limit));
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => {
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString("utf8")));
      } catch {
        reject(new HttpError(400, "invalid_json", "the body is not valid JSON", "body"));
      }
    });
    req.on("error", reject);
  });
}

function tooLarge(limit: number): HttpError {
  return new HttpError(413, "body_too_large", `the body exceeds ${limit} bytes`, "body");
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

/** Answers a refused upgrade on the raw socket (nothing else was written to it) and closes it. */
export function refuseUpgrade(socket: Duplex, reply: Reply): void {
  if (socket.destroyed) return;
  const payload = JSON.stringify(reply.body ?? {});
  let extra = "";
  for (const [k, v] of Object.entries(reply.extraHeaders ?? {}))
    if (k !== "connection") extra += `${k}: ${v}\r\n`;
  socket.end(
    `HTTP/1.1 ${reply.status} ${http.STATUS_CODES[reply.status] ?? "Error"}\r\n` +
      `content-type: ${JSON_TYPE}\r\ncontent-length: ${Buffer.byteLength(payload)}\r\n` +
      `cache-control: no-store\r\n${extra}connection: close\r\n\r\n${payload}`,
  );
}

export function errorReply(log: Logger, err: unknown, method: string, route: string): Reply {
  if (err instanceof HttpError) {
    return {
      status: err.status,
      body: err.toJSON(),
      ...(err.headers ? { extraHeaders: err.headers } : {}),
    };
  }
  log.error({ err, method, route }, "request failed");
  return { status: 500, body: { error: "internal", message: "internal error (logged)" } };
}

/** Writes the reply; returns the status sent (304 when the client already has the body). */
export function send(req: http.IncomingMessage, res: http.ServerResponse, reply: Reply): number {
  if (res.headersSent || res.destroyed) return reply.status;
  if (reply.headers) {
    const ifNoneMatch = req.headers["if-none-match"];
    if (reply.etag && ifNoneMatch && matchesEtag(ifNoneMatch, reply.etag)) {
      res.writeHead(304, { etag: reply.etag, "cache-control": "no-store" }).end();
      return 304;
    }
    res.writeHead(reply.status, reply.headers);
    res.end(reply.body as string);
    return reply.status;
  }
  if (reply.body === undefined) {
    res.writeHead(reply.status, reply.extraHeaders).end();
    return reply.status;
  }
  const raw = Buffer.isBuffer(reply.body) || typeof reply.body === "string";
  const payload = raw ? (reply.body as Buffer | string) : JSON.stringify(reply.body);
  res.writeHead(reply.status, {
    ...reply.extraHeaders,
    "content-type": reply.contentType ?? JSON_TYPE,
    "content-length": Buffer.byteLength(payload),
    "cache-control": "no-store",
  });
  res.end(payload);
  return reply.status;
}

/** If-None-Match: `*` or a list of entity tags; weak ones compare by their opaque part. */
function matchesEtag(header: string, etag: string): boolean {
  return header.split(",").some((t) => {
    const tag = t.trim();
    return tag === "*" || tag === etag || tag === `W/${etag}`;
  });
}
