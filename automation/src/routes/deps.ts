import type { FastifyRequest } from "fastify";
import type { Pool } from "pg";
import type { Principal } from "../auth/auth";
import type { EventStreams } from "../events/eventStreams";
import type { Metrics } from "../metrics";
import type { TokenCipher } from "../secrets/tokenCipher";
import type { ToolboxService } from "../toolboxService";
import type { Offer } from "./validation";

/** What the account, operation and system routes need; app.ts builds it once per app. */
export interface AppDeps {
  pool: Pool;
  service: ToolboxService;
  cipher: TokenCipher;
  metrics: Metrics;
  heartbeatTimeoutSeconds: number;
  /** Regions and sizes requests may name. */
  offer: Offer;
  /** The caller the guard authenticated (routes declare who may call them in `config.auth`). */
  authenticate(req: FastifyRequest): Promise<Principal>;
  ready(): Promise<boolean>;
  /** Event streams of operations and fleet operations: capped per principal, ended on close. */
  events: EventStreams;
}
