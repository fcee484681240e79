/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-unsafe-argument, @typescript-eslint/no-unsafe-return, @typescript-eslint/no-unsafe-call, @typescript-eslint/no-explicit-any -- JSON answers are checked by assertions */
/**
 * Fleet upgrades (issue 11) on a real Postgres, real pg-boss, the real API and the test engine
 * behind the seam; simulated toolboxes heartbeat the images they were given and answer /status.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { LOCAL_IMAGES } from "@agentopia-toolboxes/contract";
import { TestEngine, type EngineCall } from "../src/engine/testEngine";
import type { RunningService } from "../src/service";
import { assertSerializedPerStack } from "./fixtures/engineCalls";
import { startFleetService } from "./fixtures/fleetService";
import { SimulatedFleet } from "./fixtures/simulatedFleet";
import { auth, freshDatabase, newAccount, requestToolbox, SERVICE_TOKEN, waitFor } from "./helpers";

const V2 = { dtma: "agentopia/dtma:v2", backend: "agentopia/backend:v2" };
type Service = RunningService & { databaseUrl: string };

async function provisionAll(svc: Service, n: number): Promise<string[]> {
  const accounts = Array.from({ length: n }, newAccount);
  for (const account of accounts) await requestToolbox(svc, account);
  await waitFor(`${n} toolboxes active`, async () => {
    const { rows } = await svc.pool.query(
      "select count(*)::int as n from account_tool_environments where status = 'active' and account_id = any($1)",
      [accounts],
    );
    return rows[0].n === n ? true : undefined;
  });
  return accounts;
}

const startUpgrade = async (svc: Service, body: Record<string, unknown>) => {
  const res = await svc.app.inject({
    method: "POST",
    url: "/v1/upgrades",
    headers: auth,
    payload: { dtma_image: V2.dtma, backend_image: V2.backend, ...body },
  });
  assert.equal(res.statusCode, 202, res.body);
  return res.json().upgrade.id as string;
};

const getUpgrade = async (svc: Service, id: string) =>
  (await svc.app.inject({ url: `/v1/upgrades/${id}`, headers: auth })).json().upgrade;

const until = (svc: Service, id: string, what: string, ok: (u: any) => boolean, ms = 60_000) =>
  waitFor(
    `upgrade ${what}`,
    async () => {
      const u = await getUpgrade(svc, id);
      return ok(u) ? u : undefined;
    },
    ms,
  );

async function targets(svc: Service, id: string) {
  const { rows } = await svc.pool.query(
    "select account_id::text, wave, state, started_at, finished_at, failure_reason, reason from fleet_upgrade_targets where upgrade_id = $1",
    [id],
  );
  return rows as {
    account_id: string;
    wave: number;
    state: string;
    started_at: Date | null;
    finished_at: Date | null;
    failure_reason: string | null;
    reason: string | null;
  }[];
}

/** A live reader of an event stream over real HTTP (inject would wait for its end). */
function follow(svc: Service, url: string, lastEventId?: string) {
  const { port } = svc.app.server.address() as AddressInfo;
  const events: { id?: string; event: string; data: string }[] = [];
  let buffer = "";
  let req!: http.ClientRequest;
  const ended = new Promise<void>((resolve, reject) => {
    req = http.get(
      `http://127.0.0.1:${port}${url}`,
      { headers: { ...auth, ...(lastEventId ? { "last-event-id": lastEventId } : {}) } },
      (res) => {
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          buffer += chunk;
          for (let i = buffer.indexOf("\n\n"); i >= 0; i = buffer.indexOf("\n\n")) {
            const fields = Object.fromEntries(
              buffer
                .slice(0, i)
                .split("\n")
                .filter((l) => !l.startsWith(":"))
                .map((l) => [l.slice(0, l.indexOf(": ")), l.slice(l.indexOf(": ") + 2)]),
            ) as Record<string, string>;
            buffer = buffer.slice(i + 2);
            if (fields.event)
              events.push({ id: fields.id, event: fields.event, data: fields.data });
          }
        });
        res.on("end", resolve);
      },
    );
    req.on("error", reject);
  });
  return { events, ended, close: () => req.destroy() };
}

async function eventTypes(svc: Service, id: string): Promise<string[]> {
  const { rows } = await svc.pool.query(
    "select type from fleet_operation_events where operation_id = $1 order by id",
    [id],
  );
  return rows.map((r) => r.type as string);
}

const upsWith = (calls: EngineCall[], image: string) =>
  calls.filter((c) => c.op === "up" && c.config.dtmaImage === image);

