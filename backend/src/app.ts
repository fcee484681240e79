import { randomUUID, X509Certificate } from "node:crypto";
import type http from "node:http";
import type { AddressInfo } from "node:net";
import { DtmaClient } from "@agentopia-toolboxes/dtma/client";
import { createHttpServer, Router, TokenVerifier } from "@agentopia-toolboxes/servicekit/http";
import type { Logger } from "pino";
import { AgentTokens } from "./auth/agentTokens";
import { gatewayAuthenticator } from "./auth/gatewayAuth";
import { Revocations } from "./auth/revocations";
import type { Config } from "./config";
import { createMcpGateway } from "./mcp";
import { Metrics } from "./metrics";
import { openapiDocument } from "./openapi";
import { agentTokenRoutes } from "./routes/agentTokens";
import { serverRoutes } from "./routes/servers";
import { systemRoutes } from "./routes/system";
import { ServerRegistry } from "./servers/registry";

export interface AppDeps {
  config: Config;
  log: Logger;
  version: string;
  now?: () => number;
}

export interface App {
  server: http.Server;
  registry: ServerRegistry;
  metrics: Metrics;
  /** Listens, then reads the DTMA's servers (a DTMA that is down only delays that); resolves with the port. */
  start(): Promise<number>;
  /** Stops taking requests, ends sessions and lanes; the servers keep running on the droplet. */
  stop(): Promise<void>;
}

/** The composition root: no module-level state, so tests build as many apps as they like. */
export function createApp(deps: AppDeps): App {
  const { config, log, version } = deps;
  const now = deps.now ?? Date.now;
  const bootId = randomUUID();
  const startedAt = now();
  const metrics = new Metrics();
  const dtma = new DtmaClient({
    baseUrl: config.dtma.url,
    token: config.dtma.token,
    timeoutMs: config.dtma.timeoutMs,
  });
  const registry = new ServerRegistry({
    dtma,
    log,
    maxMessageBytes: config.maxMessageBytes,
    initializeTimeoutMs: config.limits.connectTimeoutMs,
    version,
    refreshMs: config.serverRefreshMs,
  });
  const revocations = new Revocations(now);
  const tokens = new AgentTokens(config.internalApiSecret, revocations, now);
  const gateway = createMcpGateway({
    servers: registry,
    authenticate: gatewayAuthenticator({
      agentGatewayToken: config.agentGatewayToken,
      tokens,
      now,
    }),
    limits: config.limits,
    allowedOrigins: config.allowedOrigins,
    log,
    metrics,
    version,
    now,
  });
  metrics.setGaugeSource(() => {
    const byState = new Map<string, number>();
    for (const s of registry.list()) {
      const state = s.supervisor.view().state;
      byState.set(state, (byState.get(state) ?? 0) + 1);
    }
    return [
      {
        name: "backend_mcp_sessions",
        help: "Agent sessions open, by server.",
        values: Object.entries(gateway.stats().sessions).map(
          ([server, n]): [Record<string, string>, number] => [{ server }, n],
        ),
      },
      {
        name: "backend_servers",
        help: "MCP servers by lane state.",
        values: [...byState].map(([state, n]) => [{ state }, n]),
      },
    ];
  });

  const router = new Router();
  router.add(
    ...systemRoutes({
      dtma,
      registry,
      metrics,
      version,
      image: config.image,
      bootId,
      startedAt,
      sessions: () => gateway.stats().sessions,
      revocations: () => revocations.size,
      openapi: () => openapiDocument(router, version),
    }),
    ...serverRoutes({
      dtma,
      registry,
      log,
      sessions: (name) => gateway.stats().sessions[name] ?? 0,
      deployTimeoutMs: config.deployTimeoutMs,
      readTimeoutMs: config.limits.connectTimeoutMs,
    }),
    ...agentTokenRoutes({
      tokens,
      revocations,
      maxTtlSeconds: config.agentTokenMaxTtlSeconds,
      bootId,
      log,
      now,
    }),
    ...gateway.routes,
  );
  const server = createHttpServer(
    {
      router,
      verifier: new TokenVerifier({ current: config.internalApiSecret }),
      log,
      metrics,
    },
    config.tls,
  );
  const pruner = setInterval(() => revocations.prune(), 60_000);
  pruner.unref();

  return {
    server,
    registry,
    metrics,
    async start() {
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(config.port, config.host, () => resolve());
      });
      const port = (server.address() as AddressInfo).port;
      if (config.tls) {
        const cert = new X509Certificate(config.tls.cert);
        log.info(
          {
            port,
            dtma: config.dtma.url,
            tls: { subject_alt_names: cert.subjectAltName, valid_to: cert.validTo },
          },
          "backend listening (HTTPS only)",
        );
        if (Date.parse(cert.validTo) < now())
          log.error({ valid_to: cert.validTo }, "the TLS certificate has expired");
      } else {
        log.warn(
          { port, dtma: config.dtma.url },
          "backend listening on plain HTTP: no TLS_CERT/TLS_KEY (tokens cross this port in clear text; only for the local target on loopback)",
        );
      }
      registry.start();
      // Servers deployed before a restart are still running: read them now (requests for a server
      // not yet known refresh on their own).
      await registry
        .refresh()
        .then((tools) => log.info({ servers: tools.length }, "servers read from the DTMA"))
        .catch((err: unknown) =>
          log.warn({ err: (err as Error).message }, "the DTMA did not answer; servers read later"),
        );
      return port;
    },
    async stop() {
      clearInterval(pruner);
      gateway.closeAll("backend stopping");
      registry.stop();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      dtma.close();
      log.info("backend stopped; MCP servers keep running");
    },
  };
}
