import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import path from "node:path";

// runService in a process of its own: what the DTMA's and the backend's main do.

const FIXTURE = path.join(__dirname, "fixtures", "service.ts");
const VERSION = (
  JSON.parse(readFileSync(path.join(__dirname, "..", "package.json"), "utf8")) as {
    version: string;
  }
).version;

interface Run {
  code: number | null;
  stderr: string;
  logs: { msg: string; signal?: string; version?: string; err?: { message: string } }[];
}

/** Runs the fixture; `signal` is sent once it has logged "started". */
async function run(env: Record<string, string>, signal?: NodeJS.Signals): Promise<Run> {
  const child = spawn(process.execPath, ["--import", "tsx", FIXTURE], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
  child.stdout.on("data", (c: Buffer) => {
    stdout += c.toString();
    if (signal && stdout.includes('"msg":"started"')) child.kill(signal);
  });
  const [code] = (await once(child, "exit")) as [number | null];
  const logs = stdout
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Run["logs"][number]);
  return { code, stderr, logs };
}

describe("runService", function () {
  it("stops a bad configuration with its one line on stderr, exit 1, nothing started", async function () {
    const r = await run({ FAIL_CONFIG: "1" });
    assert.equal(r.code, 1);
    assert.equal(r.stderr, "invalid configuration: PORT must be at most 65535\n");
    assert.deepEqual(r.logs, []);
  });

  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    it(`starts the app with the package's version and stops it on ${signal}, exit 0`, async function () {
      const r = await run({}, signal);
      assert.equal(r.code, 0, r.stderr);
      // Seen on a loaded machine: "stopped" reaching the pipe before "shutting down" (their
      // times in order), so the lines are compared as a set.
      assert.deepEqual(r.logs.map((l) => l.msg).sort(), ["shutting down", "started", "stopped"]);
      assert.equal(r.logs.find((l) => l.msg === "started")?.version, VERSION);
      assert.equal(r.logs.find((l) => l.msg === "shutting down")?.signal, signal);
    });
  }

  it("exits 1 when the stop fails, logging why", async function () {
    const r = await run({ FAIL_STOP: "1" }, "SIGTERM");
    assert.equal(r.code, 1);
    const failed = r.logs.find((l) => l.msg === "shutdown failed");
    assert.equal(failed?.err?.message, "stuck");
  });
});
