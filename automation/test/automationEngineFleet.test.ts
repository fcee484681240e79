/**
 * The engine seam's fleet calls (issue 11) through the Automation API engine and the SDK's own
 * calls, against the stand-in `pulumi` (test/fixtures/pulumiStandIn.ts): `stack ls --json`,
 * `stack output --json [--show-secrets] --stack`, and select + destroy + `stack rm` by name.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { AutomationEngine } from "../src/engine/automationEngine";
import type { EngineEvent } from "../src/engine/types";
import { writePulumiStandIn, type PulumiStandIn } from "./fixtures/pulumiStandIn";

const REPO_ROOT = path.resolve(__dirname, "../..");

describe("Automation API engine: list stacks, read outputs, destroy by name (stand-in CLI)", function () {
  this.timeout(60_000);
  let dir: string;
  let standIn: PulumiStandIn;
  let engine: AutomationEngine;
  const savedPath = process.env.PATH;
  const passphrase = "fleet-test-passphrase-0123456789";

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "engine-fleet-"));
    standIn = await writePulumiStandIn(path.join(dir, "cli"));
    for (const name of ["dev", "acct-a", "acct-b"]) {
      await writeFile(path.join(dir, "cli", "stacks", name), "");
    }
    await standIn.setOutputs({ environmentTag: "env-dev", secretThing: "s3cr3t-value-42" }, [
      "secretThing",
    ]);
    process.env.PATH = `${standIn.binDir}${path.delimiter}${savedPath}`;
    engine = new AutomationEngine({
      repoRoot: REPO_ROOT,
      workRoot: path.join(dir, "stacks"),
      stateBackendUrl: `file://${dir}/state`,
      passphrase,
    });
  });
  after(async () => {
    process.env.PATH = savedPath;
    await rm(dir, { recursive: true, force: true });
  });

  it("lists the project's stacks with `pulumi stack ls --json`", async () => {
    assert.deepEqual(
      (await engine.listStacks()).map((s) => s.name),
      ["acct-a", "acct-b", "dev"],
    );
    const ls = (await standIn.calls()).find((c) => c.argv[0] === "stack" && c.argv[1] === "ls");
    assert.deepEqual(ls?.argv.slice(0, 3), ["stack", "ls", "--json"]);
  });

  it("reads a stack's outputs, secrets in plain; a stack that does not exist is undefined", async () => {
    assert.deepEqual(await engine.stackOutputs("dev"), {
      environmentTag: "env-dev",
      secretThing: "s3cr3t-value-42",
    });
    assert.equal(await engine.stackOutputs("nope"), undefined);
    const outputs = (await standIn.calls()).filter((c) => c.argv[1] === "output");
    assert.ok(outputs.some((c) => c.argv.includes("--show-secrets") && c.argv.includes("dev")));
  });

  it("destroys a stack known only by its name, removes it and its work directory", async () => {
    const work = path.join(dir, "stacks", "acct-b");
    await mkdir(work, { recursive: true });
    const events: EngineEvent[] = [];
    await engine.destroyStack("acct-b", (e) => events.push(e));
    const calls = (await standIn.calls()).map((c) => c.argv.slice(0, 2).join(" "));
    assert.ok(calls.includes("stack select"));
    assert.ok(calls.some((c) => c.startsWith("destroy")));
    assert.ok(calls.includes("stack rm"));
    assert.equal(existsSync(work), false);
    assert.deepEqual(
      (await engine.listStacks()).map((s) => s.name),
      ["acct-a", "dev"],
    );
    assert.ok(events.some((e) => e.type === "stackRemoved"));
    // No secret on any command line the CLI was given.
    for (const c of await standIn.calls()) assert.ok(!c.argv.join(" ").includes(passphrase));
  });
});
