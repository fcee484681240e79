/**
 * The program, evaluated under mocks (plan/evaluate.ts), as resources the pack runner takes.
 * Property dependencies (which resource each input came from) are what the firewall-coverage
 * policy matches droplets by; mocks have no engine to record them, so a stack transformation
 * records each resource's inputs and Pulumi's own serializer names the resources behind them.
 */
import * as pulumi from "@pulumi/pulumi";
import {
  evaluateProgram,
  evaluateStack,
  type EvaluateOptions,
  type Evaluation,
} from "../plan/evaluate";
import type { PackResource } from "./runPack";

export interface ProgramEvaluation extends Evaluation {
  /** Every resource as the pack sees it: plaintext inputs, parents and dependencies by URN. */
  packResources: PackResource[];
}

const operator = () => import("../program/operator").then((m) => m.operatorProgram());

function urnOf(resource: pulumi.Resource): Promise<string> {
  return new Promise((resolve) => resource.urn.apply(resolve));
}

/**
 * Evaluates a committed stack for the pack. `mutate`, a stack transformation applied before the
 * recording, lets a test declare a deliberately broken variant of the program.
 */
export async function evaluateForPack(
  stack: string,
  opts: EvaluateOptions = {},
  mutate?: pulumi.ResourceTransformation,
  evaluate: (stack: string, opts: EvaluateOptions) => Promise<Evaluation> = evaluateStack,
): Promise<ProgramEvaluation> {
  const pending: Promise<[string, Record<string, string[]>]>[] = [];
  const program = opts.program ?? operator;
  const evaluation = await evaluate(stack, {
    ...opts,
    program: () => {
      if (mutate) pulumi.runtime.registerStackTransformation(mutate);
      pulumi.runtime.registerStackTransformation((args) => {
        const resource = args.resource;
        pending.push(
          pulumi.runtime
            .serializeResourceProperties(args.name, args.props)
            .then(async ([, deps]) => {
              const byProperty: Record<string, string[]> = {};
              for (const [key, resources] of deps) {
                if (resources.size === 0) continue;
                byProperty[key] = (await Promise.all([...resources].map(urnOf))).sort();
              }
              return [await urnOf(resource), byProperty];
            }),
        );
        return undefined;
      });
      return program();
    },
  });
  const propertyDependencies = new Map(await Promise.all(pending));
  const packResources = evaluation.resources.map((r): PackResource => {
    const byProperty = propertyDependencies.get(r.urn) ?? {};
    return {
      type: r.type,
      name: r.name,
      urn: r.urn,
      props: r.inputs,
      ...(r.parent !== undefined ? { parent: r.parent } : {}),
      dependencies: [...new Set([...r.dependsOn, ...Object.values(byProperty).flat()])].sort(),
      propertyDependencies: byProperty,
    };
  });
  return { ...evaluation, packResources };
}

/** The same for a stack with no committed file: an account stack, with the config given. */
export function evaluateConfigForPack(
  stack: string,
  config: Record<string, string>,
  opts: EvaluateOptions = {},
): Promise<ProgramEvaluation> {
  return evaluateForPack(stack, opts, undefined, (s, o) => evaluateProgram(s, config, o));
}
