/**
 * STAND-IN FOR THE PULUMI ENGINE, for the whole-lifecycle test on machines without a Pulumi CLI.
 * It implements the automation service's engine seam and, for each operation on a local-target
 * stack: builds the stack config exactly as the production engine does (`pulumiConfigMap`), evaluates
 * the real account program with it under Pulumi's mocks, runs the policy pack over the resources
 * (a violation fails the operation, as `--policy-pack` would), then creates the networks and
 * containers the program declares on the real Docker daemon from their own resource inputs
 * (tests/harness/dockerResources.ts), and evaluates once more with what Docker reported (the
 * backend's chosen port) for the stack's outputs. Destroy removes what the program declared.
 *
 * It lives with the tests and no setting of the service can select it (main.ts builds the
 * AutomationEngine only); every event it emits says what it stands in for.
 */
import type {
  EngineEvent,
  OnEngineEvent,
  StackOutputValues,
  StackRequest,
  StackSummary,
  ToolboxEngine,
  ToolboxOutputs,
} from "../../automation/src/engine/types";
import { EngineError } from "../../automation/src/engine/types";
import { outputsFrom } from "../../automation/src/engine/automationEngine";
import { pulumiConfigMap } from "../../automation/src/engine/automationOptions";
import type { EvaluatedResource } from "../../plan/evaluate";
import { mockImageId } from "../../plan/mockState";
import { policies } from "../../policies/all";
import { evaluateConfigForPack } from "../../policies/programResources";
import { runPack } from "../../policies/runPack";
import {
  CONTAINER,
  createContainer,
  createNetwork,
  docker,
  NETWORK,
  publishedPorts,
  REMOTE_IMAGE,
  removeAll,
  waitHealthy,
} from "./dockerResources";

export const STAND_IN =
  "[stand-in for the Pulumi engine: account program under mocks, containers on the local daemon]";

type Port = { internal: number; external?: number; ip?: string };

/** Evaluations run one at a time: the Pulumi runtime (and its mocks) is per process. */
let queue: Promise<unknown> = Promise.resolve();
function serially<T>(fn: () => Promise<T>): Promise<T> {
  const next = queue.then(fn, fn);
  queue = next.catch(() => undefined);
  return next;
}

export class MockedProgramOnDockerEngine implements ToolboxEngine {
  /** Every operation seen, for assertions (stack name and the config the service built). */
  readonly calls: { op: string; stackName: string; config: Record<string, string> }[] = [];
  /** The outputs of every stack it brought up and has not destroyed. */
  private readonly stacks = new Map<string, ToolboxOutputs>();

  async up(req: StackRequest, onEvent: OnEngineEvent): Promise<ToolboxOutputs> {
    this.refuseDroplets(req);
    const config = this.config(req, "up");
    const first = await serially(() => this.evaluate(req, config));
    const run = await runPack(policies, first.packResources);
    if (run.violations.length > 0) {
      throw new EngineError(
        `policy violations: ${run.violations.map((v) => `[${v.enforcementLevel}] ${v.policy}: ${v.message}`).join("; ")}`,
        "permanent",
      );
    }
    const containers = first.resources.filter((r) => r.type === CONTAINER);
    const networks = first.resources.filter((r) => r.type === NETWORK);
    const images = new Map(
      first.resources
        .filter((r) => r.type === REMOTE_IMAGE)
        .map((r) => [mockImageId(String(r.inputs.name)), String(r.inputs.name)]),
    );
    // As an update that changes the containers' inputs replaces them; networks stay.
    removeAll(
      containers.map((c) => String(c.inputs.name)),
      [],
    );
    for (const n of networks) {
      if (!this.exists("network", String(n.inputs.name))) createNetwork(n.inputs);
      this.emit(onEvent, "create", n);
    }
    for (const c of containers) {
      const image = images.get(String(c.inputs.image));
      if (image === undefined)
        throw new EngineError(`${c.name}: no RemoteImage for its image`, "permanent");
      createContainer(c.inputs, image);
      this.emit(onEvent, "create", c);
    }
    for (const c of containers) {
      if (c.inputs.wait === true) {
        await waitHealthy(String(c.inputs.name), Number(c.inputs.waitTimeout ?? 60)).catch(
          (err: Error) => {
            throw new EngineError(err.message, "permanent");
          },
        );
      }
    }
    // The outputs the program computes from what Docker reported (the backend's chosen port).
    const reported = await serially(() =>
      this.evaluate(req, config, (type, _name, inputs) =>
        type === CONTAINER
          ? { ports: publishedPorts(String(inputs.name), (inputs.ports ?? []) as Port[]) }
          : undefined,
      ),
    );
    onEvent({
      type: "summaryEvent",
      message: `${STAND_IN} ${containers.length + networks.length} created`,
    });
    const outputs = outputsFrom(
      Object.fromEntries(
        Object.entries(reported.outputs).map(([k, v]) => [k, { value: v, secret: false }]),
      ),
    );
    this.stacks.set(req.stackName, outputs);
    return outputs;
  }

