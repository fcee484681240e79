import assert from "node:assert/strict";
import { INSTALLATION_STATUS_FOR_STATE } from "@agentopia-toolboxes/contract/status";
import http from "node:http";
import type { AddressInfo } from "node:net";
import type { Heartbeat } from "../src/api";
import { HeartbeatSender, heartbeatBody } from "../src/heartbeat";
import { createLogger } from "../src/log";
import { Metrics } from "../src/metrics";
import { BUSYBOX, TOKEN, api, cleanup, requireImages, sleepTool, startDtma } from "./helpers";

interface Received {
  path: string;
  authorization: string | undefined;
  body: Heartbeat;
}

/** A local control plane: records heartbeats, answers `answer` (204 when up). */
async function receiver() {
  const received: Received[] = [];
  const state = { answer: 204 };
  const server = http.createServer((req, res) => {
    let data = "";
    req.on("data", (c: Buffer) => (data += c.toString()));
    req.on("end", () => {
      received.push({
        path: req.url ?? "",
        authorization: req.headers.authorization,
        body: JSON.parse(data) as Heartbeat,
      });
      res.writeHead(state.answer).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/functions/v1`;
  return {
    received,
    state,
    base,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

async function until(pred: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (pred()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`timed out waiting for ${what}`);
}

describe("heartbeat", function () {
  this.timeout(60_000);
  after(cleanup);

  it("posts {dtma_version, system_status, tool_statuses with ids} to {base}/heartbeat with its bearer", async function () {
    await requireImages(this, BUSYBOX);
    const cp = await receiver();
    const dtma = await startDtma({ apiBaseUrl: cp.base, heartbeatIntervalMs: 200 });
    try {
      const call = api(dtma.url);
      assert.equal(
        (await call("PUT", "/tools/hb-tool", sleepTool({ account_tool_instance_id: "ati-hb" })))
          .status,
        201,
      );
      assert.equal((await call("PUT", "/tools/hb-anon", sleepTool())).status, 201);
      await until(
        () => cp.received.some((r) => r.body.tool_statuses.some((t) => t.name === "hb-tool")),
        "a heartbeat listing the tool",
      );
      const beat = cp.received.at(-1)!;
      assert.equal(beat.path, "/functions/v1/heartbeat");
      assert.equal(beat.authorization, `Bearer ${TOKEN}`);
      assert.equal(beat.body.dtma_version, "0.0.0-test");
      assert.equal(beat.body.system_status.status, "ok");
      assert.equal(beat.body.system_status.docker.reachable, true);
      assert.ok(beat.body.system_status.system_metrics.memory.total_bytes > 0);
      // Only tools with an account tool instance id: Agentopia updates rows by id.
      assert.deepEqual(beat.body.tool_statuses, [
        {
          account_tool_instance_id: "ati-hb",
          name: "hb-tool",
          status: "running",
          state: "running",
          health: "none",
          restarts: 0,
        },
      ]);
      // The heartbeat never blocks the API.
      assert.equal((await call("GET", "/health")).status, 200);
    } finally {
      await dtma.stop();
      await cp.close();
    }
  });

  it("backs off while the control plane is down and recovers when it is back", async () => {
    const cp = await receiver();
    cp.state.answer = 503;
    const status = () => ({
      status: "ok" as const,
      service: "DTMA" as const,
      version: "1.2.3",
      uptime_seconds: 1,
      sampled_at: new Date().toISOString(),
      system_metrics: {
        cpu: { count: 1, usage_percent: 0, load_average: [0, 0, 0] as [number, number, number] },
        memory: { total_bytes: 1, used_bytes: 0, usage_percent: 0 },
        disk: { total_bytes: 1, used_bytes: 0, usage_percent: 0 },
        containers: { total: 0, running: 0 },
      },
      docker: { reachable: true, version: "x" },
      tool_instances: [],
    });
    const metrics = new Metrics();
    const sender = new HeartbeatSender({
      url: `${cp.base}/heartbeat`,
      token: TOKEN,
      intervalMs: 5_000,
      minBackoffMs: 20,
      maxBackoffMs: 80,
      status,
      log: createLogger("silent"),
      metrics,
      random: () => 0.5, // no jitter: delays are exact
    });
    const delays: number[] = [];
    const original = sender.delayAfter.bind(sender);
    sender.delayAfter = (failures: number) => {
      const d = original(failures);
      delays.push(d);
      return d;
    };
    sender.start();
    try {
      await until(() => sender.failures >= 4, "four failed heartbeats");
      assert.deepEqual(delays.slice(0, 4), [20, 40, 80, 80]);
      cp.state.answer = 204;
      await until(() => sender.failures === 0, "recovery");
      await until(() => delays.at(-1) === 5_000, "the normal interval after recovery");
      assert.ok(metrics.heartbeats.get({ outcome: "failed" }) >= 4);
      assert.equal(metrics.heartbeats.get({ outcome: "ok" }), 1);
      assert.ok(cp.received.every((r) => r.body.dtma_version === "1.2.3"));
    } finally {
      await sender.stop();
      await cp.close();
    }
  });

  it("jitter stays within ±10 % of the interval", () => {
    const make = (random: () => number) =>
      new HeartbeatSender({
        url: "http://127.0.0.1:9/heartbeat",
        token: TOKEN,
        intervalMs: 60_000,
        status: () => assert.fail("not called"),
        log: createLogger("silent"),
        metrics: new Metrics(),
        random,
      });
    assert.equal(make(() => 0).delayAfter(0), 54_000);
    assert.equal(make(() => 0.999999).delayAfter(0), 66_000);
    assert.equal(make(() => 0.5).delayAfter(20), 300_000);
  });

  it("maps container states to Agentopia's installation statuses", () => {
    const body = heartbeatBody({
      status: "ok",
      service: "DTMA",
      version: "1",
      uptime_seconds: 0,
      sampled_at: "",
      system_metrics: {} as never,
      docker: { reachable: true, version: "x" },
      tool_instances: (["running", "exited", "restarting", "dead", "created"] as const).map(
        (state, i) => ({
          name: `t${i}`,
          account_tool_instance_id: `id-${i}`,
          state,
          health: "none" as const,
          image: "i",
          uptime_seconds: 0,
          restarts: 0,
        }),
      ),
    });
    // The contract's map, the one the automation service records with: a dead container is a
    // runtime error there too.
    assert.deepEqual(
      body.tool_statuses.map((t) => t.status),
      ["running", "stopped", "error_runtime", "error_runtime", "starting"],
    );
    assert.deepEqual(
      body.tool_statuses.map((t) => t.status),
      body.tool_statuses.map((t) => INSTALLATION_STATUS_FOR_STATE[t.state]),
    );
  });
});
