import { randomBytes, randomInt } from "node:crypto";
import type {
  DriftReport,
  EngineErrorKind,
  OnEngineEvent,
  StackOutputValues,
  StackRequest,
  StackSummary,
  ToolboxEngine,
  ToolboxOutputs,
} from "./types";
import { EngineError } from "./types";

type Op = "up" | "destroy" | "refresh" | "recover" | "destroyStack";

export interface TestEngineOptions {
  /** Milliseconds each operation takes (default 0). */
  latencyMs?: number;
  /** Milliseconds this operation takes, when it is not `latencyMs`. */
  latencyFor?: (op: Op, req: StackRequest) => number | undefined;
  /** Decides, per call, whether to fail and how; return undefined to succeed. */
  failWith?: (
    op: Op,
    req: StackRequest,
    call: number,
  ) => { message: string; kind: EngineErrorKind } | undefined;
  /** Events emitted before the operation finishes (default: one per resource-ish step). */
  eventsPerOperation?: number;
  /** The backend URL a new stack reports (default http://127.0.0.1:3000). */
  backendUrlFor?: (stackName: string) => string;
}

/** What stays when a toolbox's tokens rotate: the droplet. */
function pick(o: ToolboxOutputs): Partial<ToolboxOutputs> {
  return {
    dropletId: o.dropletId,
    dropletName: o.dropletName,
    dropletUrn: o.dropletUrn,
    ipv4: o.ipv4,
    backendUrl: o.backendUrl,
  };
}

/** One call the engine saw, for assertions on ordering and overlap. */
export interface EngineCall {
  op: Op;
  stackName: string;
  config: StackRequest["config"];
  startedAt: number;
  endedAt?: number;
}

/**
 * THE ONLY FAKE in this package: a ToolboxEngine that provisions nothing. It waits a configurable
 * latency, emits engine-like events, fails on demand, and records its calls (shared between
 * instances through `calls`) so tests can check serialization. Used by the tests and the
 * benchmark; production always uses the Automation API engine.
 */
export class TestEngine implements ToolboxEngine {
  readonly calls: EngineCall[];
  private count = 0;
  private readonly stacks = new Map<string, ToolboxOutputs>();
  private readonly generations = new Map<string, number>();
  /** Stacks the engine did not create: operator stacks, orphans (`seedStack`). */
  private readonly seeded = new Map<string, StackOutputValues>();
  /** listStacks and stackOutputs calls (reads; `calls` holds what changes a stack). */
  reads = 0;

  constructor(
    private readonly opts: TestEngineOptions = {},
    sharedCalls?: EngineCall[],
  ) {
    this.calls = sharedCalls ?? [];
  }

  async up(req: StackRequest, onEvent: OnEngineEvent): Promise<ToolboxOutputs> {
    await this.run("up", req, onEvent);
    const existing = this.stacks.get(req.stackName);
    const token = () => randomBytes(32).toString("base64url");
    const fresh: ToolboxOutputs = {
      dropletId: String(randomInt(1, 2 ** 47)),
      dropletName: `tbx-${req.config.accountId}`,
      dropletUrn: `urn:pulumi:${req.stackName}::agentopia-toolboxes::test:Droplet::toolbox`,
      ipv4: "127.0.0.1",
      backendUrl: this.opts.backendUrlFor?.(req.stackName) ?? "http://127.0.0.1:3000",
      dtmaToken: token(),
      dtmaTokenPrevious: "",
      backendApiToken: token(),
      agentGatewayToken: token(),
    };
    // A raised generation rotates every token; the previous DTMA token is the old current one.
    const outputs: ToolboxOutputs =
      existing === undefined
        ? fresh
        : this.generations.get(req.stackName) === req.config.tokenGeneration
          ? existing
          : { ...fresh, ...pick(existing), dtmaTokenPrevious: existing.dtmaToken };
    this.generations.set(req.stackName, req.config.tokenGeneration);
    this.stacks.set(req.stackName, outputs);
    return outputs;
  }

  async destroy(req: StackRequest, onEvent: OnEngineEvent): Promise<void> {
    await this.run("destroy", req, onEvent);
    this.stacks.delete(req.stackName);
    this.generations.delete(req.stackName);
  }

  async refresh(req: StackRequest, onEvent: OnEngineEvent): Promise<DriftReport> {
    await this.run("refresh", req, onEvent);
    return { drifted: false, changeSummary: { same: this.stacks.has(req.stackName) ? 3 : 0 } };
  }

  async recover(req: StackRequest, onEvent: OnEngineEvent): Promise<void> {
    await this.run("recover", req, onEvent, 0);
  }

  listStacks(): Promise<StackSummary[]> {
    this.reads++;
    const names = [...new Set([...this.stacks.keys(), ...this.seeded.keys()])].sort();
    return Promise.resolve(names.map((name) => ({ name })));
  }

  stackOutputs(stackName: string): Promise<StackOutputValues | undefined> {
    this.reads++;
    const own = this.stacks.get(stackName);
    return Promise.resolve(own ? { ...own } : this.seeded.get(stackName));
  }

  async destroyStack(stackName: string, onEvent: OnEngineEvent): Promise<void> {
    const req: StackRequest = {
      stackName,
      config: {
        accountId: stackName.replace(/^acct-/, ""),
        target: "local",
        agentopiaApiBaseUrl: "",
        controlPlaneCidrs: [],
        tokenGeneration: 0,
      },
    };
    await this.run("destroyStack", req, onEvent);
    this.stacks.delete(stackName);
    this.seeded.delete(stackName);
    this.generations.delete(stackName);
  }

  /**
   * A stack the service did not create through this engine: an operator stack with its outputs
   * (the platform's profile, its canaries), or an orphan `acct-*` stack.
   */
  seedStack(stackName: string, outputs: StackOutputValues = {}): void {
    this.seeded.set(stackName, outputs);
  }

  /** Whether the engine holds a stack of this name. */
  hasStack(stackName: string): boolean {
    return this.stacks.has(stackName) || this.seeded.has(stackName);
  }

  private async run(
    op: Op,
    req: StackRequest,
    onEvent: OnEngineEvent,
    latency = this.opts.latencyFor?.(op, req) ?? this.opts.latencyMs ?? 0,
  ) {
    const call: EngineCall = {
      op,
      stackName: req.stackName,
      config: req.config,
      startedAt: Date.now(),
    };
    this.calls.push(call);
    const n = this.count++;
    const steps = this.opts.eventsPerOperation ?? 2;
    onEvent({ type: "preludeEvent", message: `${op} ${req.stackName}` });
    // Steps are timed from the start, so timer overshoot does not add up: the latency is fixed.
    for (let i = 0; i < steps; i++) {
      await sleepUntil(call.startedAt + (latency * (i + 1)) / steps);
      onEvent({ type: "resOutputsEvent", message: `step ${i + 1}/${steps}` });
    }
    if (steps === 0 && latency > 0) await sleepUntil(call.startedAt + latency);
    call.endedAt = Date.now();
    const failure = this.opts.failWith?.(op, req, n);
    if (failure) throw new EngineError(failure.message, failure.kind);
    onEvent({ type: "summaryEvent", message: `${op} succeeded` });
  }
}

function sleepUntil(deadline: number): Promise<void> {
  return new Promise((r) => setTimeout(r, Math.max(0, deadline - Date.now())));
}
