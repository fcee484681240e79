import type { FastifyRequest } from "fastify";
import type { Pool } from "pg";
import type { Principal } from "../auth/auth";
import type { OperationStreams } from "../events/operationStreams";
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
  /** How often a polling event stream looks for new events (ms); operations' streams poll only while their LISTEN connection is down. */
  ssePollMs: number;
  /** Operations' event streams: woken by NOTIFY, capped per principal. */
  events: OperationStreams;
  /** Open event streams, ended on shutdown. */
  streams: Set<() => void>;
}
