/**
 * A credential-free plan: `npm run plan -- --stack dev [--out plan.json]`.
 *
 * Evaluates the program under mocks with the stack's committed config (plan/evaluate.ts), runs
 * the policy pack over it and prints every resource with its inputs. Secrets print as
 * "[secret]", values unknown until apply as "[unknown]", and the output is deterministic (sorted,
 * mock ids and tokens are stable, the generated test key is masked), so two plans, of a pull
 * request's base and head, diff to exactly what changed (plan/diff.ts). Exits 1 when a mandatory
 * policy is violated or a secret-looking input is not a Pulumi secret.
 */
import * as pulumi from "@pulumi/pulumi";
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { stringify } from "yaml";
import { policies } from "../policies/all";
import { evaluateForPack } from "../policies/programResources";
import { runPack, type PackRun } from "../policies/runPack";
import { isUnderSecret, plaintextSecrets, type Exposure } from "../policies/secretInputs";
import type { EvaluateOptions } from "./evaluate";
import { testKeyPair } from "./testKeys";

export const SECRET = "[secret]";
export const UNKNOWN = "[unknown]";
export const EXPOSED = "[secret-looking value that is not a Pulumi secret]";

export interface PlannedResource {
  urn: string;
  type: string;
  name: string;
  parent?: string;
  provider?: string;
  dependsOn: string[];
  deletedWith?: string;
  inputs: Record<string, unknown>;
}

export interface Plan {
  stack: string;
  resources: PlannedResource[];
  outputs: Record<string, unknown>;
  policy: PackRun;
  /** Secret-looking inputs that are not Pulumi secrets (their values are masked above). */
  exposures: (Exposure & { urn: string })[];
}

const PRIVATE_KEY =
  /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z0-9 ]*PRIVATE KEY-----/g;

/** The generated test keys' public blobs: new in every process, so masked for stable plans. */
const mockKeys = (["automation", "host"] as const).map((purpose) => ({
  blob: testKeyPair(purpose).publicKey.split(" ")[1] ?? "",
  mask: `[mock-${purpose}-ssh-public-key]`,
}));

/** Masks what differs from run to run or must never be printed inside an otherwise plain string. */
function maskString(value: string): string {
  if (value === pulumi.runtime.unknownValue) return UNKNOWN;
  return mockKeys.reduce(
    (text, { blob, mask }) => (blob === "" ? text : text.split(blob).join(mask)),
    value.replace(PRIVATE_KEY, SECRET),
  );
}

/** A copy of `value` with secrets, unknowns and exposed paths masked and object keys sorted. */
function redact(
  value: unknown,
  path: string,
  secretPaths: string[],
  exposed: Set<string>,
): unknown {
  if (isUnderSecret(path, secretPaths)) return SECRET;
  if (exposed.has(path)) return EXPOSED;
  if (typeof value === "string") return maskString(value);
  if (Array.isArray(value))
    return value.map((v, i) => redact(v, `${path}[${i}]`, secretPaths, exposed));
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((k) => [
          k,
          redact(
            (value as Record<string, unknown>)[k],
            path ? `${path}.${k}` : k,
            secretPaths,
            exposed,
          ),
        ]),
    );
  }
  return value;
}

/** Evaluates `stack` under mocks and returns its plan, ready to print or diff. */
export async function buildPlan(stack: string, opts: EvaluateOptions = {}): Promise<Plan> {
  const evaluation = await evaluateForPack(stack, opts);
  const exposures: Plan["exposures"] = [];
  const resources = evaluation.resources
    .map((r): PlannedResource => {
      const found = plaintextSecrets(r);
      exposures.push(...found.map((e) => ({ urn: r.urn, ...e })));
      const exposed = new Set(found.map((e) => e.path));
      return {
        urn: r.urn,
        type: r.type,
        name: r.name,
        ...(r.parent !== undefined ? { parent: r.parent } : {}),
        ...(r.provider !== undefined ? { provider: r.provider } : {}),
        dependsOn: [...r.dependsOn].sort(),
        ...(r.deletedWith !== undefined ? { deletedWith: r.deletedWith } : {}),
        inputs: redact(r.inputs, "", r.secretPaths, exposed) as Record<string, unknown>,
      };
    })
    .sort((a, b) => a.urn.localeCompare(b.urn));
  const policy = await runPack(policies, evaluation.packResources);
  // Stack outputs carry no secret marks here, so anything secret-looking in them is masked.
  const outputs = redact(evaluation.outputs, "", [], outputExposures(evaluation.outputs));
  return { stack, resources, outputs: outputs as Record<string, unknown>, policy, exposures };
}

