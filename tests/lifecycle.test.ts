/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-argument, @typescript-eslint/no-explicit-any -- tests read JSON answers loosely */
/**
 * The main job, end to end on one machine (issue 9): the automation service on a real Postgres,
 * driven through its own API — POST /v1/toolboxes → queue → worker → engine seam → the real
 * account program, evaluated under Pulumi's mocks with the exact config the service built → the
 * policy pack over its resources → the networks and containers the program declares, started on
 * the real Docker daemon from its own resource inputs (tests/harness/mockedProgramEngine.ts, the
 * one stand-in: for the Pulumi engine) → the DTMA heartbeats to the service → `active` → the
 * backend answers on the stored URL with the stored tokens → an MCP server deployed through it
 * and a tool called through the gateway → DELETE → containers and networks gone →
 * `deprovisioned`, the record kept. Two accounts at once on one daemon do not interfere.
 */
import assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import { chmod, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { dropletNameFor, dtmaScopeFor, LABEL_ACCOUNT } from "@agentopia-toolboxes/contract";
import { loadSettings } from "../automation/src/config";
import { startEmbeddedPostgres, type EmbeddedDatabase } from "../automation/src/db/embedded";
import { startService, type RunningService } from "../automation/src/service";
import { dockerBridgeAddress, imagePresent } from "./harness/dockerCli";
import { docker } from "./harness/dockerResources";
import { MockedProgramOnDockerEngine, STAND_IN } from "./harness/mockedProgramEngine";

const SERVICE_TOKEN = `lifecycle-${randomBytes(24).toString("hex")}`;
const auth = { authorization: `Bearer ${SERVICE_TOKEN}` };
const IMAGES = { dtma: "agentopia/dtma:dev", backend: "agentopia/backend:dev" };
const MCP_TOOLS = "agentopia-test/mcp-tools:latest";
/** The gateway steps need the backend, whose image comes from backend/Dockerfile. */

type Json = Record<string, any>;

async function eventually<T>(what: string, check: () => Promise<T | undefined>, ms = 120_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Everything Docker holds for one account: resident and tool containers, its networks. */
function dockerObjectsOf(accountId: string) {
  const list = (args: string[]) => docker(args).split("\n").filter(Boolean);
  const containers = [
    ...list(["ps", "-aq", "--filter", `label=${LABEL_ACCOUNT}=${accountId}`]),
    ...list(["ps", "-aq", "--filter", `label=agentopia.dtma-scope=${dtmaScopeFor(accountId)}`]),
  ];
  const networks = list(["network", "ls", "-q", "--filter", `name=${dropletNameFor(accountId)}-`]);
  return { containers: [...new Set(containers)], networks };
}

describe("the whole lifecycle: the service's API to running containers and back (stand-in engine, real Postgres, real Docker)", function () {
  this.timeout(600_000);
  let dir: string;
  let db: EmbeddedDatabase;
  let service: RunningService;
  let base: string;
  const engine = new MockedProgramOnDockerEngine();
  const accounts: string[] = [];
  const settings = {
    ...loadSettings({ DTMA_IMAGE: IMAGES.dtma, BACKEND_IMAGE: IMAGES.backend }),
  };

  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(base + path, {
      method,
      headers: { ...auth, ...(body ? { "content-type": "application/json" } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    return { status: res.status, body: (await res.json()) as Json };
  };
  const toolbox = async (account: string) =>
    (await call("GET", `/v1/toolboxes/${account}`)).body.toolbox as Json;
  const finished = (opId: string) =>
    eventually(`operation ${opId}`, async () => {
      const op = (await call("GET", `/v1/operations/${opId}`)).body.operation as Json;
      return op.status === "succeeded" || op.status === "failed" ? op : undefined;
    });
  const provision = async (account: string) => {
    accounts.push(account);
    const res = await call("POST", "/v1/toolboxes", { account_id: account });
    assert.equal(res.status, 202, JSON.stringify(res.body));
    const op = await finished(res.body.operation.id as string);
    assert.equal(op.status, "succeeded", String(op.error_message));
    return eventually(`${account} active`, async () => {
      const t = await toolbox(account);
      return t.status === "active" ? t : undefined;
    });
  };
  const backendApi = async (
    t: Json,
    tokens: Json,
    method: string,
    path: string,
    body?: unknown,
  ) => {
    const res = await fetch(`${t.backend_url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${tokens.backend_api_token}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(120_000),
    });
    const text = await res.text();
    return { status: res.status, body: text ? (JSON.parse(text) as Json) : undefined };
  };
  /** Deploys the test MCP server through the backend and calls a tool through the gateway. */
  const useTheGateway = async (t: Json, tokens: Json) => {
    const deployed = await backendApi(t, tokens, "PUT", "/v1/servers/tools", {
      image: MCP_TOOLS,
      transport: { type: "stdio" },
    });
    assert.ok(deployed.status >= 200 && deployed.status < 300, JSON.stringify(deployed.body));
    // The tool container carries the account label, like the resident ones.
    const labelled = docker([
      "ps",
      "--filter",
      `label=${LABEL_ACCOUNT}=${t.account_id}`,
      "--filter",
      "label=agentopia.tool-name=tools",
      "--format",
      "{{.Names}}",
    ]);
    assert.notEqual(labelled, "", "the tool container is labelled with its account");
    const client = new Client({ name: "lifecycle", version: "1.0.0" });
    await client.connect(
      new StreamableHTTPClientTransport(new URL(`${t.backend_url}/mcp/tools`), {
        requestInit: { headers: { authorization: `Bearer ${tokens.agent_gateway_token}` } },
      }),
    );
    try {
      const result = (await client.callTool({ name: "add", arguments: { a: 2, b: 40 } })) as Json;
      assert.equal((result.content as { text: string }[]).map((c) => c.text).join(""), "42");
    } finally {
      await client.close();
    }
    const removed = await backendApi(t, tokens, "DELETE", "/v1/servers/tools");
    assert.ok(removed.status >= 200 && removed.status < 300, JSON.stringify(removed.body));
  };
  const deprovision = async (account: string) => {
    const res = await call("DELETE", `/v1/toolboxes/${account}`);
    assert.equal(res.status, 202, JSON.stringify(res.body));
    const op = await finished(res.body.operation.id as string);
    assert.equal(op.status, "succeeded", String(op.error_message));
    const t = await toolbox(account);
    assert.equal(t.status, "deprovisioned", "the record is kept");
    assert.deepEqual(
      dockerObjectsOf(account),
      { containers: [], networks: [] },
      "every container and network is gone",
    );
  };

  before(async function () {
    const needed = [IMAGES.dtma, IMAGES.backend, MCP_TOOLS];
    for (const image of needed) {
      assert.ok(imagePresent(image), `${image} is missing: run bash scripts/build-test-images.sh`);
    }
    dir = await mkdtemp(join(tmpdir(), "lifecycle-"));
    await chmod(dir, 0o755);
    // A real password: the service scrubs it out of every error text, as it would a short one.
    db = await startEmbeddedPostgres({
      dir: join(dir, "pg"),
      persistent: false,
      password: randomBytes(18).toString("base64url"),
    });
    // The DTMA reaches the service as host.docker.internal, the daemon's bridge address.
    const gateway = dockerBridgeAddress();
    service = await startService({
      databaseUrl: db.url,
      engine,
      log: pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" }),
      serviceToken: SERVICE_TOKEN,
      tokenEncryptionKey: randomBytes(32),
      stackSettings: settings,
      heartbeatTimeoutSeconds: 180,
      workerConcurrency: 2,
      queue: { retryLimit: 0, retryDelaySeconds: 1, schedule: false },
      pollingIntervalSeconds: 0.5,
      ssePollMs: 50,
    });
    const address = await service.app.listen({ host: gateway, port: 0 });
    base = address;
    // What PUBLIC_BASE_URL would say, once the port is known (read at each operation).
    settings.publicBaseUrl = address.replace(gateway, "host.docker.internal");
  });

  after(async () => {
    for (const account of accounts) {
      const { containers, networks } = dockerObjectsOf(account);
      for (const args of [
        ...(containers.length > 0 ? [["rm", "-f", ...containers]] : []),
        ...networks.map((n) => ["network", "rm", n]),
      ]) {
        try {
          docker(args);
        } catch {
          // gone already
        }
      }
    }
    await service?.stop();
    await db?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("one account: request → containers from the program → heartbeat → active → delete → deprovisioned", async () => {
    const account = randomUUID();
    const active = await provision(account);
    assert.equal(active.droplet_name, null, "no droplet on the local target");
    assert.match(active.backend_url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(active.health, "healthy");

    // The engine saw the exact stack config the service built, and ran the program from it.
    const up = engine.calls.find((c) => c.stackName === `acct-${account}` && c.op === "up")!;
    assert.equal(up.config.agentopiaApiBaseUrl, `${settings.publicBaseUrl}/v1`);
    assert.equal(up.config.dtmaImage, IMAGES.dtma);
    const dtma = JSON.parse(docker(["inspect", `${dropletNameFor(account)}-dtma`]))[0] as Json;
    assert.ok((dtma.Config.Env as string[]).includes(`DTMA_SCOPE=${dtmaScopeFor(account)}`));
    assert.equal(dtma.Config.Labels[LABEL_ACCOUNT], account);
    assert.equal(dtma.HostConfig.ReadonlyRootfs, true, "as the program declares it");

    const tokens = (await call("GET", `/v1/toolboxes/${account}/tokens`)).body;
    const health = await fetch(`${active.backend_url}/health`);
    assert.equal(health.status, 200, "the backend answers on the stored URL");
    await health.body?.cancel();
    const status = await backendApi(active, tokens, "GET", "/status");
    assert.equal(status.status, 200, "…with the stored token");
    assert.equal(status.body!.dtma.service, "DTMA", "and reaches its DTMA");
    await useTheGateway(active, tokens);

    await deprovision(account);
  });

  it("two accounts at once on one daemon: their own ports, scopes, tools and tokens", async () => {
    const [a, b] = [randomUUID(), randomUUID()];
    const [ta, tb] = await Promise.all([provision(a), provision(b)]);
    assert.notEqual(ta.backend_url, tb.backend_url, "each backend on a port of its own");
    const tokens = await Promise.all(
      [a, b].map(async (x) => (await call("GET", `/v1/toolboxes/${x}/tokens`)).body),
    );
    assert.notEqual(tokens[0].dtma_token, tokens[1].dtma_token);
    // Each backend takes only its own toolbox's token.
    assert.equal((await backendApi(ta, tokens[1], "GET", "/status")).status, 401);
    // The same server name on both: each DTMA runs its own, neither replaces the other's.
    await Promise.all([useTheGateway(ta, tokens[0]), useTheGateway(tb, tokens[1])]);
    await deprovision(a);
    assert.equal((await toolbox(b)).status, "active", "the other toolbox is untouched");
    const still = await fetch(`${tb.backend_url}/health`);
    assert.equal(still.status, 200);
    await still.body?.cancel();
    await deprovision(b);
  });

  it("says in its events what it stands in for", async () => {
    const account = randomUUID();
    accounts.push(account);
    const res = await call("POST", "/v1/toolboxes", { account_id: account });
    const op = await finished(res.body.operation.id as string);
    const stream = await fetch(`${base}/v1/operations/${op.id}/events`, { headers: auth });
    assert.ok((await stream.text()).includes(STAND_IN));
    await deprovision(account);
  });
});
