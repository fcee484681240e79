import { createHash } from "node:crypto";
import type { Logger } from "pino";
import type { Status } from "../api";
import type { DockerEngine } from "../docker/engine";
import { preparedReply, type Reply } from "@agentopia-toolboxes/servicekit/http";
import type { ToolManager } from "../tools/manager";
import { SystemSampler } from "./system";

// /status is served from a sample refreshed in the background (and after every change), so a
// request never waits on Docker. The answer (JSON body, Content-Length, ETag) is built once per
// sample; a request only writes it. Every time in it — `uptime_seconds`, each tool's
// `uptime_seconds` — is as of `sampled_at`, so the cached body stays true until the next sample.

const JSON_TYPE = "application/json; charset=utf-8";

export interface StatusSamplerDeps {
  docker: DockerEngine;
  tools: ToolManager;
  log: Logger;
  version: string;
  refreshMs: number;
  startedAt?: number;
  system?: SystemSampler;
}

export class StatusSampler {
  private current: Status;
  private prepared: Reply;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private dockerVersion: string | null = null;
  private readonly startedAt: number;
  private readonly system: SystemSampler;

  constructor(private readonly deps: StatusSamplerDeps) {
    this.startedAt = deps.startedAt ?? Date.now();
    this.system = deps.system ?? new SystemSampler();
    this.current = {
      status: "degraded",
      service: "DTMA",
      version: deps.version,
      uptime_seconds: 0,
      sampled_at: new Date().toISOString(),
      system_metrics: {
        cpu: { count: 0, usage_percent: 0, load_average: [0, 0, 0] },
        memory: { total_bytes: 0, used_bytes: 0, usage_percent: 0 },
        disk: { total_bytes: 0, used_bytes: 0, usage_percent: 0 },
        containers: { total: 0, running: 0 },
      },
      docker: { reachable: false, version: null, error: "not sampled yet" },
      tool_instances: [],
    };
    this.prepared = prepare(this.current);
  }

  get status(): Status {
    return this.current;
  }

  /** The GET /status answer for the current sample (the same object until the next sample). */
  get reply(): Reply {
    return this.prepared;
  }

  start(): Promise<void> {
    const first = this.refresh();
    this.timer = setInterval(() => void this.refresh(), this.deps.refreshMs);
    this.timer.unref();
    return first;
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** Takes a new sample; calls during a sample coalesce into one more sample after it. */
  refresh(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = this.sample()
      .catch((err: unknown) => this.deps.log.warn({ err }, "status sample failed"))
      .finally(() => {
        this.running = undefined;
        if (this.again) {
          this.again = false;
          void this.refresh();
        }
      });
    return this.running;
  }

  private async sample(): Promise<void> {
    const { docker, tools } = this.deps;
    let dockerStatus: Status["docker"];
    let toolList: Awaited<ReturnType<ToolManager["list"]>> = [];
    let containers = { total: 0, running: 0 };
    try {
      this.dockerVersion ??= (await docker.version()).Version;
      const [info, list] = await Promise.all([docker.info(), tools.list()]);
      toolList = list;
      containers = { total: info.Containers, running: info.ContainersRunning };
      dockerStatus = { reachable: true, version: this.dockerVersion };
    } catch (err) {
      this.dockerVersion = null;
      dockerStatus = { reachable: false, version: null, error: (err as Error).message };
    }
    const system = await this.system.sample(containers);
    this.current = {
      status: dockerStatus.reachable ? "ok" : "degraded",
      service: "DTMA",
      version: this.deps.version,
      uptime_seconds: Math.floor((Date.now() - this.startedAt) / 1000),
      sampled_at: new Date().toISOString(),
      system_metrics: system,
      docker: dockerStatus,
      tool_instances: toolList.map((t) => ({
        name: t.name,
        account_tool_instance_id: t.account_tool_instance_id,
        state: t.state,
        health: t.health,
        image: t.image,
        uptime_seconds: t.uptime_seconds,
        restarts: t.restarts,
      })),
    };
    this.prepared = prepare(this.current);
  }
}

function prepare(status: Status): Reply {
  const body = JSON.stringify(status);
  const etag = `"${createHash("sha256").update(body).digest("base64url").slice(0, 27)}"`;
  return preparedReply(body, JSON_TYPE, etag);
}
