/**
 * Evaluates a stack's program under Pulumi's mocks: no engine, no cloud, no credentials.
 *
 * Used by the stack tests, the policy pack's whole-program test, the benchmarks and the
 * credential-free `npm run plan`. It reads `Pulumi.<stack>.yaml`, runs the program inside a
 * Pulumi stack with a mock monitor, and returns every resource with its resolved inputs, which
 * of them were secrets, its parent, its explicit dependencies and its provider.
 */
import * as pulumi from "@pulumi/pulumi";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import { CONFIG_NAMESPACE, PROJECT_NAME } from "@agentopia-toolboxes/contract";
import { computedState, mockId } from "./mockState";
import { testKeyPair } from "./testKeys";

const ROOT = join(__dirname, "..");

export interface EvaluatedResource {
  type: string;
  name: string;
  urn: string;
  /** Inputs as the provider would receive them, secrets unwrapped. */
  inputs: Record<string, unknown>;
  /** Dotted paths of inputs that were Pulumi secrets (`envs`, `connection.privateKey`). */
  secretPaths: string[];
  parent?: string;
  /** URNs named in `dependsOn` (explicit dependencies only). */
  dependsOn: string[];
  /** URN of the explicit provider, if any. */
  provider?: string;
  /** URN of the resource this one is deleted with, if any. */
  deletedWith?: string;
}

export interface Evaluation {
  resources: EvaluatedResource[];
  outputs: Record<string, unknown>;
}

export interface EvaluateOptions {
  /** Extra or replacing config, keys without the namespace, values as Pulumi passes them. */
  config?: Record<string, string>;
  /** Keys (without namespace) whose values are secrets. */
  secretKeys?: string[];
  /** The program to run; default: the operator program (index.ts). */
  program?: () => unknown;
  /** Outputs a StackReference returns (the account program reads the platform stack). */
  stackReferenceOutputs?: Record<string, unknown>;
  /**
   * State a resource reports beyond its inputs, over the mocks' own (a test that really created
   * the resource reports what it got, e.g. the port Docker chose).
   */
  resourceState?: (
    type: string,
    name: string,
    inputs: Record<string, unknown>,
  ) => Record<string, unknown> | undefined;
}

/** Stack config from `Pulumi.<stack>.yaml`, as the strings Pulumi hands to a program. */
export function committedStackConfig(stack: string): Record<string, string> {
  const file = join(ROOT, `Pulumi.${stack}.yaml`);
  const doc = parseYaml(readFileSync(file, "utf8")) as { config?: Record<string, unknown> } | null;
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(doc?.config ?? {})) {
    out[key] = typeof value === "string" ? value : JSON.stringify(value);
  }
  return out;
}

/** Unwraps Pulumi's secret envelopes, recording where they were. */
function unwrapSecrets(value: unknown, path: string, secrets: string[]): unknown {
  if (Array.isArray(value)) return value.map((v, i) => unwrapSecrets(v, `${path}[${i}]`, secrets));
  if (value !== null && typeof value === "object") {
    const record = value as Record<string, unknown>;
    if (record[pulumi.runtime.specialSigKey] === pulumi.runtime.specialSecretSig) {
      secrets.push(path);
      return unwrapSecrets(record.value, path, []);
    }
    return Object.fromEntries(
      Object.entries(record).map(([k, v]) => [
        k,
        unwrapSecrets(v, path ? `${path}.${k}` : k, secrets),
      ]),
    );
  }
  return value;
}

interface Captured {
  type: string;
  name: string;
  parent?: pulumi.Resource;
  dependsOn: pulumi.Resource[];
  provider?: pulumi.ProviderResource;
  deletedWith?: pulumi.Resource;
  resource?: pulumi.Resource;
}

function urnOf(resource: pulumi.Resource): Promise<string> {
  return new Promise((resolve) => resource.urn.apply((u) => resolve(u)));
}

async function resolveUrn(resource: pulumi.Resource | undefined): Promise<string | undefined> {
  return resource ? urnOf(resource) : undefined;
}

/**
 * Runs the program under mocks. Each call starts a fresh mock monitor, so evaluations are
 * independent; run them one after another, not concurrently (the runtime is per process).
 */
