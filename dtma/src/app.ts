import type { AddressInfo } from "node:net";
import type http from "node:http";
import type { Logger } from "pino";
import type { Config } from "./config";
import { DockerEngine } from "./docker/engine";
import { HeartbeatSender } from "./heartbeat";
import { createHttpServer, Router, TokenVerifier } from "@agentopia-toolboxes/servicekit/http";
import { Metrics } from "./metrics";
import { stdioRoutes } from "./routes/stdio";
import { systemRoutes } from "./routes/system";
import { toolRoutes } from "./routes/tools";
import { StatusSampler } from "./status/sampler";
import { DockerProbe, type DockerProbeOptions } from "./status/dockerProbe";
import { StdioAttachments } from "./stdio/attachments";
import { ToolManager } from "./tools/manager";

export interface AppDeps {
  config: Config;
  log: Logger;
  version: string;
  /** Defaults to a client of config.dockerSocket. */
  docker?: DockerEngine;
  /** Heartbeat backoff bounds; tests shorten them. */
  heartbeatBackoffMs?: { min: number; max: number };
  random?: () => number;
  /** How often /health pings Docker, and how long a ping may take. */
  dockerProbe?: DockerProbeOptions;
}

export interface App {
  server: http.Server;
  tools: ToolManager;
  sampler: StatusSampler;
  stdio: StdioAttachments;
  heartbeat: HeartbeatSender;
  metrics: Metrics;
  docker: DockerEngine;
  /** Listens and starts the background work; resolves with the bound port. */
  start(): Promise<number>;
  /** Stops taking requests and background work; tool containers keep running. */
  stop(): Promise<void>;
}

export function createApp(deps: AppDeps): App {
  const { config, log, version } = deps;
  const docker =
    deps.docker ?? new DockerEngine(config.dockerSocket, { maxPulls: config.pulls.max });
  const metrics = new Metrics();
  const tools = new ToolManager({
    docker,
    log,
    scope: config.scope,
    account: config.account,
    toolNetwork: config.toolNetwork,
    ...(config.toolSubnets ? { toolSubnets: config.toolSubnets } : {}),
    ...(config.gateway ? { gateway: config.gateway } : {}),
    caps: config.caps,
    registries: config.registries,
    pullTimeoutMs: config.pulls.timeoutMs,
    logs: config.logs,
    onChange: () => void sampler.refresh(),
  });
  const stdio = new StdioAttachments({ docker, tools, log, maxLanes: config.caps.lanes });
  const sampler = new StatusSampler({
    docker,
    tools,
    log,
    version,
    refreshMs: config.statusRefreshMs,
  });
  metrics.setGaugeSource(() => {
    const s = sampler.status;
    const byState = new Map<string, number>();
    for (const t of s.tool_instances) byState.set(t.state, (byState.get(t.state) ?? 0) + 1);
    const open = stdio.counts;
    return [
      {
        name: "dtma_tools",
        help: "Tool containers by state.",
        values: [...byState].map(([state, n]) => [{ state }, n]),
      },
      {
        name: "dtma_docker_reachable",
        help: "1 when the Docker daemon answered the last sample.",
        values: [[{}, s.docker.reachable ? 1 : 0]],
      },
      {
        name: "dtma_stdio_attachments",
        help: "Open stdio attachments (one per tool at most).",
        values: [[{}, open.attachments]],
      },
      {
        name: "dtma_stdio_lanes",
        help: "Lanes of per_session tools whose process may still run.",
        values: [[{}, open.lanes]],
      },
    ];
  });
  const heartbeat = new HeartbeatSender({
    url: `${config.apiBaseUrl}/heartbeat`,
    token: config.tokens.current,
    image: config.image,
    intervalMs: config.heartbeatIntervalMs,
    status: () => sampler.status,
    log,
    metrics,
    ...(deps.heartbeatBackoffMs
      ? { minBackoffMs: deps.heartbeatBackoffMs.min, maxBackoffMs: deps.heartbeatBackoffMs.max }
      : {}),
    ...(deps.random ? { random: deps.random } : {}),
  });
  const probe = new DockerProbe(docker, log, deps.dockerProbe);
  const router = new Router().add(
    ...systemRoutes({ sampler, metrics, probe }),
    ...toolRoutes({ tools, metrics }),
    ...stdioRoutes({ stdio }),
  );
  const server = createHttpServer({
    router,
    verifier: new TokenVerifier(config.tokens),
    log,
    metrics,
  });

  let gatewayTimer: NodeJS.Timeout | undefined;
  return {
    server,
    tools,
    sampler,
    stdio,
    heartbeat,
    metrics,
    docker,
    async start() {
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(config.port, config.host, () => resolve());
      });
      const port = (server.address() as AddressInfo).port;
      log.info({ port, scope: config.scope, tool_network: config.toolNetwork }, "DTMA listening");
      // The first sample and heartbeat never delay start-up; a down daemon shows in /status
      // and /health.
      probe.start();
      tools.watcher.start();
      void sampler.start().then(() => heartbeat.start());
      // The gateway joins every tool network, also after it was recreated.
      const reconcile = () =>
        tools.networks
          .reconcile()
          .catch((err: unknown) => log.warn({ err }, "connecting the gateway failed"));
      void reconcile();
      gatewayTimer = setInterval(() => void reconcile(), config.statusRefreshMs);
      gatewayTimer.unref();
      return port;
    },
    async stop() {
      clearInterval(gatewayTimer);
      sampler.stop();
      probe.stop();
      tools.watcher.stop();
      await heartbeat.stop();
      // Upgraded sockets would keep server.close() waiting; the tools keep running.
      stdio.closeAll();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      });
      docker.close();
      log.info("DTMA stopped; tool containers keep running");
    },
  };
}
