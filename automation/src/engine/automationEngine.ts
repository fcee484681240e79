import { mkdir, rm } from "node:fs/promises";
import path from "node:path";
import type * as automationApi from "@pulumi/pulumi/automation";
import type {
  EngineEvent as PulumiEvent,
  OutputMap,
  PulumiFn,
  Stack,
} from "@pulumi/pulumi/automation";
import {
  findOnPath,
  policyPacksFor,
  pulumiConfigMap,
  updateOptions,
  workDirFor,
  workspaceOptions,
  type AutomationEngineSettings,
} from "./automationOptions";
import { PROJECT_NAME } from "@agentopia-toolboxes/contract";
import type {
  DriftReport,
  EngineEvent,
  OnEngineEvent,
  StackOutputValues,
  StackRequest,
  StackSummary,
  ToolboxEngine,
  ToolboxOutputs,
} from "./types";
import { EngineError } from "./types";

type Automation = typeof automationApi;

/** What the account program receives in-process: secrets never travel through stack config. */
interface AccountProgramSecrets {
  sshPrivateKey?: string;
}

/** `accountProgram` of `program/account.ts`: the inline program, given its secrets. */
type AccountProgram = (secrets: AccountProgramSecrets) => ReturnType<PulumiFn>;

export interface AutomationEngineOptions extends AutomationEngineSettings {
  /** Directory of an installed CLI (`PulumiCommand.install`); default: `pulumi` on PATH. */
  pulumiCommandRoot?: string;
  /** The account program; default: `accountProgram` from `<repoRoot>/program/account.ts`. */
  loadProgram?: () => Promise<AccountProgram>;
}

/** Loads the account program lazily so the rest of the service never loads Pulumi. */
async function loadAccountProgram(repoRoot: string): Promise<AccountProgram> {
  // The program is TypeScript at the repository root, outside this package's build.
  const { register } = await import("tsx/cjs/api");
  register();
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const mod = require(path.join(repoRoot, "program", "account")) as {
    accountProgram?: AccountProgram;
  };
  if (typeof mod.accountProgram !== "function") {
    throw new EngineError("program/account does not export accountProgram", "permanent");
  }
  return mod.accountProgram;
}

/** What the CLI says when a stack does not exist (`stack output --stack x`, `stack select`). */
const NO_SUCH_STACK = /no stack named|stack .* not found|could not find stack/i;

const TRANSIENT =
  /ETIMEDOUT|ECONNRESET|ECONNREFUSED|EAI_AGAIN|socket hang up|\b(429|502|503|504)\b|rate limit|too many requests|temporarily unavailable/i;

/** Maps an Automation API failure to how the worker should treat it. */
export function classifyError(
  err: unknown,
  automation?: Pick<Automation, "ConcurrentUpdateError">,
): EngineError {
  if (err instanceof EngineError) return err;
  const message = err instanceof Error ? err.message : String(err);
  if (
    (automation && err instanceof automation.ConcurrentUpdateError) ||
    /currently locked|concurrent update/i.test(message)
  ) {
    return new EngineError(message, "locked");
  }
  // Whole: the worker scrubs secrets out before it cuts the text to its head.
  return new EngineError(message, TRANSIENT.test(message) ? "transient" : "permanent");
}

function toEngineEvent(e: PulumiEvent): EngineEvent {
  const type = Object.keys(e).find((k) => k.endsWith("Event")) ?? "event";
  const diag = e.diagnosticEvent;
  const meta = e.resourcePreEvent?.metadata ?? e.resOutputsEvent?.metadata;
  return {
    type,
    message:
      diag?.message ?? (meta ? `${meta.op} ${meta.type} ${meta.urn.split("::").pop()}` : undefined),
    data: diag ? { severity: diag.severity } : meta ? { op: meta.op, urn: meta.urn } : undefined,
  };
}

