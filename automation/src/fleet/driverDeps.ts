/** What an upgrade's driver and each of its steps need (runner.ts gives it). */
import type { Logger } from "pino";
import type { Pool } from "pg";
import type { PgBoss } from "pg-boss";
import type { TokenCipher } from "../secrets/tokenCipher";
import type { BackendProbe } from "./health";
import type { FleetMetrics } from "./metrics";

export interface DriverDeps {
  pool: Pool;
  boss: PgBoss;
  cipher: TokenCipher;
  log: Logger;
  metrics: FleetMetrics;
  probe: BackendProbe;
  workerId: string;
  /** Time between ticks (ms). */
  pollMs: number;
  /** What the service's settings deploy, for a rollback to a record that had no images of its own. */
  defaults: { target: "local" | "digitalocean"; dtmaImage?: string; backendImage?: string };
  /** True once the worker is stopping: the driver hands the upgrade back to the queue. */
  stopping: () => boolean;
}
