/**
 * Runs the pack's policies in-process over resources described as plain data, the way the
 * Pulumi engine's analyzer would: secrets arrive as plaintext, reading an unknown value skips
 * the policy for that resource (during preview the engine downgrades it to advisory), config
 * is per policy, and `enforcementLevel` in config overrides the policy's own.
 *
 * `npm run plan` and the tests use it on the program evaluated under mocks; `pulumi preview`
 * uses the real analyzer (policies/index.ts).
 */
import type {
  EnforcementLevel,
  PolicyPackConfig,
  PolicyResource,
  PolicyResourceOptions,
  ResourceValidationArgs,
  StackValidationArgs,
} from "@pulumi/policy";
import type { ResourcePolicy, StackPolicy } from "./types";

export interface PackResource {
  type: string;
  name: string;
  urn: string;
  /** Inputs as plain values; secrets already unwrapped, unknowns as the `unknown` sentinel. */
  props: Record<string, unknown>;
  /** URN of the parent resource. */
  parent?: string;
  /** URNs this resource depends on. */
  dependencies?: string[];
  /** Per input property, the URNs its value came from. */
  propertyDependencies?: Record<string, string[]>;
}

interface Violation {
  policy: string;
  enforcementLevel: EnforcementLevel;
  urn?: string;
  message: string;
}

export interface PackRun {
  violations: Violation[];
  /** Policies that could not judge a resource because a value it read is unknown. */
  skipped: { policy: string; urn?: string; reason: string }[];
}

export interface RunOptions {
  config?: PolicyPackConfig;
  /** The value that stands for "unknown until apply" in `props`. */
  unknown?: unknown;
}

class UnknownValue extends Error {}
class NotApplicable extends Error {}

/** Props that throw `UnknownValue` when a policy reads an unknown value, like the engine's proxy. */
function guarded(value: unknown, unknown: unknown, path: string): unknown {
  if (typeof value !== "object" || value === null) return value;
  return new Proxy(value, {
    get: (target, key) => {
      const field: unknown = Reflect.get(target, key);
      if (typeof key !== "string") return field;
      if (unknown !== undefined && field === unknown) {
        throw new UnknownValue(`${path}.${key} is unknown until the update runs`);
      }
      return guarded(field, unknown, `${path}.${key}`);
    },
  });
}

const DEFAULT_OPTIONS: PolicyResourceOptions = {
  protect: false,
  ignoreChanges: [],
  aliases: [],
  customTimeouts: { createSeconds: 0, updateSeconds: 0, deleteSeconds: 0 },
  additionalSecretOutputs: [],
};

function configFor(config: PolicyPackConfig, policy: string): Record<string, unknown> {
  const entry = config[policy];
  if (entry === undefined || typeof entry === "string") return {};
  return Object.fromEntries(Object.entries(entry).filter(([key]) => key !== "enforcementLevel"));
}

function levelFor(
  config: PolicyPackConfig,
  policy: ResourcePolicy | StackPolicy,
): EnforcementLevel {
  const entry = config[policy.name];
  if (typeof entry === "string") return entry;
  return entry?.enforcementLevel ?? policy.enforcementLevel ?? "advisory";
}

const notApplicable = (reason?: string): never => {
  throw new NotApplicable(reason ?? "not applicable");
};

/** Validation args for one resource, as the analyzer builds them. */
export function resourceArgs(
  resource: PackResource,
  config: Record<string, unknown> = {},
  unknown?: unknown,
): ResourceValidationArgs {
  const props = guarded(resource.props, unknown, "props") as Record<string, unknown>;
  return {
    type: resource.type,
    name: resource.name,
    urn: resource.urn,
    props,
    opts: { ...DEFAULT_OPTIONS, ...(resource.parent ? { parent: resource.parent } : {}) },
    stackTags: new Map(),
    isType: () => false,
    asType: () => undefined,
    getConfig: <T extends object>() => config as T,
    notApplicable,
  };
}

/** Stack validation args: resources linked to their parents and dependencies by URN. */
export function stackArgs(
  resources: PackResource[],
  config: Record<string, unknown> = {},
  unknown?: unknown,
): StackValidationArgs {
  const byUrn = new Map<string, PolicyResource>();
  for (const r of resources) {
    byUrn.set(r.urn, {
      type: r.type,
      name: r.name,
      urn: r.urn,
      props: guarded(r.props, unknown, "props") as Record<string, unknown>,
      opts: DEFAULT_OPTIONS,
      dependencies: [],
      propertyDependencies: {},
      isType: () => false,
      asType: () => undefined,
    });
  }
  const resolve = (urns: string[] = []) =>
    urns.map((u) => byUrn.get(u)).filter((r): r is PolicyResource => r !== undefined);
  for (const r of resources) {
    const node = byUrn.get(r.urn)!;
    if (r.parent !== undefined) node.parent = byUrn.get(r.parent);
    node.dependencies = resolve(r.dependencies);
    node.propertyDependencies = Object.fromEntries(
      Object.entries(r.propertyDependencies ?? {}).map(([k, urns]) => [k, resolve(urns)]),
    );
  }
  return {
    resources: [...byUrn.values()],
    stackTags: new Map(),
    getConfig: <T extends object>() => config as T,
    notApplicable,
  };
}

/** Runs every policy over the resources and collects what they report. */
export async function runPack(
  policies: (ResourcePolicy | StackPolicy)[],
  resources: PackResource[],
  options: RunOptions = {},
): Promise<PackRun> {
  const config = options.config ?? {};
  const run: PackRun = { violations: [], skipped: [] };
  for (const policy of policies) {
    const enforcementLevel = levelFor(config, policy);
    if (enforcementLevel === "disabled") continue;
    const policyConfig = configFor(config, policy.name);
    const attempt = async (urn: string | undefined, body: () => unknown) => {
      try {
        await body();
      } catch (err) {
        if (err instanceof UnknownValue)
          run.skipped.push({ policy: policy.name, urn, reason: err.message });
        else if (!(err instanceof NotApplicable)) throw err;
      }
    };
    if ("validateStack" in policy) {
      const args = stackArgs(resources, policyConfig, options.unknown);
      await attempt(undefined, () =>
        policy.validateStack(args, (message, urn) =>
          run.violations.push({
            policy: policy.name,
            enforcementLevel,
            message,
            ...(urn ? { urn } : {}),
          }),
        ),
      );
      continue;
    }
    for (const resource of resources) {
      const args = resourceArgs(resource, policyConfig, options.unknown);
      await attempt(resource.urn, () =>
        policy.validateResource(args, (message) =>
          run.violations.push({
            policy: policy.name,
            enforcementLevel,
            message,
            urn: resource.urn,
          }),
        ),
      );
    }
  }
  return run;
}