function outputExposures(outputs: Record<string, unknown>): Set<string> {
  return new Set(
    plaintextSecrets({ type: "pulumi:pulumi:Stack", inputs: outputs, secretPaths: [] }).map(
      (e) => e.path,
    ),
  );
}

/** `type name` of a URN's resource, for messages. */
export function describeUrn(urn: string): string {
  const [, , types, name] = urn.split("::");
  return types === undefined || name === undefined ? urn : `${types.split("$").pop()} ${name}`;
}

export function formatPlan(plan: Plan): string {
  const lines = [
    `Plan for stack ${plan.stack}: ${plan.resources.length} resources (under mocks, no credentials)`,
    "",
  ];
  for (const r of plan.resources) {
    lines.push(`${r.type}  ${r.name}`);
    const meta: Record<string, unknown> = {};
    if (r.parent !== undefined) meta["parent"] = describeUrn(r.parent);
    if (r.provider !== undefined) meta["provider"] = describeUrn(r.provider);
    if (r.dependsOn.length > 0) meta["dependsOn"] = r.dependsOn.map(describeUrn);
    if (r.deletedWith !== undefined) meta["deletedWith"] = describeUrn(r.deletedWith);
    if (Object.keys(r.inputs).length > 0) meta["inputs"] = r.inputs;
    if (Object.keys(meta).length > 0) lines.push(indent(stringify(meta, { lineWidth: 0 }), 2));
    lines.push("");
  }
  lines.push(...formatVerdict(plan));
  return lines.join("\n");
}

export function formatVerdict(plan: Plan): string[] {
  const lines: string[] = [];
  const { violations, skipped } = plan.policy;
  lines.push(
    `Policy pack: ${violations.length} violation(s), ${plan.exposures.length} plaintext secret(s).`,
  );
  for (const v of violations) {
    lines.push(
      `  [${v.enforcementLevel}] ${v.policy}: ${v.message}${v.urn ? ` (${describeUrn(v.urn)})` : ""}`,
    );
  }
  for (const e of plan.exposures) {
    lines.push(
      `  [mandatory] secret-inputs-are-secrets: ${e.kind} at ${e.path} (${describeUrn(e.urn)})`,
    );
  }
  for (const s of skipped) lines.push(`  [skipped] ${s.policy}: ${s.reason}`);
  return lines;
}

function indent(text: string, n: number): string {
  return text
    .trimEnd()
    .split("\n")
    .map((l) => " ".repeat(n) + l)
    .join("\n");
}

export function failed(plan: Plan): boolean {
  return (
    plan.exposures.length > 0 ||
    plan.policy.violations.some((v) => v.enforcementLevel === "mandatory")
  );
}

async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { stack: { type: "string" }, out: { type: "string" } },
  });
  if (values.stack === undefined || !/^[A-Za-z0-9_.-]+$/.test(values.stack)) {
    console.error("usage: npm run plan -- --stack <dev|prod|local> [--out plan.json]");
    return 2;
  }
  const plan = await buildPlan(values.stack);
  if (values.out !== undefined) writeFileSync(values.out, `${JSON.stringify(plan, null, 2)}\n`);
  process.stdout.write(`${formatPlan(plan)}\n`);
  return failed(plan) ? 1 : 0;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => (process.exitCode = code),
    (err: unknown) => {
      console.error(err instanceof Error ? err.message : String(err));
      process.exitCode = 2;
    },
  );
}
