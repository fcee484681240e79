import { randomUUID } from "node:crypto";
import os from "node:os";
import type { FastifyInstance } from "fastify";
import type { Logger } from "pino";
import { Pool } from "pg";
import type { PgBoss } from "pg-boss";
import { buildApp } from "./app";
import type { SessionVerifier } from "./auth/auth";
import { migrate } from "./db/migrate";
import type { ToolboxEngine } from "./engine/types";
import { sweepUnresponsive } from "./heartbeat";
import { createMetrics } from "./metrics";
import {
  defaultQueueOptions,
  HEARTBEAT_SWEEP_QUEUE,
  startQueue,
  type QueueOptions,
} from "./queue/queue";
import { startWorker } from "./queue/worker";
import type { BackendProbe } from "./fleet/health";
import { startFleet, type FleetSettings, type RunningFleet } from "./fleet/runner";
import { MIN_SECRET, SecretScrubber, tooShort, urlPassword, type Secret } from "./secrets/scrubber";
import { TokenCipher } from "./secrets/tokenCipher";
import type { StackSettings } from "./stackRequest";
import { ToolboxService } from "./toolboxService";

export interface ServiceOptions {
  databaseUrl: string;
  engine: ToolboxEngine;
  /**
   * Secrets the engine holds (SSH key, state passphrase, backend password): scrubbed from every
   * error text and event, like the service token, the encryption key and the database password.
   */
  engineSecrets?: Secret[];
  log: Logger;
  serviceToken: string;
  sessions?: SessionVerifier;
  tokenEncryptionKey: Buffer;
  stackSettings: StackSettings;
  heartbeatTimeoutSeconds: number;
  /** Operations run at once by this process; 0 = API only. */
  workerConcurrency: number;
  queue: Partial<Omit<QueueOptions, "connectionString">> & { retryLimit: number };
  pollingIntervalSeconds?: number;
  ssePollMs?: number;
  /** Log HTTP requests (off in tests and the benchmark). */
  httpLogs?: boolean;
  /** Fleet upgrades, reconciliation and canaries (config.ts); defaults from stackSettings. */
  fleet?: Partial<FleetSettings>;
  /** Ticks of an upgrade driver (ms, default 500). */
  driverPollMs?: number;
  /** How backends are asked for their /status during upgrades (default HTTP(S)). */
  probe?: BackendProbe;
  /** Failed authentications an address may have per minute before it gets 429. */
  authFailuresPerMinute?: number;
  /** Proxies whose X-Forwarded-For is believed (fastify's trustProxy). */
  trustProxy?: string[];
  /** Event streams one user / the service token may hold at once. */
  eventStreamsPerUser?: number;
  eventStreamsPerService?: number;
}

export interface RunningService {
  app: FastifyInstance;
  boss: PgBoss;
  pool: Pool;
  workerId: string;
  fleet: RunningFleet;
  stop(): Promise<void>;
}

