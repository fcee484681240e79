import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyRequest,
} from "fastify";
import type { Logger } from "pino";
import type { Pool } from "pg";
import { authenticate, HttpError, type Principal, type SessionVerifier } from "./auth/auth";
import type { Metrics } from "./metrics";
import { operationRoutes } from "./routes/operations";
import { systemRoutes } from "./routes/system";
import { toolboxRoutes } from "./routes/toolboxes";
import type { TokenCipher } from "./secrets/tokenCipher";
import type { Offer } from "./routes/validation";
import type { ToolboxService } from "./toolboxService";

export interface AppDeps {
  pool: Pool;
  service: ToolboxService;
  cipher: TokenCipher;
  metrics: Metrics;
  heartbeatTimeoutSeconds: number;
  /** Regions and sizes requests may name. */
  offer: Offer;
  authenticate(req: FastifyRequest): Promise<Principal>;
  ready(): Promise<boolean>;
  /** How often an event stream looks for new events (ms). */
  ssePollMs: number;
  /** Open event streams, ended on shutdown. */
  streams: Set<() => void>;
}

export interface AppOptions {
  pool: Pool;
  service: ToolboxService;
  cipher: TokenCipher;
  metrics: Metrics;
  serviceToken: string;
  sessions?: SessionVerifier;
  heartbeatTimeoutSeconds: number;
  offer: Offer;
  ready: () => Promise<boolean>;
  logger: Logger | false;
  ssePollMs?: number;
}

/**
 * Many HTTP clients send `content-type: application/json` (or another type) with no body on a
 * DELETE or a body-less POST: an empty body is no body, whatever its type. A non-empty body is
 * parsed as JSON (fastify's own parser, prototype poisoning refused) or refused with 415.
 */
function acceptEmptyBodies(app: FastifyInstance): void {
  const json = app.getDefaultJsonParser("error", "error");
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "string" }, (req, body, done) => {
    if (body === "") done(null, undefined);
    else void json(req, String(body), done);
  });
  app.addContentTypeParser("*", { parseAs: "string" }, (_req, body, done) => {
    if (body === "") done(null, undefined);
    else
      done(
        Object.assign(new Error("unsupported content type: send application/json"), {
          statusCode: 415,
        }),
        undefined,
      );
  });
}

/** Builds the HTTP app from its dependencies (no singletons; tests build as many as they like). */
export function buildApp(opts: AppOptions): FastifyInstance {
  const app: FastifyInstance = Fastify({
    loggerInstance: (opts.logger || undefined) as FastifyBaseLogger | undefined,
    bodyLimit: 64 * 1024,
  });
  const streams = new Set<() => void>();
  const deps: AppDeps = {
    pool: opts.pool,
    service: opts.service,
    cipher: opts.cipher,
    metrics: opts.metrics,
    heartbeatTimeoutSeconds: opts.heartbeatTimeoutSeconds,
    offer: opts.offer,
    authenticate: (req) => authenticate(req, opts.serviceToken, opts.sessions),
    ready: opts.ready,
    ssePollMs: opts.ssePollMs ?? 250,
    streams,
  };
  acceptEmptyBodies(app);
  app.addHook("onClose", (_instance, done) => {
    for (const stop of streams) stop();
    done();
  });

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, req, reply) => {
    if (err instanceof HttpError) {
      req.log.info({ code: err.code, reason: err.message }, "request refused");
      return reply.code(err.statusCode).send({
        error: err.code,
        message: err.message,
        ...(err.field ? { field: err.field } : {}),
      });
    }
    const status = err.statusCode ?? 500;
    if (status >= 400 && status < 500) {
      req.log.info({ code: err.code, reason: err.message }, "request refused");
      return reply.code(status).send({ error: "invalid_request", message: err.message });
    }
    req.log.error({ err }, "request failed");
    return reply.code(500).send({ error: "internal", message: "internal error" });
  });
  app.setNotFoundHandler((_req, reply) =>
    reply.code(404).send({ error: "not_found", message: "no such route" }),
  );

  systemRoutes(app, deps);
  toolboxRoutes(app, deps);
  operationRoutes(app, deps);
  return app;
}