  async destroy(req: StackRequest, onEvent: OnEngineEvent): Promise<void> {
    const config = this.config(req, "destroy");
    const ev = await serially(() => this.evaluate(req, config));
    const containers = ev.resources.filter((r) => r.type === CONTAINER);
    const networks = ev.resources.filter((r) => r.type === NETWORK);
    removeAll(
      containers.map((c) => String(c.inputs.name)),
      networks.map((n) => String(n.inputs.name)),
    );
    for (const r of [...containers, ...networks]) this.emit(onEvent, "delete", r);
    this.stacks.delete(req.stackName);
  }

  listStacks(): Promise<StackSummary[]> {
    return Promise.resolve([...this.stacks.keys()].map((name) => ({ name })));
  }

  stackOutputs(stackName: string): Promise<StackOutputValues | undefined> {
    const outputs = this.stacks.get(stackName);
    return Promise.resolve(outputs && { ...outputs });
  }

  /** Without a record there is no config to evaluate the program with: nothing to stand in for. */
  destroyStack(stackName: string, onEvent: OnEngineEvent): Promise<void> {
    onEvent({
      type: "engineUnavailable",
      message: `${STAND_IN} destroys only stacks it has a request for`,
    });
    return Promise.reject(
      new EngineError(`${STAND_IN} cannot destroy ${stackName} by name alone`, "permanent"),
    );
  }

  async refresh(req: StackRequest, onEvent: OnEngineEvent) {
    const config = this.config(req, "refresh");
    const ev = await serially(() => this.evaluate(req, config));
    const declared = ev.resources.filter((r) => r.type === CONTAINER || r.type === NETWORK);
    const missing = declared.filter(
      (r) => !this.exists(r.type === CONTAINER ? "container" : "network", String(r.inputs.name)),
    );
    onEvent({ type: "summaryEvent", message: `${STAND_IN} ${missing.length} missing` });
    return {
      drifted: missing.length > 0,
      changeSummary: { same: declared.length - missing.length, create: missing.length },
    };
  }

  recover(_req: StackRequest, onEvent: OnEngineEvent): Promise<void> {
    onEvent({ type: "recovered", message: `${STAND_IN} nothing to recover` });
    return Promise.resolve();
  }

  private refuseDroplets(req: StackRequest): void {
    if (req.config.target !== "local") {
      throw new EngineError(`${STAND_IN} runs the local target only`, "permanent");
    }
  }

  /** The stack config the production engine would set, keys without their namespace. */
  private config(req: StackRequest, op: string): Record<string, string> {
    const map = pulumiConfigMap(req.config);
    const config = Object.fromEntries(
      Object.entries(map).map(([k, v]) => [k.split(":")[1], v.value]),
    );
    this.calls.push({ op, stackName: req.stackName, config });
    return config;
  }

  private evaluate(
    req: StackRequest,
    config: Record<string, string>,
    resourceState?: (
      type: string,
      name: string,
      inputs: Record<string, unknown>,
    ) => Record<string, unknown> | undefined,
  ) {
    return evaluateConfigForPack(req.stackName, config, {
      program: () => import("../../program/account").then((m) => m.accountProgram({})),
      resourceState,
    });
  }

  private exists(kind: "container" | "network", name: string): boolean {
    try {
      docker([kind, "inspect", name]);
      return true;
    } catch {
      return false;
    }
  }

  private emit(onEvent: OnEngineEvent, op: string, r: EvaluatedResource): void {
    const event: EngineEvent = {
      type: "resourcePreEvent",
      message: `${STAND_IN} ${op} ${r.type} ${r.name}`,
      data: { op, urn: r.urn },
    };
    onEvent(event);
  }
}
