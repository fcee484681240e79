/**
 * What the automation benchmarks share: the real service on an embedded PostgreSQL in a
 * throwaway directory, with the settings no benchmark varies (local target, no HTTP logs, no
 * cron), and one call that stops both and removes the directory.
 */
import { randomBytes } from "node:crypto";
import { chmod, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import pino from "pino";
import { loadSettings } from "../src/config";
import { startEmbeddedPostgres } from "../src/db/embedded";
import { startService, type RunningService, type ServiceOptions } from "../src/service";
import type { StackSettings } from "../src/stackRequest";

type Given = "databaseUrl" | "log" | "tokenEncryptionKey" | "stackSettings" | "queue";

export interface BenchServiceOptions extends Omit<ServiceOptions, Given> {
  /** Over the local defaults (loadSettings({}) with a loopback public URL). */
  stackSettings?: Partial<StackSettings>;
  /** Over `retryLimit: 0` and no cron. */
  queue?: Partial<ServiceOptions["queue"]>;
}

export interface BenchService {
  svc: RunningService;
  /** The database's URL, for the benchmark's own connections. */
  databaseUrl: string;
  stop: () => Promise<void>;
}

export async function startBenchService(opts: BenchServiceOptions): Promise<BenchService> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "automation-bench-"));
  await chmod(dir, 0o755);
  const pg = await startEmbeddedPostgres({
    dir: path.join(dir, "pg"),
    persistent: false,
    password: randomBytes(12).toString("hex"),
  });
  const svc = await startService({
    httpLogs: false,
    ...opts,
    databaseUrl: pg.url,
    log: pino({ level: "error" }),
    tokenEncryptionKey: randomBytes(32),
    stackSettings: {
      ...loadSettings({}),
      publicBaseUrl: "http://127.0.0.1:8080",
      ...opts.stackSettings,
    },
    queue: { retryLimit: 0, schedule: false, superviseIntervalSeconds: 1, ...opts.queue },
  });
  return {
    svc,
    databaseUrl: pg.url,
    stop: async () => {
      await svc.stop();
      await pg.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