export function outputsFrom(out: OutputMap): ToolboxOutputs {
  const str = (k: string): string | undefined => {
    const v = out[k]?.value as unknown;
    if (v === undefined || v === null) return undefined;
    return typeof v === "string" ? v : JSON.stringify(v);
  };
  const required = (k: string) => {
    const v = str(k);
    if (v === undefined || v === "")
      throw new EngineError(`stack output ${k} is missing`, "permanent");
    return v;
  };
  return {
    dropletId: str("dropletId"),
    dropletName: str("dropletName"),
    dropletUrn: str("dropletUrn"),
    ipv4: str("ipv4"),
    ipv6: str("ipv6"),
    backendUrl: str("backendUrl"),
    backendCaCertPem: str("backendCaCertPem"),
    backendCaSha256: str("backendCaSha256"),
    backendCertNotAfter: str("backendCertNotAfter"),
    dtmaToken: required("dtmaToken"),
    dtmaTokenPrevious: str("dtmaTokenPrevious") ?? "",
    backendApiToken: required("backendApiToken"),
    agentGatewayToken: required("agentGatewayToken"),
  };
}

/**
 * The production engine: one Pulumi stack per account through the Automation API, with an inline
 * program, a work directory per stack (removed with the stack), and the policy pack enforced.
 */
export class AutomationEngine implements ToolboxEngine {
  /** Checked once at construction, as the policy pack is part of the deployment. */
  readonly policyPacks: string[];
  private readonly unavailable?: string;

  constructor(private readonly opts: AutomationEngineOptions) {
    this.policyPacks = policyPacksFor(opts.repoRoot);
    if (opts.pulumiCommandRoot === undefined && findOnPath("pulumi") === undefined) {
      this.unavailable =
        "the Pulumi CLI was not found on PATH; install it, or set PULUMI_INSTALL=1 where get.pulumi.com is reachable";
    }
  }

  async up(req: StackRequest, onEvent: OnEngineEvent): Promise<ToolboxOutputs> {
    return this.withStack(req, onEvent, async (stack) => {
      await stack.up(
        updateOptions(this.policyPacks, (e: PulumiEvent) => onEvent(toEngineEvent(e))),
      );
      return outputsFrom(await stack.outputs());
    });
  }

  async destroy(req: StackRequest, onEvent: OnEngineEvent): Promise<void> {
    await this.withStack(req, onEvent, async (stack) => {
      await stack.destroy({ onEvent: (e) => onEvent(toEngineEvent(e)), color: "never" });
      await stack.workspace.removeStack(req.stackName);
    });
    await rm(workDirFor(this.opts, req.stackName), { recursive: true, force: true });
    onEvent({ type: "stackRemoved", message: `${req.stackName} removed` });
  }

  async refresh(req: StackRequest, onEvent: OnEngineEvent): Promise<DriftReport> {
    return this.withStack(req, onEvent, async (stack) => {
      await stack.refresh({ onEvent: (e) => onEvent(toEngineEvent(e)), color: "never" });
      const preview = await stack.preview(
        updateOptions(this.policyPacks, (e: PulumiEvent) => onEvent(toEngineEvent(e))),
      );
      const changeSummary: Record<string, number> = { ...preview.changeSummary };
      const drifted = Object.entries(changeSummary).some(([op, n]) => op !== "same" && n > 0);
      return { drifted, changeSummary };
    });
  }

  async recover(req: StackRequest, onEvent: OnEngineEvent): Promise<void> {
    await this.withStack(req, onEvent, async (stack) => {
      // Cancel is for service backends; file backends keep a lock file the export/import rewrites.
      await stack.cancel().catch(() => undefined);
      const state = (await stack.exportStack()) as {
        deployment?: { pending_operations?: unknown[] };
      };
      const pending = state.deployment?.pending_operations?.length ?? 0;
      if (pending > 0 && state.deployment) {
        state.deployment.pending_operations = [];
        await stack.importStack(state as never);
      }
      onEvent({ type: "recovered", message: `cleared ${pending} pending operation(s)` });
    });
  }

  /** `pulumi stack ls --json` in a workspace of the project (LocalWorkspace.listStacks). */
  async listStacks(): Promise<StackSummary[]> {
    return this.withWorkspace(async (ws) =>
      (await ws.listStacks()).map((s) => ({
        name: s.name,
        ...(s.lastUpdate !== undefined ? { lastUpdate: s.lastUpdate } : {}),
        ...(s.resourceCount !== undefined ? { resourceCount: s.resourceCount } : {}),
      })),
    );
  }

