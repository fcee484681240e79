/**
 * The heartbeat contract end to end, across the three parts that must agree on it: the container
 * spec Pulumi declares, the shipped DTMA image, and the automation service on a real PostgreSQL.
 * Agentopia's earlier DTMA posted to the wrong path and its toolboxes never left
 * `awaiting_heartbeat`; this is the test that would have caught it.
 *
 * The one fake is the automation service's documented test engine (no Pulumi engine here): it
 * stands in for `pulumi up` and hands out the toolbox's DTMA token, which the real DTMA
 * container then uses to heartbeat to the real service.
 */
import assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import { chmod, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { loadSettings } from "../automation/src/config";
import { startEmbeddedPostgres, type EmbeddedDatabase } from "../automation/src/db/embedded";
import { TestEngine } from "../automation/src/engine/testEngine";
import { startService, type RunningService } from "../automation/src/service";
import {
  createNetwork,
  docker,
  dockerBridgeAddress,
  localSpecs,
  runSpec,
} from "./harness/dockerCli";

const SERVICE_TOKEN = randomBytes(32).toString("hex");
const auth = { authorization: `Bearer ${SERVICE_TOKEN}` };

async function eventually<T>(what: string, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe("heartbeat contract: spec + DTMA image + automation service", function () {
  this.timeout(180_000);
  let dir: string;
  let db: EmbeddedDatabase;
  let service: RunningService;
  let base: string;
  const accountId = randomUUID();
  const cleanup: string[][] = [];

  before(async function () {
    dir = await mkdtemp(join(tmpdir(), "contract-pg-"));
    await chmod(dir, 0o755); // as root, initdb runs as a `postgres` user that must reach it
    db = await startEmbeddedPostgres({
      dir: join(dir, "data"),
      persistent: false,
      password: "test",
    });
    // The DTMA container reaches the host as host.docker.internal, i.e. the docker0 address:
    // the service listens there, on this machine only.
    const gateway = dockerBridgeAddress();
    service = await startService({
      databaseUrl: db.url,
      engine: new TestEngine({ latencyMs: 20 }),
      log: pino({ level: "silent" }),
      serviceToken: SERVICE_TOKEN,
      tokenEncryptionKey: randomBytes(32),
      stackSettings: {
        ...loadSettings({}),
        publicBaseUrl: "http://host.docker.internal",
        controlPlaneCidrs: ["10.0.0.0/8"],
      },
      heartbeatTimeoutSeconds: 180,
      workerConcurrency: 1,
      queue: { retryLimit: 0, retryDelaySeconds: 1, schedule: false },
      pollingIntervalSeconds: 0.5,
      ssePollMs: 50,
    });
    const address = await service.app.listen({ host: gateway, port: 0 });
    base = address.replace(gateway, "host.docker.internal");
  });

  after(async function () {
    for (const args of cleanup.reverse()) {
      try {
        docker(args);
      } catch {
        // already gone
      }
    }
    await service?.stop();
    await db?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("moves a toolbox from awaiting_heartbeat to active when its own DTMA heartbeats", async function () {
    const request = await service.app.inject({
      method: "POST",
      url: "/v1/toolboxes",
      headers: auth,
      payload: { account_id: accountId },
    });
    assert.equal(request.statusCode, 202, request.body);
    const view = async () =>
      (await service.app.inject({ url: `/v1/toolboxes/${accountId}`, headers: auth })).json<{
        toolbox: Record<string, unknown>;
      }>().toolbox;
    await eventually("awaiting_heartbeat", async () =>
      (await view()).status === "awaiting_heartbeat" ? true : undefined,
    );
    const tokens = (
      await service.app.inject({ url: `/v1/toolboxes/${accountId}/tokens`, headers: auth })
    ).json<{ dtma_token: string }>();

    // A wrong token is refused, and the toolbox stays where it was.
    const forged = await service.app.inject({
      method: "POST",
      url: "/v1/heartbeat",
      headers: { authorization: `Bearer ${randomBytes(32).toString("hex")}` },
      payload: { dtma_version: "x", system_status: {}, tool_statuses: [] },
    });
    assert.equal(forged.statusCode, 401);
    assert.equal((await view()).status, "awaiting_heartbeat");

    const specs = localSpecs(`contract-${accountId.slice(0, 8)}`, tokens.dtma_token, `${base}/v1`);
    for (const net of specs.networks) {
      createNetwork(net);
      cleanup.push(["network", "rm", net.name]);
    }
    cleanup.push(["rm", "-f", specs.dtma.name]);
    runSpec(specs.dtma);

    const active = await eventually("active", async () => {
      const t = await view();
      return t.status === "active" ? t : undefined;
    });
    assert.ok(active.last_heartbeat_at, "last_heartbeat_at is set");
    assert.equal(typeof active.dtma_version, "string");
    assert.equal(active.health, "healthy");
    assert.ok(active.health_details, "the DTMA's health details are recorded");
  });
});
