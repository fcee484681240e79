import assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import pino, { type Logger } from "pino";
import type { SessionVerifier } from "../src/auth/auth";
import { loadSettings } from "../src/config";
import type { ToolboxEngine } from "../src/engine/types";
import { startService, type RunningService } from "../src/service";
import { testCluster } from "./hooks";

export const SERVICE_TOKEN = "test-service-token-" + "x".repeat(32);
export const auth = { authorization: `Bearer ${SERVICE_TOKEN}` };
/** TEST_LOG_LEVEL=debug shows the service logs while debugging a test. */
export const silent = pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" });

/** A database of its own on the shared test cluster. */
export async function freshDatabase(): Promise<string> {
  const name = `t_${randomUUID().replace(/-/g, "")}`;
  await testCluster().createDatabase(name);
  return testCluster().urlFor(name);
}

/** The settings the service derives with none given, but for a public URL tests can assert. */
export const stackSettings = {
  ...loadSettings({}),
  publicBaseUrl: "http://127.0.0.1:8080",
  controlPlaneCidrs: ["10.0.0.0/8"],
};

/** Queue and stream timings for tests: short retries, fast polls, no cron. */
export function fastQueue(retryLimit: number) {
  return {
    queue: {
      retryLimit,
      retryDelaySeconds: 1,
      heartbeatSeconds: 10,
      superviseIntervalSeconds: 1,
      schedule: false,
    },
    pollingIntervalSeconds: 0.5,
    ssePollMs: 50,
  };
}

export interface TestServiceOptions {
  engine: ToolboxEngine;
  databaseUrl?: string;
  workerConcurrency?: number;
  retryLimit?: number;
  sessions?: SessionVerifier;
  heartbeatTimeoutSeconds?: number;
  /** The service's logger (default: silent unless TEST_LOG_LEVEL is set). */
  log?: Logger;
  /** Log HTTP requests (default: only with TEST_LOG_LEVEL). */
  httpLogs?: boolean;
  /** Failed authentications an address may have per minute before it gets 429. */
  authFailuresPerMinute?: number;
  /** Proxies whose X-Forwarded-For is believed. */
  trustProxy?: string[];
  /** Event streams a user / the service token may hold at once. */
  eventStreamsPerUser?: number;
  eventStreamsPerService?: number;
}

/** The real service (Postgres, pg-boss, fastify) around the given engine, with fast polling. */
export async function startTestService(
  opts: TestServiceOptions,
): Promise<RunningService & { databaseUrl: string }> {
  const databaseUrl = opts.databaseUrl ?? (await freshDatabase());
  const service = await startService({
    databaseUrl,
    engine: opts.engine,
    log: opts.log ?? silent,
    serviceToken: SERVICE_TOKEN,
    sessions: opts.sessions,
    tokenEncryptionKey: randomBytes(32),
    stackSettings,
    heartbeatTimeoutSeconds: opts.heartbeatTimeoutSeconds ?? 180,
    workerConcurrency: opts.workerConcurrency ?? 2,
    ...fastQueue(opts.retryLimit ?? 2),
    httpLogs: opts.httpLogs ?? process.env.TEST_LOG_LEVEL !== undefined,
    authFailuresPerMinute: opts.authFailuresPerMinute,
    trustProxy: opts.trustProxy,
    eventStreamsPerUser: opts.eventStreamsPerUser,
    eventStreamsPerService: opts.eventStreamsPerService,
  });
  return { ...service, databaseUrl };
}

/** Polls until `check` returns a value (eventual state, not a timing assertion). */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export function newAccount(): string {
  return randomUUID();
}

/** Asks the service for `account`'s toolbox with the service token; the 202's operation id. */
export async function requestToolbox(
  svc: Pick<RunningService, "app">,
  account = newAccount(),
): Promise<string> {
  const res = await svc.app.inject({
    method: "POST",
    url: "/v1/toolboxes",
    headers: auth,
    payload: { account_id: account },
  });
  assert.equal(res.statusCode, 202, res.body);
  return res.json<{ operation: { id: string } }>().operation.id;
}