  /** `pulumi stack output --json [--show-secrets]` (LocalWorkspace.stackOutputs). */
  async stackOutputs(stackName: string): Promise<StackOutputValues | undefined> {
    return this.withWorkspace(async (ws) => {
      try {
        const out = await ws.stackOutputs(stackName);
        return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, v.value as unknown]));
      } catch (err) {
        if (NO_SUCH_STACK.test(err instanceof Error ? err.message : String(err))) return undefined;
        throw err;
      }
    });
  }

  /**
   * Selects the stack by name with a program that declares nothing (destroy runs no program: it
   * deletes what the state holds), destroys it, removes it and its work directory.
   */
  async destroyStack(stackName: string, onEvent: OnEngineEvent): Promise<void> {
    const { automation, pulumiCommand } = await this.cli(onEvent);
    try {
      await mkdir(workDirFor(this.opts, stackName), { recursive: true, mode: 0o700 });
      const stack = await automation.LocalWorkspace.selectStack(
        { stackName, projectName: PROJECT_NAME, program: () => Promise.resolve({}) },
        { ...workspaceOptions(this.opts, stackName), pulumiCommand },
      );
      await stack.destroy({ onEvent: (e) => onEvent(toEngineEvent(e)), color: "never" });
      await stack.workspace.removeStack(stackName);
    } catch (err) {
      throw classifyError(err, automation);
    }
    await rm(workDirFor(this.opts, stackName), { recursive: true, force: true });
    onEvent({ type: "stackRemoved", message: `${stackName} removed` });
  }

  /** The SDK and the CLI, or a permanent failure naming why there is no CLI. */
  private async cli(onEvent?: OnEngineEvent) {
    if (this.unavailable) {
      onEvent?.({ type: "engineUnavailable", message: this.unavailable });
      throw new EngineError(this.unavailable, "permanent");
    }
    const automation: Automation = await import("@pulumi/pulumi/automation");
    const pulumiCommand = await automation.PulumiCommand.get({
      root: this.opts.pulumiCommandRoot,
      skipVersionCheck: true,
    });
    return { automation, pulumiCommand };
  }

  /** A workspace of the project that belongs to no stack (`<workRoot>/.project`). */
  private async withWorkspace<T>(fn: (ws: automationApi.LocalWorkspace) => Promise<T>): Promise<T> {
    const { automation, pulumiCommand } = await this.cli();
    try {
      const dir = path.join(this.opts.workRoot, ".project");
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const ws = await automation.LocalWorkspace.create({
        ...workspaceOptions(this.opts, ".project"),
        workDir: dir,
        pulumiCommand,
      });
      return await fn(ws);
    } catch (err) {
      throw classifyError(err, automation);
    }
  }

  private async withStack<T>(
    req: StackRequest,
    onEvent: OnEngineEvent,
    fn: (stack: Stack) => Promise<T>,
  ): Promise<T> {
    if (this.unavailable) {
      onEvent({ type: "engineUnavailable", message: this.unavailable });
      throw new EngineError(this.unavailable, "permanent");
    }
    const automation: Automation = await import("@pulumi/pulumi/automation");
    try {
      const accountProgram = await (
        this.opts.loadProgram ?? (() => loadAccountProgram(this.opts.repoRoot))
      )();
      // The inline program runs in this process: the SSH key reaches it through this closure
      // (the program wraps it in pulumi.secret), never on a CLI command line or in stack config.
      const secrets: AccountProgramSecrets =
        req.config.target === "digitalocean" ? { sshPrivateKey: this.opts.sshPrivateKey } : {};
      const program: PulumiFn = () => accountProgram(secrets);
      const pulumiCommand = await automation.PulumiCommand.get({
        root: this.opts.pulumiCommandRoot,
        skipVersionCheck: true,
      });
      // LocalWorkspace refuses a work directory that does not exist yet.
      await mkdir(workDirFor(this.opts, req.stackName), { recursive: true, mode: 0o700 });
      const stack = await automation.LocalWorkspace.createOrSelectStack(
        { stackName: req.stackName, projectName: PROJECT_NAME, program },
        { ...workspaceOptions(this.opts, req.stackName), pulumiCommand },
      );
      await stack.setAllConfig(
        pulumiConfigMap(req.config, path.join(workDirFor(this.opts, req.stackName), "ssh")),
      );
      return await fn(stack);
    } catch (err) {
      throw classifyError(err, automation);
    }
  }
}

/** Installs the CLI version matching the SDK into `root` (needs get.pulumi.com). */
export async function installPulumiCli(root: string): Promise<string> {
  const { PulumiCommand } = await import("@pulumi/pulumi/automation");
  const cmd = await PulumiCommand.install({ root });
  return cmd.command;
}
