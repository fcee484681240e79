/**
 * `npm run plan:diff -- base.json head.json`: what a pull request changes in a stack, from two
 * credential-free plans (plan/plan.ts). Prints Markdown (readable in a terminal, posted as a
 * pull-request comment by CI): resources added and removed, each changed input with old → new
 * (multi-line strings such as user-data line by line), and the policy verdict of the head.
 */
import { diffArrays } from "diff";
import { readFileSync } from "node:fs";
import { describeUrn, formatVerdict, type Plan, type PlannedResource } from "./plan";

export interface Change {
  /** Input path, e.g. `logOpts.max-size` or `inboundRules[0].sourceAddresses`. */
  path: string;
  before?: unknown;
  after?: unknown;
}

export interface PlanDiff {
  added: PlannedResource[];
  removed: PlannedResource[];
  changed: { urn: string; changes: Change[] }[];
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/** Leaf-level differences between two JSON values; `undefined` marks an absent side. */
export function diffValues(before: unknown, after: unknown, path = ""): Change[] {
  if (isObject(before) && isObject(after)) {
    const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
    return keys.flatMap((k) => diffValues(before[k], after[k], path ? `${path}.${k}` : k));
  }
  if (Array.isArray(before) && Array.isArray(after)) {
    const length = Math.max(before.length, after.length);
    return Array.from({ length }, (_, i) =>
      diffValues(before[i], after[i], `${path}[${i}]`),
    ).flat();
  }
  return JSON.stringify(before) === JSON.stringify(after) ? [] : [{ path, before, after }];
}

/** The parts of a resource a plan diff compares: where it sits and what it is given. */
function comparable(r: PlannedResource): Record<string, unknown> {
  return {
    parent: r.parent,
    provider: r.provider,
    dependsOn: r.dependsOn,
    deletedWith: r.deletedWith,
    inputs: r.inputs,
  };
}

export function diffPlans(base: Plan, head: Plan): PlanDiff {
  const before = new Map(base.resources.map((r) => [r.urn, r]));
  const after = new Map(head.resources.map((r) => [r.urn, r]));
  const diff: PlanDiff = { added: [], removed: [], changed: [] };
  for (const [urn, r] of after) {
    const old = before.get(urn);
    if (old === undefined) diff.added.push(r);
    else {
      const changes = diffValues(comparable(old), comparable(r));
      if (changes.length > 0) diff.changed.push({ urn, changes });
    }
  }
  for (const [urn, r] of before) if (!after.has(urn)) diff.removed.push(r);
  return diff;
}

const show = (v: unknown) => (v === undefined ? "(absent)" : JSON.stringify(v));

/** A line diff of two texts (a shortest edit script, jsdiff's), as `-`/`+` lines only. */
export function lineDiff(before: string, after: string): string[] {
  return diffArrays(before.split("\n"), after.split("\n")).flatMap((part) => {
    if (part.removed) return part.value.map((line) => `- ${line}`);
    if (part.added) return part.value.map((line) => `+ ${line}`);
    return [];
  });
}

function formatChange(c: Change): string[] {
  const path = c.path.replace(/^inputs\.?/, "") || "(inputs)";
  if (
    typeof c.before === "string" &&
    typeof c.after === "string" &&
    /\n/.test(c.before + c.after)
  ) {
    return [
      `- \`${path}\`:`,
      "  ```diff",
      ...lineDiff(c.before, c.after).map((l) => `  ${l}`),
      "  ```",
    ];
  }
  return [`- \`${path}\`: \`${show(c.before)}\` → \`${show(c.after)}\``];
}

export function formatDiff(base: Plan, head: Plan): string {
  const diff = diffPlans(base, head);
  const lines = [
    `## Plan diff for stack \`${head.stack}\``,
    "",
    `${diff.added.length} to add, ${diff.changed.length} to change, ${diff.removed.length} to remove ` +
      `(${head.resources.length} resources in head; evaluated under mocks, secrets redacted).`,
    "",
  ];
  if (diff.added.length + diff.changed.length + diff.removed.length === 0)
    lines.push("No changes.", "");
  for (const r of diff.added)
    lines.push(
      `### + ${describeUrn(r.urn)}`,
      "",
      "```json",
      JSON.stringify(r.inputs, null, 2),
      "```",
      "",
    );
  for (const r of diff.removed) lines.push(`### - ${describeUrn(r.urn)}`, "");
  for (const { urn, changes } of diff.changed) {
    lines.push(`### ~ ${describeUrn(urn)}`, "", ...changes.flatMap(formatChange), "");
  }
  lines.push("```", ...formatVerdict(head), "```");
  return lines.join("\n");
}

function readPlan(file: string): Plan {
  return JSON.parse(readFileSync(file, "utf8")) as Plan;
}

if (require.main === module) {
  const [baseFile, headFile] = process.argv.slice(2);
  if (baseFile === undefined || headFile === undefined) {
    console.error("usage: npm run plan:diff -- <base.json> <head.json>");
    process.exitCode = 2;
  } else {
    try {
      process.stdout.write(`${formatDiff(readPlan(baseFile), readPlan(headFile))}\n`);
    } catch (err) {
      console.error(err instanceof Error ? err.message : String(err));
      process.exitCode = 2;
    }
  }
}