export async function evaluateProgram(
  stack: string,
  config: Record<string, string>,
  opts: EvaluateOptions = {},
): Promise<Evaluation> {
  const registered = new Map<string, { inputs: Record<string, unknown>; secretPaths: string[] }>();
  await pulumi.runtime.setMocks(
    {
      newResource(args) {
        const id = mockId(args.type, args.name);
        if (args.type === "pulumi:pulumi:StackReference") {
          // Its `name` is what the pack reads (the platform an account stack belongs to).
          registered.set(`${args.type}::${args.name}`, {
            inputs: args.inputs as Record<string, unknown>,
            secretPaths: [],
          });
          return {
            id: String((args.inputs as { name?: unknown }).name),
            state: { outputs: opts.stackReferenceOutputs ?? {} },
          };
        }
        const secretPaths: string[] = [];
        const inputs = unwrapSecrets(args.inputs, "", secretPaths) as Record<string, unknown>;
        registered.set(`${args.type}::${args.name}`, {
          inputs,
          secretPaths,
        });
        const state = {
          ...inputs,
          ...computedState({ ...args, inputs }, id),
          ...opts.resourceState?.(args.type, args.name, inputs),
        };
        return { id, state };
      },
      call(args) {
        return args.inputs as Record<string, unknown>;
      },
    },
    PROJECT_NAME,
    stack,
    false,
  );
  const namespaced: Record<string, string> = {};
  for (const [key, value] of Object.entries({ ...config, ...opts.config })) {
    namespaced[key.includes(":") ? key : `${CONFIG_NAMESPACE}:${key}`] = value;
  }
  pulumi.runtime.setAllConfig(
    namespaced,
    (opts.secretKeys ?? []).map((k) => (k.includes(":") ? k : `${CONFIG_NAMESPACE}:${k}`)),
  );

  const captured: Captured[] = [];
  // The SDK stores a formatted stack trace on every promise it makes (leak diagnostics that
  // only the engine's exit path reads); with tsx's source maps that was 80% of the time and
  // most of the memory at 100 toolboxes. Mocks have no use for them.
  const stackTraceLimit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  const program =
    opts.program ?? (() => import("../program/operator").then((m) => m.operatorProgram()));
  const outputs = await pulumi.runtime.runInPulumiStack(() => {
    pulumi.runtime.registerStackTransformation((args) => {
      captured.push({
        type: args.type,
        name: args.name,
        parent: args.opts.parent,
        dependsOn: ([] as pulumi.Resource[]).concat(
          (args.opts.dependsOn as pulumi.Resource | pulumi.Resource[] | undefined) ?? [],
        ),
        provider: (args.opts as pulumi.CustomResourceOptions).provider,
        deletedWith: args.opts.deletedWith,
        resource: args.resource,
      });
      return undefined;
    });
    return Promise.resolve(program());
  });
  // Components register their outputs after the stack resolves; drain that before returning
  // so the next evaluation's mock monitor never sees this one's calls.
  await pulumi.runtime.disconnect();
  Error.stackTraceLimit = stackTraceLimit;

  const resources: EvaluatedResource[] = [];
  for (const c of captured) {
    const reg = registered.get(`${c.type}::${c.name}`);
    const urn = c.resource ? await urnOf(c.resource) : `${c.type}::${c.name}`;
    resources.push({
      type: c.type,
      name: c.name,
      urn,
      inputs: reg?.inputs ?? {},
      secretPaths: reg?.secretPaths ?? [],
      parent: await resolveUrn(c.parent),
      dependsOn: await Promise.all(c.dependsOn.map(urnOf)),
      provider: await resolveUrn(c.provider),
      deletedWith: await resolveUrn(c.deletedWith),
    });
  }
  return { resources, outputs: outputs ?? {} };
}

/**
 * Evaluates a committed stack (`dev`, `prod`, `local`) with its own config. The secrets a real
 * operator sets with `pulumi config set --secret` are filled with a generated test key.
 */
export function evaluateStack(stack: string, opts: EvaluateOptions = {}): Promise<Evaluation> {
  const config = committedStackConfig(stack);
  const target = config[`${CONFIG_NAMESPACE}:target`];
  const secrets: Record<string, string> =
    target === "local" ? {} : { sshPrivateKey: testKeyPair().privateKey };
  return evaluateProgram(stack, config, {
    ...opts,
    config: { ...secrets, ...opts.config },
    secretKeys: [...Object.keys(secrets), ...(opts.secretKeys ?? [])],
  });
}
