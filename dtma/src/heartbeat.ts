import http from "node:http";
import https from "node:https";
import type { Logger } from "pino";
import { INSTALLATION_STATUS_FOR_STATE } from "@agentopia-toolboxes/contract/status";
import type { Heartbeat, Status } from "./api";
import type { Metrics } from "./metrics";

// POST {AGENTOPIA_API_BASE_URL}/heartbeat on a jittered interval, from the latest status sample
// (never a Docker call of its own, never in the request path). While the control plane is
// down, retries back off exponentially from `minBackoffMs` up to `maxBackoffMs`.

export interface HeartbeatDeps {
  url: string;
  token: string;
  intervalMs: number;
  status: () => Status;
  log: Logger;
  metrics: Metrics;
  minBackoffMs?: number;
  maxBackoffMs?: number;
  timeoutMs?: number;
  /** Jitter source in [0, 1); injectable for tests. */
  random?: () => number;
  /** The image this DTMA runs (DTMA_IMAGE); reported as `dtma_image`. */
  image?: string;
}

export function heartbeatBody(status: Status, image?: string): Heartbeat {
  return {
    dtma_version: status.version,
    // The package version is the same for every build: the image says which one runs.
    ...(image ? { dtma_image: image } : {}),
    system_status: {
      status: status.status,
      uptime_seconds: status.uptime_seconds,
      system_metrics: status.system_metrics,
      docker: status.docker,
    },
    // Agentopia updates account_tool_instances rows by id: a tool without one has no row.
    tool_statuses: status.tool_instances
      .filter((t) => t.account_tool_instance_id)
      .map((t) => ({
        account_tool_instance_id: t.account_tool_instance_id!,
        name: t.name,
        // The contract's map: the automation service records with the same one.
        status: INSTALLATION_STATUS_FOR_STATE[t.state],
        state: t.state,
        health: t.health,
        restarts: t.restarts,
      })),
  };
}

export class HeartbeatSender {
  private timer: NodeJS.Timeout | undefined;
  private stopped = true;
  private inFlight: Promise<void> | undefined;
  /** Consecutive failures; 0 after a success. */
  failures = 0;
  /** The delay chosen before the next attempt (ms). */
  nextDelayMs = 0;

  constructor(private readonly deps: HeartbeatDeps) {}

  start(firstDelayMs = 0): void {
    this.stopped = false;
    this.schedule(firstDelayMs);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.inFlight;
  }

  /** Sends one heartbeat; true when the control plane accepted it. */
  async beat(): Promise<boolean> {
    const { url, token, log, metrics } = this.deps;
    try {
      const status = await post(
        url,
        token,
        JSON.stringify(heartbeatBody(this.deps.status(), this.deps.image)),
        this.deps.timeoutMs ?? 10_000,
      );
      if (status < 200 || status >= 300) throw new Error(`control plane answered ${status}`);
      if (this.failures > 0) log.info({ after_failures: this.failures }, "heartbeat recovered");
      this.failures = 0;
      metrics.heartbeats.inc({ outcome: "ok" });
      return true;
    } catch (err) {
      this.failures += 1;
      metrics.heartbeats.inc({ outcome: "failed" });
      log.warn({ reason: (err as Error).message, failures: this.failures }, "heartbeat failed");
      return false;
    }
  }

  /** Delay before the next attempt: the interval after a success, backoff after failures. */
  delayAfter(failures: number): number {
    const { intervalMs, minBackoffMs = 5_000, maxBackoffMs = 300_000 } = this.deps;
    const random = this.deps.random ?? Math.random;
    const base =
      failures === 0 ? intervalMs : Math.min(maxBackoffMs, minBackoffMs * 2 ** (failures - 1));
    // ±10 % jitter so a fleet restarted together does not beat in step.
    return Math.max(0, Math.round(base * (0.9 + 0.2 * random())));
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.nextDelayMs = delayMs;
    this.timer = setTimeout(() => {
      this.inFlight = this.beat().then(() => this.schedule(this.delayAfter(this.failures)));
    }, delayMs);
    this.timer.unref();
  }
}

/** node:http rather than fetch: undici alone costs several MB of resident memory. */
function post(url: string, token: string, body: string, timeoutMs: number): Promise<number> {
  const target = new URL(url);
  const client = target.protocol === "https:" ? https : http;
  return new Promise((resolve, reject) => {
    const req = client.request(
      target,
      {
        method: "POST",
        headers: {
          authorization: `Bearer ${token}`,
          "content-type": "application/json",
          "content-length": Buffer.byteLength(body),
        },
        timeout: timeoutMs,
      },
      (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error("heartbeat timed out")));
    req.on("error", reject);
    req.end(body);
  });
}
