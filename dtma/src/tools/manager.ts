import type { ServerResponse } from "node:http";
import type { Logger } from "pino";
import type { DeployResult, Tool, WaitResult, WaitState } from "../api";
import type { ContainerInspect, ContainerSummary, DockerEngine } from "../docker/engine";
import { DockerError, PullTimeout } from "../docker/engine";
import { describePullError, pullErrorClass, type PullErrorClass } from "../docker/pullErrors";
import { containerBody, toolUser } from "../docker/sandbox";
import { HttpError } from "@agentopia-toolboxes/servicekit/http";
import { LABEL, MANAGED_BY, secretsMatch, specHash } from "./labels";
import { ToolLocks } from "./lock";
import type { Caps, ParsedSpec } from "./spec";
import { parseSpec, validateName, ValidationError } from "./spec";
import { parseImageRef, type RegistryAllowList } from "./image";
import { toolFromContainer } from "./view";
import { LogReader, type LogLimits } from "./logs";
import { ToolWatcher } from "./watcher";
import { ToolNetworks } from "./networks";

export interface ToolManagerDeps {
  docker: DockerEngine;
  log: Logger;
  scope: string;
  /** Labelled on every tool container (agentopia.account). */
  account?: string;
  /** Prefix of the tools' own networks (DTMA_TOOL_NETWORK). */
  toolNetwork: string;
  /** DTMA_TOOL_SUBNET_POOL and DTMA_TOOL_SUBNET_PREFIX; none: Docker chooses subnets. */
  toolSubnets?: { cidr: string; prefixLength: number };
  /** The gateway (backend) container connected to every tool network (DTMA_GATEWAY_CONTAINER). */
  gateway?: string;
  caps: Caps;
  /** Registries images may come from (DTMA_REGISTRIES). */
  registries: RegistryAllowList;
  /** Deadline of one pull, waiting for a pull connection included (DTMA_PULL_TIMEOUT_SECONDS). */
  pullTimeoutMs: number;
  /** Bounds of a logs answer and of the reads at once. */
  logs: LogLimits;
  /** Called after every change, so the status sample is refreshed. */
  onChange?: () => void;
}

const REPLACEMENT_SETTLE_MS = 1000;

export class ToolManager {
  private readonly locks = new ToolLocks();
  private readonly logReader: LogReader;
  /** Follows Docker's events for the waits (start and stop it with the service). */
  readonly watcher: ToolWatcher;
  /** Each egress tool's own network, shared with the gateway only. */
  readonly networks: ToolNetworks;

  constructor(private readonly deps: ToolManagerDeps) {
    this.logReader = new LogReader(deps.docker, deps.logs);
    this.networks = new ToolNetworks({
      docker: deps.docker,
      log: deps.log,
      scope: deps.scope,
      ...(deps.account ? { account: deps.account } : {}),
      prefix: deps.toolNetwork,
      ...(deps.toolSubnets ? { pool: deps.toolSubnets } : {}),
      ...(deps.gateway ? { gateway: deps.gateway } : {}),
    });
    this.watcher = new ToolWatcher({
      docker: deps.docker,
      log: deps.log,
      labels: this.filters(),
      find: (name) => this.find(name),
    });
  }

  containerName(name: string): string {
    return this.deps.scope === "default"
      ? `dtma-tool-${name}`
      : `dtma-tool-${this.deps.scope}.${name}`;
  }

  private filters(extra: string[] = []): string[] {
    return [`${LABEL.managedBy}=${MANAGED_BY}`, `${LABEL.scope}=${this.deps.scope}`, ...extra];
  }

