/**
 * The credential-free plan and its diff: deterministic, secrets redacted, and a change to a
 * config value or to a component shows up as exactly that difference. The component case runs
 * the real CLIs (`npm run plan`, `npm run plan:diff`) on a base checkout and a changed copy,
 * as the pull-request workflow does.
 */
import { spawnSync } from "node:child_process";
import assert from "node:assert/strict";
import fc from "fast-check";
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { testKeyPair } from "../plan/testKeys";
import { diffPlans, diffValues, lineDiff } from "../plan/diff";
import { buildPlan, SECRET, type Plan } from "../plan/plan";
import { evaluateForPack } from "../policies/programResources";
import { secretKindOf } from "../policies/secretScan";

const ROOT = join(__dirname, "..");
const DROPLET_URN =
  "urn:pulumi:dev::agentopia-toolboxes::agentopia:toolbox:ToolboxDroplet$digitalocean:index/droplet:Droplet::acct-canary-dev-host-droplet";

function npm(cwd: string, args: string[]) {
  const result = spawnSync("npm", ["run", "--silent", ...args], { cwd, encoding: "utf8" });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** Values found at an evaluation's secret input paths (the mock tokens and keys). */
function secretValues(value: unknown): string[] {
  if (typeof value === "string") return [value];
  if (Array.isArray(value)) return value.flatMap(secretValues);
  if (typeof value === "object" && value !== null)
    return Object.values(value).flatMap(secretValues);
  return [];
}

describe("plan: credential-free plan and diff", function () {
  let base: Plan;

  before(async () => {
    base = await buildPlan("dev");
  });

  it("lists every resource, sorted, and is the same on every run", async () => {
    const again = await buildPlan("dev");
    assert.deepEqual(again, base);
    const urns = base.resources.map((r) => r.urn);
    assert.deepEqual(
      urns,
      [...urns].sort((a, b) => a.localeCompare(b)),
    );
    assert.ok(base.resources.some((r) => r.urn === DROPLET_URN));
    assert.deepEqual(base.policy.violations, []);
    assert.deepEqual(base.exposures, []);
  });

  it("prints secrets as [secret] and never their values", async () => {
    const evaluation = await evaluateForPack("dev");
    const secrets = evaluation.resources.flatMap((r) =>
      r.secretPaths.flatMap((p) => {
        const value: unknown = p
          .split(".")
          .reduce<unknown>(
            (v, k) =>
              typeof v === "object" && v !== null ? (v as Record<string, unknown>)[k] : undefined,
            r.inputs,
          );
        return secretValues(value);
      }),
    );
    const tokens = secrets
      .map((s) => s.slice(s.indexOf("=") + 1))
      .filter((s) => secretKindOf(s) !== undefined);
    assert.ok(tokens.length >= 4, "the DTMA and backend tokens are secrets under mocks");
    const text = JSON.stringify(base);
    // `tokens` are the values after each `NAME=`; base64 values may end in "=" themselves.
    for (const t of tokens)
      assert.ok(t.length > 0 && !text.includes(t), "a secret value is printed");
    const dtma = base.resources.find((r) => r.name === "acct-canary-dev-containers-dtma")!;
    assert.equal(dtma.inputs["envs"], SECRET);
    const hostKeyBody = testKeyPair("host").privateKey.split("\n")[2];
    assert.ok(
      hostKeyBody.length > 20 && !text.includes(hostKeyBody),
      "the host private key is printed",
    );
  });

  it("a changed config value is exactly one changed input", async () => {
    const head = await buildPlan("dev", { config: { defaultSize: "s-1vcpu-1gb" } });
    assert.deepEqual(diffPlans(base, head), {
      added: [],
      removed: [],
      changed: [
        {
          urn: DROPLET_URN,
          changes: [{ path: "inputs.size", before: "s-1vcpu-512mb-10gb", after: "s-1vcpu-1gb" }],
        },
      ],
    });
  });

  it("a new toolbox in config is exactly its resources added", async () => {
    const head = await buildPlan("dev", {
      config: { toolboxes: '[{"accountId":"canary-dev"},{"accountId":"second"}]' },
    });
    const diff = diffPlans(base, head);
    assert.deepEqual(diff.changed, []);
    assert.deepEqual(diff.removed, []);
    assert.ok(diff.added.length > 10);
    assert.ok(
      diff.added.every((r) => r.name.startsWith("acct-second")),
      "only the new toolbox's resources",
    );
  });

  it("diffs values leaf by leaf and texts line by line", () => {
    assert.deepEqual(diffValues({ a: [1, 2], b: { c: "x" } }, { a: [1], b: { c: "y" }, d: true }), [
      { path: "a[1]", before: 2, after: undefined },
      { path: "b.c", before: "x", after: "y" },
      { path: "d", before: undefined, after: true },
    ]);
    assert.deepEqual(lineDiff("a\nb\nc", "a\nB\nc\nd"), ["- b", "+ B", "+ d"]);
  });

  it("line diffs are shortest edit scripts: what goes and what comes, in order, and no more", () => {
    const lcsLength = (a: string[], b: string[]): number => {
      let row = new Array<number>(b.length + 1).fill(0);
      for (const x of a) {
        const next = [0];
        for (let j = 0; j < b.length; j++) {
          next.push(x === b[j] ? row[j] + 1 : Math.max(row[j + 1], next[j]));
        }
        row = next;
      }
      return row[b.length];
    };
    const isSubsequence = (part: string[], of: string[]): boolean => {
      let i = 0;
      for (const line of of) if (i < part.length && part[i] === line) i++;
      return i === part.length;
    };
    const text = fc.array(fc.constantFrom("a", "b", "c", "d", ""), { maxLength: 12 });
    fc.assert(
      fc.property(text, text, (a, b) => {
        const lines = lineDiff(a.join("\n"), b.join("\n"));
        const removed = lines.filter((l) => l.startsWith("- ")).map((l) => l.slice(2));
        const added = lines.filter((l) => l.startsWith("+ ")).map((l) => l.slice(2));
        assert.equal(removed.length + added.length, lines.length);
        const before = a.join("\n").split("\n");
        const after = b.join("\n").split("\n");
        assert.ok(isSubsequence(removed, before) && isSubsequence(added, after));
        const common = lcsLength(before, after);
        assert.equal(removed.length, before.length - common);
        assert.equal(added.length, after.length - common);
      }),
    );
  });

  describe("the CLIs on a base checkout and a changed copy", function () {
    let dir: string;
    let copy: string;

    before(function () {
      dir = mkdtempSync(join(tmpdir(), "agentopia-plan-"));
      copy = join(dir, "head");
      for (const part of ["program", "components", "cloud-init", "plan", "policies"]) {
        cpSync(join(ROOT, part), join(copy, part), { recursive: true });
      }
      for (const file of [
        "package.json",
        "Pulumi.yaml",
        "Pulumi.dev.yaml",
        "tsconfig.json",
        "tsconfig.base.json",
      ]) {
        cpSync(join(ROOT, file), join(copy, file));
      }
      symlinkSync(join(ROOT, "node_modules"), join(copy, "node_modules"));
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    it("a component change shows up as exactly that difference", function () {
      const specs = join(copy, "components", "containerSpecs.ts");
      const source = readFileSync(specs, "utf8");
      assert.match(
        source,
        /"max-size": "10m"/,
        "the fixture edit still applies to containerSpecs.ts",
      );
      writeFileSync(specs, source.replace(/"max-size": "10m"/, '"max-size": "20m"'));

      const baseJson = join(dir, "base.json");
      const headJson = join(dir, "head.json");
      const planBase = npm(ROOT, ["plan", "--", "--stack", "dev", "--out", baseJson]);
      assert.equal(planBase.status, 0, planBase.stderr);
      assert.match(planBase.stdout, /^Plan for stack dev: \d+ resources/);
      const planHead = npm(copy, ["plan", "--", "--stack", "dev", "--out", headJson]);
      assert.equal(planHead.status, 0, planHead.stderr);

      const diff = npm(ROOT, ["plan:diff", "--", baseJson, headJson]);
      assert.equal(diff.status, 0, diff.stderr);
      const changes = diff.stdout.split("\n").filter((l) => /^(### |- `)/.test(l));
      assert.deepEqual(changes, [
        "### ~ docker:index/container:Container acct-canary-dev-containers-backend",
        '- `logOpts.max-size`: `"10m"` → `"20m"`',
        "### ~ docker:index/container:Container acct-canary-dev-containers-dtma",
        '- `logOpts.max-size`: `"10m"` → `"20m"`',
      ]);
      assert.match(diff.stdout, /0 to add, 2 to change, 0 to remove/);
    });

    it("a plan that breaks a mandatory policy exits 1 and names it", function () {
      const stackFile = join(copy, "Pulumi.dev.yaml");
      const config = readFileSync(stackFile, "utf8");
      writeFileSync(
        stackFile,
        // A region stack config accepts and the pack's default allow-list does not.
        config.replace(
          "  agentopia-toolboxes:regions:\n    - nyc3",
          "  agentopia-toolboxes:regions:\n    - nyc1",
        ),
      );
      const plan = npm(copy, ["plan", "--", "--stack", "dev"]);
      assert.equal(plan.status, 1, plan.stderr);
      assert.match(plan.stdout, /\[mandatory\] droplet-allowed-region: .*nyc1/);
    });

    it("without --stack it prints its usage and exits 2", function () {
      const plan = npm(ROOT, ["plan"]);
      assert.equal(plan.status, 2);
      assert.match(plan.stderr, /usage: npm run plan -- --stack/);
    });
  });
});
