/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-assignment -- JSON responses are checked by assertions */
/**
 * Issue 13, item 1: no secret the service knows ever leaves it in an error text. The real
 * AutomationEngine runs against a stand-in `pulumi` on PATH (test/fixtures/pulumiStandIn.ts) that
 * fails the chosen command with an error text carrying a secret and echoing its command line; the
 * service runs on real Postgres (its own role, with a random password) and is driven over HTTP.
 * Each secret is fed through each failure path (config set-all, up, destroy, refresh, recover),
 * and none may come back from GET /v1/toolboxes/:id, GET /v1/operations/:id, the operation's
 * event stream, the logs or any table; none may appear on a command line the engine ran.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import pino from "pino";
import { Pool } from "pg";
import { loadSettings } from "../src/config";
import { AutomationEngine } from "../src/engine/automationEngine";
import { startService, type RunningService } from "../src/service";
import { writePulumiStandIn, type PulumiStandIn } from "./fixtures/pulumiStandIn";
import { fastQueue, waitFor } from "./helpers";
import { testCluster } from "./hooks";

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const REPO_ROOT = path.resolve(__dirname, "..", "..");
const random = (n: number) => randomBytes(n).toString("base64url");

function sshPrivateKey(dir: string): string {
  const file = path.join(dir, "automation-key");
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "leak-test", "-f", file]);
  return execFileSync("cat", [file], { encoding: "utf8" });
}

/** A database owned by a role of its own, so the connection has a real password to leak. */
async function databaseWithPassword(password: string): Promise<string> {
  const admin = new Pool({ connectionString: testCluster().url, max: 1 });
  const name = `leak_${randomUUID().replace(/-/g, "")}`;
  try {
    await admin.query(`create role ${name} login password '${password}'`);
    await admin.query(`create database ${name} owner ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(testCluster().url);
  return `postgres://${name}:${encodeURIComponent(password)}@${url.host}/${name}`;
}

describe("secrets never leave the engine (real AutomationEngine, stand-in pulumi CLI, real Postgres)", function () {
  this.timeout(180_000);
  let dir: string;
  let standIn: PulumiStandIn;
  let svc: RunningService;
  let base: string;
  let databaseUrl: string;
  const savedPath = process.env.PATH;
  const logs: string[] = [];
  const account = randomUUID();
  const serviceToken = `svc-${random(30)}`;
  const auth = { authorization: `Bearer ${serviceToken}` };
  const tokenKey = randomBytes(32);
  const passphrase = `pass-${random(18)}`;
  const dbPassword = `db${random(18)}`;
  const tokens = {
    dtmaToken: random(48),
    dtmaTokenPrevious: random(48),
    backendApiToken: random(48),
    agentGatewayToken: random(48),
  };
  let key: string;
  /** Every secret, by name: each must be scrubbed whole and (the key) line by line. */
  let secrets: Record<string, string>;

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "leaks-"));
    key = sshPrivateKey(dir);
    secrets = {
      "SSH private key": key,
      "state passphrase": passphrase,
      "service token": serviceToken,
      "token encryption key (hex)": tokenKey.toString("hex"),
      "token encryption key (base64)": tokenKey.toString("base64"),
      "database password": dbPassword,
      ...tokens,
    };
    standIn = await writePulumiStandIn(path.join(dir, "cli"));
    await standIn.setOutputs(
      { accountId: account, target: "digitalocean", dropletId: "4242", ...tokens },
      Object.keys(tokens),
    );
    process.env.PATH = `${standIn.binDir}${path.delimiter}${savedPath}`;
    databaseUrl = await databaseWithPassword(dbPassword);
    const engine = new AutomationEngine({
      repoRoot: REPO_ROOT,
      workRoot: path.join(dir, "stacks"),
      stateBackendUrl: `file://${dir}/state`,
      passphrase,
      sshPrivateKey: key,
    });
    svc = await startService({
      databaseUrl,
      engine,
      engineSecrets: [key, passphrase],
      log: pino({ level: "debug" }, { write: (line: string) => void logs.push(line) }),
      serviceToken,
      tokenEncryptionKey: tokenKey,
      stackSettings: {
        ...loadSettings({}),
        target: "digitalocean",
        publicBaseUrl: "https://automation.example",
        platformStack: "org/agentopia-toolboxes/prod",
        controlPlaneCidrs: ["203.0.113.0/24"],
        dtmaImage: "ghcr.io/agentopia/dtma:1",
        backendImage: "ghcr.io/agentopia/backend:1",
      },
      heartbeatTimeoutSeconds: 180,
      workerConcurrency: 1,
      ...fastQueue(0),
    });
    await svc.app.listen({ port: 0, host: "127.0.0.1" });
    base = `http://127.0.0.1:${(svc.app.server.address() as AddressInfo).port}`;
  });

  after(async () => {
    process.env.PATH = savedPath;
    await svc?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const call = async (method: string, url: string, body?: unknown) => {
    const res = await fetch(base + url, {
      method,
      headers: { ...auth, ...(body ? { "content-type": "application/json" } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    return { status: res.status, body: (await res.json()) as Json };
  };

  /** Everything that left the service about one operation, as text. */
  const whatLeft = async (opId: string) => {
    const events = await fetch(`${base}/v1/operations/${opId}/events`, { headers: auth });
    const stream = await events.text();
    const decoded = stream
      .split("\n")
      .filter((l) => l.startsWith("data: "))
      .map((l) => (JSON.parse(l.slice(6)) as { message?: string | null }).message ?? "")
      .join("\n");
    const op = (await call("GET", `/v1/operations/${opId}`)).body;
    const toolbox = (await call("GET", `/v1/toolboxes/${account}`)).body;
    return {
      operation: JSON.stringify(op),
      operationError: String(op.operation.error_message),
      toolbox: JSON.stringify(toolbox),
      toolboxError: String(toolbox.toolbox.error_message),
      events: `${stream}\n${decoded}`,
      logs: logs.join("\n"),
    };
  };

  /** The needles that must never appear: each secret whole, and every line of a multi-line one. */
  const needles = (secret: string) => [
    secret.trim(),
    ...secret
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l.length >= 8),
  ];

  const assertNoSecret = (where: Record<string, string>, context: string) => {
    for (const [name, secret] of Object.entries(secrets)) {
      for (const needle of needles(secret)) {
        for (const [place, text] of Object.entries(where)) {
          assert.equal(
            text.includes(needle),
            false,
            `${context}: the ${name} (or a line of it) reached ${place}`,
          );
        }
      }
    }
  };

  const finished = (opId: string) =>
    waitFor(`operation ${opId} to finish`, async () => {
      const { body } = await call("GET", `/v1/operations/${opId}`);
      const status = body.operation.status as string;
      return status === "succeeded" || status === "failed" ? status : undefined;
    });

  it("provisions through the stand-in with the key never on a command line", async () => {
    const created = await call("POST", "/v1/toolboxes", { account_id: account });
    assert.equal(created.status, 202);
    const opId = created.body.operation.id as string;
    assert.equal(await finished(opId), "succeeded", (await whatLeft(opId)).operationError);
    const toolbox = (await call("GET", `/v1/toolboxes/${account}`)).body.toolbox;
    assert.equal(toolbox.status, "awaiting_heartbeat");
    const calls = await standIn.calls();
    assert.ok(calls.some((c) => c.argv[0] === "config" && c.argv[1] === "set-all"));
    // The stack's work directory exists before LocalWorkspace is created, and the CLI runs in it.
    const up = calls.find((c) => c.argv[0] === "up");
    assert.equal(up?.cwd, path.join(dir, "stacks", `acct-${account}`));
    assertNoSecret({ "a command line": calls.map((c) => c.argv.join(" ")).join("\n") }, "up");
  });

  /** Each failure path: which commands fail, and which request reaches them. */
  const paths: {
    name: string;
    fail: (text: string) => Record<string, string>;
    request: () => Promise<{ status: number; body: Json }>;
  }[] = [
    {
      name: "config set-all",
      fail: (text) => ({ "config set-all": text }),
      request: () => call("POST", `/v1/toolboxes/${account}/refresh`, {}),
    },
    {
      name: "refresh",
      fail: (text) => ({ refresh: text }),
      request: () => call("POST", `/v1/toolboxes/${account}/refresh`, {}),
    },
    {
      name: "destroy",
      fail: (text) => ({ destroy: text }),
      request: () => call("DELETE", `/v1/toolboxes/${account}`),
    },
    {
      name: "up",
      fail: (text) => ({ up: text }),
      request: () => call("POST", "/v1/toolboxes", { account_id: account }),
    },
    {
      name: "recover",
      // A stale lock makes the worker recover the stack, whose export then fails.
      fail: (text) => ({
        up: "the stack is currently locked by 1 lock(s). Either wait for the other process(es) to end or delete the lock file with `pulumi cancel`.",
        "stack export": text,
      }),
      request: () => call("POST", "/v1/toolboxes", { account_id: account }),
    },
  ];

  for (const failure of paths) {
    it(`a ${failure.name} failure carrying any secret leaves no trace of it`, async function () {
      // First a failure text of the CLI's own (its command line echoed), then one per secret.
      for (const [name, secret] of [["nothing", ""], ...Object.entries(secrets)]) {
        const marker = `stand-in-failure-${failure.name.replace(/ /g, "-")}-${randomUUID().slice(0, 8)}`;
        await standIn.succeed();
        for (const [command, text] of Object.entries(
          failure.fail(`${marker}: the backend answered ${secret} while running`),
        )) {
          await standIn.failOn(command, text);
        }
        const res = await failure.request();
        assert.equal(res.status, 202, `${failure.name}/${name}: ${JSON.stringify(res.body)}`);
        const opId = res.body.operation.id as string;
        assert.equal(await finished(opId), "failed");
        const left = await whatLeft(opId);
        // The failure text itself came through (so this path was exercised), minus the secret.
        assert.match(left.operationError, new RegExp(marker), `${failure.name}/${name}`);
        assert.match(left.events, new RegExp(marker));
        assert.match(left.logs, new RegExp(marker));
        assertNoSecret(left, `${failure.name} failure carrying the ${name}`);
      }
      await standIn.succeed();
    });
  }

  it("no table holds a secret in clear, and no command line ever carried one", async () => {
    const db = new Pool({ connectionString: databaseUrl, max: 1 });
    try {
      const { rows } = await db.query<{ schema: string; name: string }>(
        `select table_schema as schema, table_name as name from information_schema.tables
         where table_schema in ('public', 'pgboss') and table_type = 'BASE TABLE'`,
      );
      assert.ok(rows.length > 5);
      const dump: string[] = [];
      for (const t of rows) {
        const r = await db.query<{ row: string }>(
          `select row_to_json(t)::text as row from "${t.schema}"."${t.name}" t`,
        );
        dump.push(...r.rows.map((x) => x.row));
      }
      const text = dump.join("\n");
      assert.ok(text.includes("stand-in-failure-"), "the failures were stored");
      assertNoSecret({ database: text, "database (JSON-decoded)": text.replace(/\\n/g, "\n") }, "");
    } finally {
      await db.end();
    }
    const calls = await standIn.calls();
    assertNoSecret({ "a command line": calls.map((c) => c.argv.join(" ")).join("\n") }, "");
  });
});