/** Composition root shared by main, the tests and the benchmark: migrate, queue, worker, app. */
export async function startService(opts: ServiceOptions): Promise<RunningService> {
  const pool = new Pool({ connectionString: opts.databaseUrl, max: 10 + opts.workerConcurrency });
  pool.on("error", (err) => opts.log.warn({ err: err.message }, "idle database connection lost"));
  try {
    const applied = await migrate(pool);
    if (applied.length > 0) opts.log.info({ applied }, "migrations applied");
    const boss = await startQueue(
      { connectionString: opts.databaseUrl, ...defaultQueueOptions, ...opts.queue },
      (err) => opts.log.error({ err: err.message }, "queue error"),
    );
    const metrics = createMetrics(pool);
    const cipher = new TokenCipher(opts.tokenEncryptionKey);
    const fleetSettings: FleetSettings = {
      environment: opts.stackSettings.platformStack?.split("/").pop() ?? opts.stackSettings.target,
      requireDigestPins: false,
      target: opts.stackSettings.target,
      dtmaImage: opts.stackSettings.dtmaImage,
      backendImage: opts.stackSettings.backendImage,
      canaryStacks: [],
      canarySyncSchedule: "",
      reconcileSchedule: "",
      reconcileHeartbeatThresholdSeconds: 3600,
      ...opts.fleet,
    };
    const secrets = [
      fleetSettings.digitalocean?.token,
      opts.serviceToken,
      opts.tokenEncryptionKey,
      urlPassword(opts.databaseUrl),
      ...(opts.engineSecrets ?? []),
    ];
    if (secrets.some(tooShort)) {
      opts.log.warn(
        `a secret (database or state backend password, passphrase) is shorter than ${MIN_SECRET} characters: error texts cannot be scrubbed of it without revealing it; use a longer one`,
      );
    }
    const scrubber = SecretScrubber.of(secrets);
    const workerId = `${os.hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
    const worker = await startWorker({
      pool,
      boss,
      engine: opts.engine,
      cipher,
      scrubber,
      stackSettings: opts.stackSettings,
      log: opts.log,
      metrics,
      workerId,
      concurrency: opts.workerConcurrency,
      retryLimit: opts.queue.retryLimit,
      pollingIntervalSeconds: opts.pollingIntervalSeconds,
      connectionString: opts.databaseUrl,
    });
    await boss.work(HEARTBEAT_SWEEP_QUEUE, async () => {
      const n = await sweepUnresponsive(pool, opts.heartbeatTimeoutSeconds);
      if (n > 0)
        opts.log.warn({ count: n }, "toolboxes marked unresponsive after missed heartbeats");
    });
    await boss.schedule(HEARTBEAT_SWEEP_QUEUE, "* * * * *");
    const fleet = await startFleet({
      pool,
      boss,
      engine: opts.engine,
      cipher,
      scrubber,
      log: opts.log,
      registry: metrics.registry,
      workerId,
      settings: fleetSettings,
      slots: opts.workerConcurrency > 0 ? 2 : 0,
      heartbeatSeconds: opts.queue.heartbeatSeconds ?? defaultQueueOptions.heartbeatSeconds,
      pollIntervalSeconds: opts.pollingIntervalSeconds ?? 2,
      driverPollMs: opts.driverPollMs ?? 500,
      connectionString: opts.databaseUrl,
      probe: opts.probe,
    });
    let stopping = false;
    const app = buildApp({
      pool,
      service: new ToolboxService(pool, boss),
      cipher,
      metrics,
      serviceToken: opts.serviceToken,
      sessions: opts.sessions,
      heartbeatTimeoutSeconds: opts.heartbeatTimeoutSeconds,
      offer: {
        regions: opts.stackSettings.allowedRegions,
        sizes: opts.stackSettings.allowedSizes,
      },
      ready: async () => !stopping && (await pool.query("select 1")).rowCount === 1,
      logger: opts.httpLogs === false ? false : opts.log,
      ssePollMs: opts.ssePollMs,
      fleet: {
        boss,
        settings: fleetSettings,
        defaults: { dtmaImage: fleetSettings.dtmaImage, backendImage: fleetSettings.backendImage },
      },
      authFailuresPerMinute: opts.authFailuresPerMinute,
      trustProxy: opts.trustProxy,
      log: opts.log,
      databaseUrl: opts.databaseUrl,
      eventStreamsPerUser: opts.eventStreamsPerUser,
      eventStreamsPerService: opts.eventStreamsPerService,
    });
    await app.ready();
    return {
      app,
      boss,
      pool,
      workerId,
      fleet,
      async stop() {
        stopping = true;
        await app.close();
        // Lets running operations finish (up to the timeout); unfinished ones keep their claim and
        // are retried elsewhere once their job heartbeat lapses.
        await fleet.stop(30_000);
        await worker.stop(30_000);
        await boss.stop({ graceful: true, timeout: 30_000 });
        await pool.end();
      },
    };
  } catch (err) {
    await pool.end().catch(() => undefined);
    throw err;
  }
}
