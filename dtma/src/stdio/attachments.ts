import type { IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import type { Logger } from "pino";
import { HttpError, type UpgradeContext } from "@agentopia-toolboxes/servicekit/http";
import { STDIO_UPGRADE } from "../api";
import type { ContainerInspect, DockerEngine } from "../docker/engine";
import { DockerError } from "../docker/engine";
import type { ToolManager } from "../tools/manager";
import { validateName } from "../tools/spec";
import { toolFromContainer } from "../tools/view";
import { bridge, type Bridge } from "./bridge";

// The stdio attachment and lanes (docs/decisions/0021-dtma-stdio-attachment.md): an HTTP upgrade
// whose socket then carries a stdio tool's raw stdin and stdout. The DTMA never parses them.
//   attach: the container's main process, through Docker's attach; one per tool at a time.
//   lane:   an extra process per connection (Docker exec of the container's own command), for
//           per_session tools, at most max_lanes at once.
// What is open lives in this process only: after a restart Docker still runs the tools and a
// new DTMA knows of no attachment (the old connections died with the old process).

export interface StdioDeps {
  docker: DockerEngine;
  tools: ToolManager;
  log: Logger;
  /** DTMA_MAX_LANES_PER_TOOL: caps every tool's max_lanes, also those deployed under a higher cap. */
  maxLanes: number;
}

type Kind = "attach" | "lane";

export class StdioAttachments {
  /** Tools whose attachment is open or being opened. */
  private readonly attached = new Set<string>();
  /** Lanes per tool whose process may still run (open, being opened, or closed but not exited). */
  private readonly lanes = new Map<string, number>();
  private readonly open = new Set<Bridge>();

  constructor(private readonly deps: StdioDeps) {}

  /** `POST /tools/:name/attach`. */
  attach(ctx: UpgradeContext): Promise<void> {
    return this.connect(ctx, "attach");
  }

  /** `POST /tools/:name/lanes`. */
  openLane(ctx: UpgradeContext): Promise<void> {
    return this.connect(ctx, "lane");
  }

  get counts(): { attachments: number; lanes: number } {
    let lanes = 0;
    for (const n of this.lanes.values()) lanes += n;
    return { attachments: this.attached.size, lanes };
  }

  /** Drops every connection (shutdown); the tools keep running, a lane's process gets EOF. */
  closeAll(): void {
    for (const b of this.open) b.destroy();
  }

  /**
   * Refusals are thrown before anything is written (servicekit answers them as JSON and closes
   * the socket); once the 101 is written nothing here throws.
   */
  private async connect(ctx: UpgradeContext, kind: Kind): Promise<void> {
    const { name } = ctx.params;
    validateName(name);
    checkUpgrade(ctx.req);
    const c = await this.deps.tools.container(name);
    if (!c) throw new HttpError(404, "tool_not_found", `no tool named '${name}'`, "name");
    const tool = toolFromContainer(c);
    if (tool.transport.type !== "stdio") {
      throw new HttpError(422, "not_stdio", `tool '${name}' serves http, not stdio`, "name");
    }
    if (kind === "lane" && tool.isolation !== "per_session") {
      throw new HttpError(
        422,
        "not_per_session",
        `tool '${name}' is shared: lanes need isolation per_session`,
        "name",
      );
    }
    if (c.State.Status !== "running") throw notRunning(name);
    const release =
      kind === "attach"
        ? this.reserveAttachment(name)
        : this.reserveLane(name, Math.min(tool.max_lanes, this.deps.maxLanes));

    let docker: Socket | undefined;
    let startedAt: string;
    try {
      docker =
        kind === "attach"
          ? await this.deps.docker.attachStdio(c.Id)
          : await this.deps.docker.execStdio(c.Id, command(c));
      // The stream belongs to the process running now (an attach ends at every exit): its
      // start is the one to report, read after the stream exists.
      const now = await this.deps.docker.inspectContainer(c.Id);
      if (now?.State.Status !== "running") throw notRunning(name);
      startedAt = now.State.StartedAt;
    } catch (err) {
      docker?.destroy();
      release();
      throw refusal(err, name);
    }
    if (ctx.socket.destroyed) {
      // The caller left while the stream was being opened.
      docker.destroy();
      release();
      return;
    }

    ctx.socket.write(
      "HTTP/1.1 101 Switching Protocols\r\n" +
        `Upgrade: ${STDIO_UPGRADE}\r\nConnection: Upgrade\r\nX-Tool-Started-At: ${startedAt}\r\n\r\n`,
    );
    const opened = Date.now();
    const link = bridge(ctx.socket, ctx.head, docker, kind === "attach" ? "detach" : "eof");
    this.open.add(link);
    this.deps.log.info({ tool: name, kind, started_at: startedAt }, "stdio open");
    void link.done.then((reason) => {
      this.open.delete(link);
      release();
      this.deps.log.info(
        { tool: name, kind, reason, seconds: Math.round((Date.now() - opened) / 1000) },
        "stdio closed",
      );
    });
  }

  private reserveAttachment(name: string): () => void {
    if (this.attached.has(name)) {
      throw new HttpError(
        409,
        "already_attached",
        `tool '${name}' already has an attachment (one at a time)`,
        "name",
      );
    }
    this.attached.add(name);
    return once(() => this.attached.delete(name));
  }

  private reserveLane(name: string, max: number): () => void {
    const n = this.lanes.get(name) ?? 0;
    if (n >= max) {
      throw new HttpError(
        429,
        "lane_limit",
        `tool '${name}' already has ${n} lanes (max_lanes ${max})`,
        "name",
      );
    }
    this.lanes.set(name, n + 1);
    return once(() => {
      const left = (this.lanes.get(name) ?? 1) - 1;
      if (left > 0) this.lanes.set(name, left);
      else this.lanes.delete(name);
    });
  }
}

function checkUpgrade(req: IncomingMessage): void {
  if (req.headers.upgrade?.toLowerCase() !== STDIO_UPGRADE) {
    throw new HttpError(
      426,
      "upgrade_required",
      `this route takes Upgrade: ${STDIO_UPGRADE}`,
      "upgrade",
      undefined,
      { upgrade: STDIO_UPGRADE, connection: "Upgrade" },
    );
  }
}

/** A lane runs what the container runs: its entrypoint and command as Docker resolved them. */
function command(c: ContainerInspect): string[] {
  return [...(c.Config.Entrypoint ?? []), ...(c.Config.Cmd ?? [])];
}

function notRunning(name: string): HttpError {
  return new HttpError(409, "not_running", `tool '${name}' is not running`, "name");
}

/** A failure opening the stream, as the answer the caller gets (the daemon's words included). */
function refusal(err: unknown, name: string): unknown {
  if (err instanceof HttpError) return err;
  if (err instanceof DockerError && err.statusCode === 404)
    return new HttpError(404, "tool_not_found", `no tool named '${name}'`, "name");
  // Docker answers 409 for a container that stopped, restarts or is paused meanwhile.
  if (err instanceof DockerError && err.statusCode === 409) return notRunning(name);
  return new HttpError(
    502,
    "docker_failed",
    `Docker did not open the stream: ${(err as Error).message}`,
  );
}

function once(fn: () => void): () => void {
  let done = false;
  return () => {
    if (done) return;
    done = true;
    fn();
  };
}
