import http from "node:http";
import type { Logger } from "pino";
import type { Metrics } from "../metrics";
import type { TokenVerifier } from "./auth";
import { HttpError } from "./errors";
import type { Reply, Router } from "./router";

export const BODY_LIMIT_BYTES = 128 * 1024;

export interface ServerDeps {
  router: Router;
  verifier: TokenVerifier;
  log: Logger;
  metrics: Metrics;
  bodyLimitBytes?: number;
}

const JSON_TYPE = "application/json; charset=utf-8";

export function createHttpServer(deps: ServerDeps): http.Server {
  const server = http.createServer((req, res) => void handle(deps, req, res));
  server.keepAliveTimeout = 65_000;
  return server;
}

async function handle(deps: ServerDeps, req: http.IncomingMessage, res: http.ServerResponse) {
  const started = process.hrtime.bigint();
  const method = req.method ?? "GET";
  let routeLabel = "unmatched";
  let reply: Reply;
  const abort = new AbortController();
  res.on("close", () => abort.abort());
  try {
    const url = new URL(req.url ?? "/", "http://dtma");
    let matched: ReturnType<Router["match"]> | undefined;
    let unmatched: unknown;
    try {
      matched = deps.router.match(method, url.pathname);
    } catch (err) {
      unmatched = err;
    }
    // Unknown routes need the token too: an anonymous caller learns nothing about the API.
    if (!matched?.route.public) authenticate(deps, req, matched?.route.path ?? routeLabel);
    if (!matched) throw unmatched;
    const { route, params } = matched;
    routeLabel = route.path;
    const body = route.body
      ? await readJson(req, deps.bodyLimitBytes ?? BODY_LIMIT_BYTES)
      : undefined;
    reply = await route.handler({
      req,
      params,
      query: url.searchParams,
      body,
      signal: abort.signal,
    });
  } catch (err) {
    reply = errorReply(deps.log, err, method, routeLabel);
  }
  send(res, reply);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const labels = { method, route: routeLabel, status: String(reply.status) };
  deps.metrics.httpRequests.inc(labels);
  deps.metrics.httpDuration.observe({ route: routeLabel }, seconds);
  if (method !== "GET" || reply.status >= 400) {
    deps.log.info({ ...labels, ms: Math.round(seconds * 1000) }, "request");
  }
}

function authenticate(deps: ServerDeps, req: http.IncomingMessage, route: string): void {
  const result = deps.verifier.check(req.headers.authorization);
  if (result.ok) return;
  deps.metrics.authFailures.inc({ reason: result.reason });
  deps.log.warn({ reason: result.reason, route, remote: req.socket.remoteAddress }, "auth failed");
  throw new HttpError(401, "unauthorized", `bearer token ${result.reason}`);
}

function readJson(req: http.IncomingMessage, limit: number): Promise<unknown> {
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

function errorReply(log: Logger, err: unknown, method: string, route: string): Reply {
  if (err instanceof HttpError) return { status: err.status, body: err.toJSON() };
  log.error({ err, method, route }, "request failed");
  return { status: 500, body: { error: "internal", message: "internal error (logged)" } };
}

function send(res: http.ServerResponse, reply: Reply): void {
  if (res.headersSent || res.destroyed) return;
  if (reply.body === undefined) {
    res.writeHead(reply.status).end();
    return;
  }
  const raw = Buffer.isBuffer(reply.body) || typeof reply.body === "string";
  const payload = raw ? (reply.body as Buffer | string) : JSON.stringify(reply.body);
  res.writeHead(reply.status, {
    "content-type": reply.contentType ?? JSON_TYPE,
    "content-length": Buffer.byteLength(payload),
    "cache-control": "no-store",
  });
  res.end(payload);
}
