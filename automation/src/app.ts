import Fastify, { type FastifyBaseLogger, type FastifyInstance } from "fastify";
import type { Logger } from "pino";
import type { Pool } from "pg";
import { authenticate, type SessionVerifier } from "./auth/auth";
import { FailureLimiter } from "./auth/failures";
import { guard } from "./auth/guard";
import { isKnownDtmaToken } from "./heartbeat";
import { clientErrorHandler, errorHandler, frameworkErrors } from "./http/edge";
import { EventStreams } from "./events/eventStreams";
import { OPERATION_EVENTS } from "./events/operationEvents";
import { FLEET_EVENTS } from "./fleet/events";
import { jsonBodies } from "./http/jsonBody";
import type { Metrics } from "./metrics";
import { serveOpenApi } from "./openapi";
import type { AppDeps } from "./routes/deps";
import { registerFleetRoutes, type FleetApi } from "./routes/fleet";
import { operationRoutes } from "./routes/operations";
import { systemRoutes } from "./routes/system";
import { toolboxRoutes } from "./routes/toolboxes";
import type { TokenCipher } from "./secrets/tokenCipher";
import {
  zodValidatorCompiler,
  type Offer,
  type RouteApp,
  type ZodTypeProvider,
} from "./routes/validation";
import type { ToolboxService } from "./toolboxService";

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
  /**
   * How often the streams of events nothing notifies are read (ms; default 250), and every
   * stream while the LISTEN connection is down.
   */
  ssePollMs?: number;
  /** Fleet upgrades, reconciliations and versions (absent: not served). */
  fleet?: FleetApi;
  /** Failed authentications an address may have per minute before it gets 429 (default 30). */
  authFailuresPerMinute?: number;
  /** fastify's trustProxy: whose X-Forwarded-For names the caller's address (default: nobody). */
  trustProxy?: string[];
  /** The service's own log, for its parts' warnings (HTTP request logs follow `logger`). */
  log?: Logger;
  /** LISTEN here for operations' events (absent: their streams poll every ssePollMs). */
  databaseUrl?: string;
  /** Event streams one user / the service token may hold at once (default 10 / 500). */
  eventStreamsPerUser?: number;
  eventStreamsPerService?: number;
}

/** Builds the HTTP app from its dependencies (no singletons; tests build as many as they like). */
export function buildApp(opts: AppOptions): FastifyInstance {
  const app: FastifyInstance = Fastify({
    loggerInstance: (opts.logger || undefined) as FastifyBaseLogger | undefined,
    bodyLimit: 64 * 1024,
    frameworkErrors,
    clientErrorHandler,
    trustProxy: opts.trustProxy?.length ? opts.trustProxy : false,
  });
  const events = new EventStreams({
    pool: opts.pool,
    log: opts.log ?? app.log,
    sources: [OPERATION_EVENTS, FLEET_EVENTS],
    connectionString: opts.databaseUrl,
    fallbackPollMs: opts.ssePollMs ?? 250,
    limits: {
      perUser: opts.eventStreamsPerUser ?? 10,
      perService: opts.eventStreamsPerService ?? 500,
    },
  });
  const deps: AppDeps = {
    pool: opts.pool,
    service: opts.service,
    cipher: opts.cipher,
    metrics: opts.metrics,
    heartbeatTimeoutSeconds: opts.heartbeatTimeoutSeconds,
    offer: opts.offer,
    authenticate: async (req) =>
      req.principal ?? (await authenticate(req, opts.serviceToken, opts.sessions)),
    ready: opts.ready,
    events,
  };
  jsonBodies(app);
  app.decorateRequest("authenticated", false);
  app.addHook(
    "onRequest",
    guard({
      serviceToken: opts.serviceToken,
      sessions: opts.sessions,
      knownDtmaToken: (token) => isKnownDtmaToken(opts.pool, token),
      failures: new FailureLimiter(opts.authFailuresPerMinute ?? 30),
    }),
  );
  app.addHook("onReady", () => events.start());
  // Before the server closes: it waits for every connection, and a stream ends only when told.
  app.addHook("preClose", () => events.stop());
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler((_req, reply) =>
    reply.code(404).send({ error: "not_found", message: "no such route" }),
  );

  app.setValidatorCompiler(zodValidatorCompiler);
  serveOpenApi(app);
  registerRoutes(app.withTypeProvider<ZodTypeProvider>(), deps, opts.fleet);
  return app;
}

/** Every route of the API: buildApp's, and the OpenAPI test's, to see what each validates with. */
export function registerRoutes(app: RouteApp, deps: AppDeps, fleet?: FleetApi): void {
  systemRoutes(app, deps);
  toolboxRoutes(app, deps);
  operationRoutes(app, deps);
  if (fleet) registerFleetRoutes(app, { ...fleet, ...deps });
}