  async list(): Promise<Tool[]> {
    const containers = await this.deps.docker.listContainers(this.filters());
    const canonical = containers.filter((c) =>
      c.Names.includes(`/${this.containerName(c.Labels[LABEL.toolName] ?? "")}`),
    );
    const inspected = await Promise.all(
      canonical.map((c) => this.deps.docker.inspectContainer(c.Id)),
    );
    const now = Date.now();
    return inspected
      .filter((c) => c !== null)
      .map((c) => toolFromContainer(c, now))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** The tool's container as Docker inspects it, or null when it has none. */
  async container(name: string): Promise<ContainerInspect | null> {
    const c = await this.deps.docker.inspectContainer(this.containerName(name));
    const labels = c?.Config.Labels ?? {};
    if (!c || labels[LABEL.managedBy] !== MANAGED_BY || labels[LABEL.scope] !== this.deps.scope) {
      return null;
    }
    return c;
  }

  /** The tool's current view, or null when it has no container. */
  async find(name: string): Promise<Tool | null> {
    const c = await this.container(name);
    return c && toolFromContainer(c);
  }

  async get(name: string): Promise<Tool> {
    validateName(name);
    const tool = await this.find(name);
    if (!tool) throw notFound(name);
    return tool;
  }

  async deploy(name: string, body: unknown): Promise<{ result: DeployResult; created: boolean }> {
    validateName(name);
    const spec = parseSpec(body, this.deps.caps);
    const image = parseImageRef(spec.image);
    // Refused before Docker hears of it: the daemon would contact the registry from the host.
    const refusal = this.deps.registries.refusal(image);
    if (refusal) throw new ValidationError("image", refusal);
    const { caps } = this.deps;
    const resources = {
      memory_mb: spec.resources?.memory_mb ?? caps.memoryMb,
      cpus: spec.resources?.cpus ?? caps.cpus,
      pids: spec.resources?.pids ?? caps.pids,
    };
    const hash = specHash(spec, resources);
    return this.locks.run(name, "deploy", `deploy:${hash}`, async () => {
      const { docker, log } = this.deps;
      const canonicalName = this.containerName(name);
      const containers = await this.containersOf(name);
      const current = containers.find((c) => c.Names.includes(`/${canonicalName}`));
      // Leftovers of a replacement interrupted by a crash.
      for (const c of containers) if (c !== current) await docker.removeContainer(c.Id);

      if (current && current.Labels[LABEL.specHash] === hash) {
        const c = await this.container(name);
        if (c && secretsMatch(spec.secrets ?? {}, c.Config.Env)) {
          return { result: { ...toolFromContainer(c), changed: false }, created: false };
        }
      }

      await this.ensureImage(spec, image.pullRef);
      const user = toolUser(spec, (await docker.inspectImage(image.pullRef))?.Config?.User);
      if (spec.run_as_root) await this.assertRootAllowed(name);
      const network = spec.network === "egress" ? await this.networks.ensure(name) : "none";
      const body = containerBody({
        name,
        scope: this.deps.scope,
        account: this.deps.account,
        spec,
        hash,
        resources,
        user,
        toolNetwork: network,
      });
      // A replacement starts beside the old container, which goes only once the new one runs.
      const targetName = current ? `${canonicalName}.next` : canonicalName;
      const id = await docker.createContainer(targetName, body).catch((err: unknown) => {
        throw dockerRejected(err, "image");
      });
      try {
        await docker.containerAction(id, "start");
        // A replacement must prove it runs before the old container goes; a new tool is
        // only checked once, so a first deploy is as fast as `docker run -d`.
        await this.assertRunning(id, current ? REPLACEMENT_SETTLE_MS : 0);
      } catch (err) {
        await docker.removeContainer(id);
        throw dockerRejected(err, "command");
      }
      if (current) {
        await docker.removeContainer(current.Id);
        await docker.renameContainer(id, canonicalName);
      }
      // A tool that left egress leaves no network behind.
      if (spec.network === "none") await this.networks.remove(name);
      log.info(
        { tool: name, image: spec.image, spec_hash: hash, replaced: Boolean(current) },
        "deployed tool",
      );
      this.deps.onChange?.();
      const tool = await this.find(name);
      if (!tool) throw new HttpError(409, "conflict", `tool '${name}' disappeared while deploying`);
      return { result: { ...tool, changed: true }, created: !current };
    });
  }

  async remove(name: string): Promise<void> {
    validateName(name);
    await this.locks.run(name, "remove", "remove", async () => {
      const containers = await this.containersOf(name);
      if (containers.length === 0) throw notFound(name);
      for (const c of containers) await this.deps.docker.removeContainer(c.Id);
      await this.networks.remove(name);
      this.deps.log.info({ tool: name }, "removed tool");
      this.deps.onChange?.();
    });
  }

  async action(name: string, action: "start" | "stop" | "restart"): Promise<Tool> {
    validateName(name);
    return this.locks.run(name, action, action, async () => {
      const tool = await this.find(name);
      if (!tool) throw notFound(name);
      await this.deps.docker.containerAction(tool.container_id, action).catch((err: unknown) => {
        throw dockerRejected(err, "name");
      });
      this.deps.log.info({ tool: name, action }, "tool action");
      this.deps.onChange?.();
      return (await this.find(name)) ?? tool;
    });
  }

  /** Answers GET /tools/:name/logs on `res` (bounded: see LogReader). */
  async logs(
    name: string,
    tail: number,
    since: number,
    res: ServerResponse,
    signal: AbortSignal,
  ): Promise<void> {
    const tool = await this.get(name);
    const stdio = tool.transport.type === "stdio";
    await this.logReader.answer(res, { name, id: tool.container_id, stdio, tail, since }, signal);
  }

  /** Long-polls until the tool reaches `state` or the timeout passes (one shared watcher). */
  async wait(
    name: string,
    state: WaitState,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<WaitResult> {
    validateName(name);
    const r = await this.watcher.wait(name, state, timeoutMs, signal);
    if (!r.found && state !== "removed") throw notFound(name);
    return { name, state, reached: r.reached, tool: r.tool };
  }

  /** DTMA_MAX_ROOT_TOOLS counts the other tools that run as root now. */
  private async assertRootAllowed(name: string): Promise<void> {
    const max = this.deps.caps.rootTools ?? 0;
    const others = (
      await this.deps.docker.listContainers(this.filters([`${LABEL.runAsRoot}=true`]))
    )
      .map((c) => c.Labels[LABEL.toolName])
      .filter((n) => n !== name);
    if (new Set(others).size >= max) {
      throw new ValidationError(
        "run_as_root",
        `this toolbox runs at most ${max} tools as root (DTMA_MAX_ROOT_TOOLS)`,
      );
    }
  }

  private async assertRunning(id: string, settleMs: number): Promise<void> {
    const deadline = Date.now() + settleMs;
    for (;;) {
      const c = await this.deps.docker.inspectContainer(id);
      if (!c || !c.State.Running || c.State.Status === "restarting" || c.RestartCount > 0) {
        throw new HttpError(
          422,
          "tool_exited",
          `the tool did not keep running at start (exit code ${c?.State.ExitCode ?? "unknown"})`,
          "command",
        );
      }
      if (Date.now() >= deadline) return;
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  private containersOf(name: string): Promise<ContainerSummary[]> {
    return this.deps.docker.listContainers(this.filters([`${LABEL.toolName}=${name}`]));
  }

  private async ensureImage(spec: ParsedSpec, ref: string): Promise<void> {
    const { docker, log } = this.deps;
    if (spec.pull === "missing" && (await docker.inspectImage(ref))) return;
    const auth = spec.registry_auth
      ? Buffer.from(JSON.stringify(spec.registry_auth)).toString("base64url")
      : undefined;
    try {
      await docker.pullImage(ref, auth, this.deps.pullTimeoutMs);
    } catch (err) {
      let cls: PullErrorClass;
      if (err instanceof PullTimeout) cls = "deadline";
      else if (err instanceof DockerError) cls = pullErrorClass(err.message);
      else throw err;
      // The daemon's words may quote the registry: logged cut short, never answered.
      log.warn({ image: ref, docker_error: cls, daemon: err.message.slice(0, 300) }, "pull failed");
      const details = { docker_error: cls };
      const message = `pulling ${ref} failed: ${describePullError(cls)} (${cls})`;
      if (cls === "not_found")
        throw new HttpError(422, "image_not_found", message, "image", details);
      if (cls === "deadline") throw new HttpError(504, "pull_timeout", message, "image", details);
      throw new HttpError(502, "pull_failed", message, "image", details);
    }
  }
}

function notFound(name: string): HttpError {
  return new HttpError(404, "tool_not_found", `no tool named '${name}'`, "name");
}

/** The daemon refusing a request built from the spec is the client's problem, with its words. */
function dockerRejected(err: unknown, field: string): unknown {
  if (err instanceof DockerError && err.statusCode < 500) {
    if (err.statusCode === 409) return new HttpError(409, "conflict", err.message);
    return new HttpError(422, "docker_rejected", err.message, field);
  }
  if (err instanceof DockerError && /exec|executable|no such file|not found/i.test(err.message)) {
    return new HttpError(422, "start_failed", err.message, field);
  }
  return err;
}