describe("fleet upgrades: health-gated waves with rollback (real Postgres, test engine, simulated toolboxes)", function () {
  this.timeout(180_000);

  describe("one service per test", () => {
    let svc: Service;
    let sim: SimulatedFleet;
    let engine: TestEngine;
    const broken = new Set<string>();

    beforeEach(async () => {
      broken.clear();
      sim = new SimulatedFleet({
        serviceToken: SERVICE_TOKEN,
        heartbeatDelayMs: 100,
        breaks: (account, image) => image === V2.dtma && broken.has(account),
      });
      await sim.listen();
      // A refresh (an account's own operation) takes long enough for a step to meet it.
      engine = new TestEngine({
        latencyMs: 30,
        latencyFor: (op) => (op === "refresh" ? 1500 : undefined),
        backendUrlFor: sim.backendUrlFor,
      });
      svc = await startFleetService({ engine, workerConcurrency: 8 });
      sim.attach(svc.app, svc.pool);
    });
    afterEach(async () => {
      await sim.close();
      await svc.stop();
    });

    it("50 toolboxes in 4 waves: heartbeats confirm the new image, wave after wave", async () => {
      const accounts = await provisionAll(svc, 50);
      const id = await startUpgrade(svc, {
        canary_count: 5,
        waves: [25, 60, 100],
        max_failure_ratio: 0.1,
        health_deadline_seconds: 60,
      });
      const done = await until(svc, id, "to succeed", (u) => u.status === "succeeded");
      assert.equal(done.counts.total, 50);
      assert.equal(done.counts.by_state.upgraded, 50);
      assert.deepEqual(
        done.counts.waves.map((w: any) => [w.wave, w.total]),
        [
          [0, 5],
          [1, 12],
          [2, 15],
          [3, 18],
        ],
      );
      // Each wave started only after the one before had ended.
      const all = await targets(svc, id);
      for (let w = 1; w <= 3; w++) {
        const prevEnd = Math.max(
          ...all.filter((t) => t.wave === w - 1).map((t) => t.finished_at!.getTime()),
        );
        const start = Math.min(
          ...all.filter((t) => t.wave === w).map((t) => t.started_at!.getTime()),
        );
        assert.ok(start >= prevEnd, `wave ${w} started before wave ${w - 1} ended`);
      }
      // Every toolbox got exactly one upgrade, with the new images, as an operation of its own.
      const ups = upsWith(engine.calls, V2.dtma);
      assert.equal(ups.length, 50);
      assert.equal(new Set(ups.map((c) => c.stackName)).size, 50);
      assert.ok(ups.every((c) => c.config.backendImage === V2.backend));
      const { rows: ops } = await svc.pool.query(
        "select count(*)::int as n from toolbox_operations where kind = 'upgrade' and status = 'succeeded' and account_id = any($1)",
        [accounts],
      );
      assert.equal(ops[0].n, 50);
      const types = await eventTypes(svc, id);
      assert.equal(types.filter((t) => t === "wave_started").length, 4);
      assert.equal(types.filter((t) => t === "wave_finished").length, 4);
      assert.equal(types.filter((t) => t === "toolbox_upgraded").length, 50);
      assert.equal(types.at(-1), "finished");
      // Which version each toolbox runs, and since when; the history keeps the one before.
      const v = (
        await svc.app.inject({ url: `/v1/fleet/versions/${accounts[7]}`, headers: auth })
      ).json();
      assert.equal(v.toolbox.deployed.dtma_image, V2.dtma);
      assert.equal(v.toolbox.reported.dtma_image, V2.dtma);
      assert.equal(v.toolbox.wanted.source, "record");
      assert.ok(v.toolbox.deployed.since);
      assert.deepEqual(
        v.history.map((h: any) => h.dtma_image),
        [V2.dtma, LOCAL_IMAGES.dtma],
      );
      // The events stream in the operations' style and end with the final status.
      const stream = await svc.app.inject({ url: `/v1/upgrades/${id}/events`, headers: auth });
      assert.match(stream.headers["content-type"] as string, /text\/event-stream/);
      assert.match(stream.body, /event: wave_started/);
      assert.match(stream.body, /event: end\ndata: \{"status":"succeeded"\}/);
      // The last events are written with the final status (one transaction, one now()): a
      // stream that ends on the status has sent them.
      const { rows: last } = await svc.pool.query(
        "select f.finished_at = (select max(e.at) from fleet_operation_events e where e.operation_id = f.id) as together from fleet_operations f where f.id = $1",
        [id],
      );
      assert.equal(last[0].together, true);
      const metrics = await svc.app.inject({ url: "/metrics", headers: auth });
      assert.match(metrics.body, /automation_upgrade_waves_total\{outcome="completed"\} 4/);
      assert.match(metrics.body, /automation_upgrade_toolboxes_total\{outcome="upgraded"\} 50/);
    });

    it("a wave whose failures pass the ratio stops the upgrade, rolls back the failed ones and touches no later wave", async () => {
      const accounts = await provisionAll(svc, 20);
      const before = engine.calls.length;
      const id = await startUpgrade(svc, {
        canary_count: 2,
        waves: [50, 100],
        max_failure_ratio: 0.1,
        health_deadline_seconds: 5,
      });
      // Three toolboxes of wave 1 break on the new image (chosen while the canaries run).
      const plan = await targets(svc, id);
      const wave1 = plan.filter((t) => t.wave === 1).map((t) => t.account_id);
      const wave2 = plan.filter((t) => t.wave === 2).map((t) => t.account_id);
      for (const a of wave1.slice(0, 3)) broken.add(a);
      assert.equal(plan.filter((t) => accounts.includes(t.account_id)).length, 20);
      const stopped = await until(
        svc,
        id,
        "to stop and roll back",
        (u) => u.status === "stopped" && u.counts.by_state.rolled_back === 3,
      );
      // It stops as soon as the ratio is certainly passed (one failure of nine is 11 % > 10 %);
      // the other broken ones fail their deadline while it is stopped and roll back too.
      assert.match(
        stopped.stop_reason,
        /^wave 1: [123] of 9 toolbox\(es\) failed \(\d+\.\d% > 10\.0%\)$/,
      );
      const after = await targets(svc, id);
      const state = (a: string) => after.find((t) => t.account_id === a)!.state;
      for (const a of wave1.slice(0, 3)) {
        assert.equal(state(a), "rolled_back");
        assert.match(
          after.find((t) => t.account_id === a)!.failure_reason!,
          /no heartbeat since the step started/,
        );
      }
      assert.ok(wave1.slice(3).every((a) => state(a) === "upgraded"));
      assert.ok(
        wave2.every((a) => state(a) === "pending"),
        "no toolbox of a later wave moved",
      );
      const calls = engine.calls.slice(before);
      assert.deepEqual(
        calls.filter((c) => wave2.some((a) => c.stackName === `acct-${a}`)),
        [],
        "the engine never touched a later wave",
      );
      // The rolled-back ones run their previous images again, which their records now name.
      for (const a of wave1.slice(0, 3)) {
        const { rows } = await svc.pool.query(
          "select dtma_image, deployed_dtma_image from account_tool_environments where account_id = $1",
          [a],
        );
        assert.deepEqual(rows[0], {
          dtma_image: LOCAL_IMAGES.dtma,
          deployed_dtma_image: LOCAL_IMAGES.dtma,
        });
        assert.deepEqual(
          calls.filter((c) => c.stackName === `acct-${a}`).map((c) => [c.op, c.config.dtmaImage]),
          [
            ["up", V2.dtma],
            ["up", LOCAL_IMAGES.dtma],
          ],
        );
      }
      // Nothing moves while it is stopped; a second upgrade waits its turn.
      const second = await svc.app.inject({
        method: "POST",
        url: "/v1/upgrades",
        headers: auth,
        payload: { dtma_image: V2.dtma, backend_image: V2.backend },
      });
      assert.equal(second.statusCode, 409);
      assert.equal(second.json().error, "upgrade_in_progress");
      // A stopped upgrade's stream stays open; it follows the abort live (read every poll:
      // nothing notifies a fleet operation's events) and ends with the final status. One that
      // resumes after the `stopped` event gets only what came after it.
      await svc.app.listen({ port: 0, host: "127.0.0.1" });
      const live = follow(svc, `/v1/upgrades/${id}/events`);
      const recorded = (await eventTypes(svc, id)).length;
      await waitFor("the stream to replay what is recorded", () =>
        Promise.resolve(live.events.length >= recorded ? true : undefined),
      );
      const stoppedEvent = live.events.find((e) => e.event === "stopped")!;
      const resumed = follow(svc, `/v1/upgrades/${id}/events`, stoppedEvent.id);
      await waitFor("the resumed stream to replay what came after the stop", () =>
        Promise.resolve(
          resumed.events.length >= recorded - live.events.indexOf(stoppedEvent) - 1
            ? true
            : undefined,
        ),
      );
      const abort = await svc.app.inject({
        method: "POST",
        url: `/v1/upgrades/${id}/abort`,
        headers: auth,
      });
      assert.equal(abort.statusCode, 200, abort.body);
      const aborted = await until(svc, id, "to end aborted", (u) => u.finished);
      assert.equal(aborted.status, "aborted");
      assert.equal(aborted.counts.by_state.skipped, wave2.length);
      await Promise.all([live.ended, resumed.ended]);
      for (const stream of [live, resumed]) {
        assert.deepEqual(stream.events.at(-1), {
          id: undefined,
          event: "end",
          data: '{"status":"aborted"}',
        });
        assert.ok(stream.events.some((e) => e.event === "aborted"));
      }
      assert.deepEqual(
        resumed.events.slice(0, -1).map((e) => e.id),
        live.events.slice(live.events.indexOf(stoppedEvent) + 1, -1).map((e) => e.id),
      );
      assert.deepEqual(
        engine.calls.slice(before).filter((c) => wave2.some((a) => c.stackName === `acct-${a}`)),
        [],
      );
      const types = await eventTypes(svc, id);
      for (const t of [
        "stopped",
        "toolbox_failed",
        "toolbox_rollback_queued",
        "toolbox_rolled_back",
        "aborted",
        "finished",
      ]) {
        assert.ok(types.includes(t), t);
      }
    });

    it("an account's own operations never overlap a step: waited for, or skipped with the reason; a toolbox that is not active is skipped", async () => {
      const accounts = await provisionAll(svc, 6);
      const [busyWait, busySkipLater, notActive] = accounts;
      await svc.pool.query(
        "update account_tool_environments set status = 'unresponsive' where account_id = $1",
        [notActive],
      );
      const refresh = await svc.app.inject({
        method: "POST",
        url: `/v1/toolboxes/${busyWait}/refresh`,
        headers: auth,
      });
      assert.equal(refresh.statusCode, 202);
      const id = await startUpgrade(svc, {
        waves: [100],
        on_busy: "wait",
        health_deadline_seconds: 30,
        max_failure_ratio: 1,
      });
      // While its step is queued or running, the account's own request is refused, not run.
      const conflict = await svc.app.inject({
        method: "DELETE",
        url: `/v1/toolboxes/${busySkipLater}`,
        headers: auth,
      });
      assert.ok([202, 409].includes(conflict.statusCode), conflict.body);
      const done = await until(svc, id, "to finish", (u) => u.finished, 90_000);
      const all = await targets(svc, id);
      const of = (a: string) => all.find((t) => t.account_id === a)!;
      assert.equal(of(notActive).state, "skipped");
      assert.match(of(notActive).reason!, /unresponsive, not active/);
      assert.equal(of(busyWait).state, "upgraded", "waited for its refresh, then upgraded");
      const waited = await svc.pool.query(
        "select 1 from fleet_operation_events where operation_id = $1 and type = 'toolbox_waiting' and data->>'account_id' = $2",
        [id, busyWait],
      );
      assert.equal(waited.rowCount, 1, "it waited for the refresh, said so once");
      if (conflict.statusCode === 202) {
        // The delete came first: the step was skipped or the toolbox left during it.
        assert.equal(of(busySkipLater).state, "skipped");
      }
      assert.equal(done.status, "succeeded");
      assertSerializedPerStack(engine.calls);

      // With on_busy=skip an account busy with its own operation is skipped, with the reason.
      const other = accounts[3];
      await svc.app.inject({
        method: "POST",
        url: `/v1/toolboxes/${other}/refresh`,
        headers: auth,
      });
      const skipId = await startUpgrade(svc, {
        dtma_image: "agentopia/dtma:v4",
        backend_image: "agentopia/backend:v4",
        waves: [100],
        on_busy: "skip",
        max_failure_ratio: 1,
        health_deadline_seconds: 30,
      });
      await until(svc, skipId, "to finish", (u) => u.finished, 90_000);
      const t = (await targets(svc, skipId)).find((x) => x.account_id === other)!;
      assert.equal(t.state, "skipped");
      assert.match(t.reason!, /its refresh operation is in progress/);
      assertSerializedPerStack(engine.calls);
    });
  });

  it("a shutdown ends open event streams at once, without `end` (a queued or stopped upgrade's never ends by itself)", async () => {
    // No worker: the upgrade stays queued, as a stopped one stays stopped.
    const svc = await startFleetService({ engine: new TestEngine({}), workerConcurrency: 0 });
    try {
      const id = await startUpgrade(svc, {});
      await svc.app.listen({ port: 0, host: "127.0.0.1" });
      const stream = follow(svc, `/v1/upgrades/${id}/events`);
      await waitFor("the stream to replay the request", () =>
        Promise.resolve(stream.events.length > 0 ? true : undefined),
      );
      const started = Date.now();
      await svc.app.close();
      await stream.ended;
      assert.ok(Date.now() - started < 2000, `the app took ${Date.now() - started} ms to close`);
      assert.deepEqual(
        stream.events.map((e) => e.event),
        ["created"],
      );
    } finally {
      await svc.stop();
    }
  });

  it("a worker killed mid-wave: another resumes the upgrade and nobody is upgraded twice", async () => {
    const databaseUrl = await freshDatabase();
    const key = randomBytes(32);
    const sim = new SimulatedFleet({ serviceToken: SERVICE_TOKEN, heartbeatDelayMs: 100 });
    await sim.listen();
    // Provision first, with a quick worker of its own.
    const setup = await startFleetService({
      engine: new TestEngine({ latencyMs: 10, backendUrlFor: sim.backendUrlFor }),
      databaseUrl,
      tokenEncryptionKey: key,
    });
    sim.attach(setup.app, setup.pool);
    const accounts = await provisionAll(setup, 9);
    await sim.close();
    await setup.stop();

    // The API alone here; the child is the only worker, with slow ups.
    const sim2 = new SimulatedFleet({ serviceToken: SERVICE_TOKEN, heartbeatDelayMs: 100 });
    await sim2.listen();
    const api = await startFleetService({
      engine: new TestEngine(),
      databaseUrl,
      workerConcurrency: 0,
      tokenEncryptionKey: key,
    });
    sim2.attach(api.app, api.pool);
    const child = spawn(
      process.execPath,
      [
        "--import=tsx",
        path.join(__dirname, "fixtures/fleetWorkerProcess.ts"),
        databaseUrl,
        sim2.baseUrl,
      ],
      {
        stdio: ["ignore", "pipe", "inherit"],
        env: { ...process.env, TEST_TOKEN_KEY: key.toString("hex") },
      },
    );
    let rescuer: Service | undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        child.stdout.on("data", (d: Buffer) => d.toString().includes("ready") && resolve());
        child.once("exit", (code) => reject(new Error(`worker exited early (${code})`)));
      });
      const id = await startUpgrade(api, { waves: [100], health_deadline_seconds: 60 });
      // Kill it once some toolboxes are upgraded and others are still being upgraded.
      await waitFor(
        "some upgraded, some not yet",
        async () => {
          const all = await targets(api, id);
          const upgraded = all.filter((t) => t.state === "upgraded").length;
          return upgraded >= 2 && upgraded <= 6 ? true : undefined;
        },
        60_000,
      );
      child.kill("SIGKILL");
      const { rows: settled } = await api.pool.query(
        "select account_id::text from toolbox_operations where kind = 'upgrade' and status = 'succeeded'",
      );
      const doneBefore = new Set(settled.map((r) => r.account_id as string));
      const engine = new TestEngine({ latencyMs: 100, backendUrlFor: sim2.backendUrlFor });
      rescuer = await startFleetService({ engine, databaseUrl, tokenEncryptionKey: key });
      const done = await until(api, id, "to be resumed and succeed", (u) => u.finished, 120_000);
      assert.equal(done.status, "succeeded");
      assert.equal(done.counts.by_state.upgraded, 9);
      const { rows: perAccount } = await api.pool.query(
        "select account_id::text, count(*)::int as n from toolbox_operations where kind = 'upgrade' group by account_id",
      );
      assert.equal(perAccount.length, 9);
      assert.ok(
        perAccount.every((r) => r.n === 1),
        "one upgrade operation per toolbox",
      );
      for (const a of doneBefore) {
        assert.deepEqual(
          engine.calls.filter((c) => c.stackName === `acct-${a}`),
          [],
          `${a} was upgraded before the kill and never again`,
        );
      }
      assert.ok(doneBefore.size >= 2 && doneBefore.size < accounts.length);
      assert.ok((await eventTypes(api, id)).includes("driver_resumed"));
    } finally {
      child.kill("SIGKILL");
      await sim2.close();
      await rescuer?.stop();
      await api.stop();
    }
  });
});
