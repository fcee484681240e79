import type { Logger } from "pino";
import type { DockerEngine } from "../docker/engine";

// What /health says about Docker (issue 13, item 9): a ping through the API's own connection
// pool every `intervalMs`. A daemon that does not answer in `timeoutMs` — down, or every
// connection held — makes /health 503, so the container's health check and the backend see a
// DTMA that cannot do its work.

export type DockerLiveness = "ok" | "stalled" | "unreachable";

export interface DockerProbeOptions {
  intervalMs: number;
  timeoutMs: number;
}

const DEFAULT_PROBE: DockerProbeOptions = { intervalMs: 5000, timeoutMs: 5000 };

export class DockerProbe {
  private current: DockerLiveness = "ok";
  private timer: NodeJS.Timeout | undefined;
  private pending = false;

  constructor(
    private readonly docker: DockerEngine,
    private readonly log: Logger,
    private readonly opts: DockerProbeOptions = DEFAULT_PROBE,
  ) {}

  get state(): DockerLiveness {
    return this.current;
  }

  start(): void {
    void this.probe();
    this.timer = setInterval(() => void this.probe(), this.opts.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private async probe(): Promise<void> {
    if (this.pending) return;
    this.pending = true;
    try {
      const next = await this.docker.responsive(this.opts.timeoutMs);
      if (next !== this.current) {
        if (next === "ok") this.log.info("Docker answers again");
        else this.log.warn({ docker: next }, "Docker does not answer: /health is 503");
      }
      this.current = next;
    } finally {
      this.pending = false;
    }
  }
}
