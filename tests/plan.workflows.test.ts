/**
 * The GitHub workflows cannot run here, so their shape is checked instead: each parses as YAML,
 * every job has a runner and steps, every `npm run` script and `bash` file they call exists,
 * the preview runs dev and prod with the policy pack, and the images workflow's discovery
 * finds exactly the Dockerfiles in the repository.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parseDocument } from "yaml";

const ROOT = join(__dirname, "..");
const DIR = join(ROOT, ".github", "workflows");

interface Step {
  name?: string;
  id?: string;
  uses?: string;
  run?: string;
  with?: Record<string, unknown>;
}
interface Workflow {
  on: unknown;
  jobs: Record<
    string,
    { "runs-on": string; steps: Step[]; strategy?: { matrix?: Record<string, unknown> } }
  >;
}

function load(file: string): Workflow {
  const doc = parseDocument(readFileSync(join(DIR, file), "utf8"), {
    strict: true,
    uniqueKeys: true,
  });
  assert.deepEqual(doc.errors, [], `${file} has YAML errors`);
  assert.deepEqual(doc.warnings, [], `${file} has YAML warnings`);
  return doc.toJS() as Workflow;
}

const steps = (wf: Workflow) => Object.values(wf.jobs).flatMap((j) => j.steps);
const scripts = (
  JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as {
    scripts: Record<string, string>;
  }
).scripts;

describe("plan: GitHub workflows", () => {
  const files = readdirSync(DIR).filter((f) => f.endsWith(".yml"));

  it("has the CI, preview, images, plan and plan-comment workflows", () => {
    assert.deepEqual(files.sort(), [
      "ci.yml",
      "images.yml",
      "plan-comment.yml",
      "plan.yml",
      "preview.yml",
    ]);
  });

  for (const file of files) {
    it(`${file}: parses, and every job has a runner and well-formed steps`, () => {
      const wf = load(file);
      assert.ok(wf.on, "no trigger");
      for (const [name, job] of Object.entries(wf.jobs)) {
        assert.match(job["runs-on"], /^ubuntu-/, `${name}: runs-on`);
        assert.ok(Array.isArray(job.steps) && job.steps.length > 0, `${name}: steps`);
        for (const step of job.steps) {
          assert.ok(
            (step.uses === undefined) !== (step.run === undefined),
            `${name}: a step has uses xor run`,
          );
          if (step.uses)
            assert.match(
              step.uses,
              /^[\w.-]+\/[\w.-]+@v\d+$/,
              `${name}: ${step.uses} pinned to a major`,
            );
        }
      }
    });

    it(`${file}: every npm script and bash file it calls exists`, () => {
      for (const step of steps(load(file))) {
        for (const match of (step.run ?? "").matchAll(/\bnpm run (?:--silent )?([\w:-]+)/g)) {
          assert.ok(scripts[match[1]], `npm run ${match[1]} is not a package.json script`);
        }
        if (/\bnpm test\b/.test(step.run ?? "")) assert.ok(scripts["test"]);
        for (const match of (step.run ?? "").matchAll(/\bbash ([\w./-]+)/g)) {
          assert.ok(existsSync(join(ROOT, match[1])), `bash ${match[1]} does not exist`);
        }
      }
    });
  }

  it("CI runs the README's test command through .ci/run", () => {
    assert.ok(steps(load("ci.yml")).some((s) => s.run?.includes("bash .ci/run")));
    assert.match(readFileSync(join(ROOT, ".ci", "run"), "utf8"), /scripts\/run\.sh test/);
    assert.match(readFileSync(join(ROOT, "scripts", "run.sh"), "utf8"), /npm test/);
  });

  it("the preview diffs dev and prod with the policy pack and comments on the pull request", () => {
    const wf = load("preview.yml");
    assert.deepEqual(wf.jobs["preview"].strategy?.matrix?.["stack"], ["dev", "prod"]);
    const pulumi = steps(wf).find((s) => s.uses?.startsWith("pulumi/actions@"))!;
    assert.equal(pulumi.with?.["command"], "preview");
    assert.equal(pulumi.with?.["diff"], true);
    assert.equal(pulumi.with?.["comment-on-pr"], true);
    assert.equal(pulumi.with?.["policyPacks"], "policies");
    assert.ok(existsSync(join(ROOT, String(pulumi.with?.["policyPacks"]), "PulumiPolicy.yaml")));
  });

  it("the plan workflow plans base and head of every committed stack", () => {
    const wf = load("plan.yml");
    const stacks = wf.jobs["plan"].strategy?.matrix?.["stack"] as string[];
    for (const s of stacks) assert.ok(existsSync(join(ROOT, `Pulumi.${s}.yaml`)), s);
    const runs = steps(wf)
      .map((s) => s.run ?? "")
      .join("\n");
    assert.match(runs, /plan -- --stack \$\{\{ matrix.stack \}\} --out \.\.\/base\.json/);
    assert.match(runs, /plan:diff -- \.\.\/base\.json \.\.\/head\.json/);
  });

  it("the images workflow's discovery finds every service Dockerfile", function () {
    const find = steps(load("images.yml")).find((s) => s.id === "find")!;
    const command = find
      .run!.split("\n")
      .slice(0, 2)
      .join("\n")
      .replace(/^services=\$\(/, "")
      .replace(/\)$/, "");
    let found: string[];
    try {
      found = JSON.parse(
        execFileSync("bash", ["-c", command], { cwd: ROOT, encoding: "utf8" }),
      ) as string[];
    } catch (err) {
      if (/jq: (command )?not found/.test(String(err))) {
        console.log("      jq is not installed here: the discovery command cannot be run");
        this.skip();
      }
      throw err;
    }
    const expected = readdirSync(ROOT, { withFileTypes: true })
      .filter(
        (d) =>
          d.isDirectory() &&
          d.name !== "node_modules" &&
          existsSync(join(ROOT, d.name, "Dockerfile")),
      )
      .map((d) => d.name)
      .sort();
    assert.ok(expected.includes("dtma"));
    assert.deepEqual(found, expected);
  });
});
