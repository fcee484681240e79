/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-unsafe-argument, @typescript-eslint/no-unsafe-return, @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-call -- JSON answers are checked by assertions */
/**
 * Orphan reconciliation (issue 11) on a real Postgres with the test engine and the DigitalOcean
 * client against recorded answers on loopback: seeded mismatches of every kind are each found
 * exactly once, a dry run changes nothing, an action on one kind touches no other.
 */
import assert from "node:assert/strict";
import { TestEngine } from "../src/engine/testEngine";
import type { RunningService } from "../src/service";
import { canaryAccountId } from "../src/fleet/canaries";
import { DigitalOceanStandIn } from "./fixtures/digitalOceanApi";
import { startFleetService } from "./fixtures/fleetService";
import { SimulatedFleet } from "./fixtures/simulatedFleet";
import { auth, newAccount, SERVICE_TOKEN, waitFor } from "./helpers";

const DO_TOKEN = `dop_v1_${"cd".repeat(32)}`;
type Service = RunningService & { databaseUrl: string };

describe("reconciliation: records, stacks, droplets and heartbeats (real Postgres, test engine, recorded DigitalOcean answers)", function () {
  this.timeout(120_000);
  let svc: Service;
  let sim: SimulatedFleet;
  let engine: TestEngine;
  let api: DigitalOceanStandIn;
  const ids = {
    healthy: newAccount(),
    recordOnly: newAccount(),
    stackOnly: newAccount(),
    dropletOnly: newAccount(),
    foreignDroplet: newAccount(),
    stale: newAccount(),
  };

  const reconcile = async (body: Record<string, unknown>) => {
    const res = await svc.app.inject({
      method: "POST",
      url: "/v1/reconciliations",
      headers: auth,
      payload: body,
    });
    assert.equal(res.statusCode, 202, res.body);
    const id = res.json().reconciliation.id as string;
    return waitFor(`reconciliation ${id}`, async () => {
      const r = (await svc.app.inject({ url: `/v1/reconciliations/${id}`, headers: auth })).json()
        .reconciliation;
      return r.finished ? r : undefined;
    });
  };
  /** Everything a reconciliation could change, to compare before and after. */
  const world = async () => ({
    records: (
      await svc.pool.query(
        "select account_id::text, status::text, provisioning_error_message from account_tool_environments order by account_id",
      )
    ).rows,
    stacks: (await engine.listStacks()).map((s) => s.name),
    droplets: api.droplets.map((d) => d.id),
  });
  const of = (r: any, kind: string) =>
    r.result.findings.filter((f: any) => f.kind === kind).map((f: any) => f.account_id);

  before(async () => {
    api = new DigitalOceanStandIn(DO_TOKEN);
    await api.listen();
    sim = new SimulatedFleet({ serviceToken: SERVICE_TOKEN, heartbeatDelayMs: 0 });
    await sim.listen();
    engine = new TestEngine({ backendUrlFor: sim.backendUrlFor });
    svc = await startFleetService({
      engine,
      fleet: {
        environment: "dev",
        digitalocean: { token: DO_TOKEN, apiUrl: api.url },
        reconcileHeartbeatThresholdSeconds: 3600,
      },
    });
    sim.attach(svc.app, svc.pool);
    // Two real toolboxes (stacks, records, heartbeats), one of which then goes quiet.
    for (const a of [ids.healthy, ids.stale]) {
      await svc.app.inject({
        method: "POST",
        url: "/v1/toolboxes",
        headers: auth,
        payload: { account_id: a },
      });
    }
    await waitFor("toolboxes active", async () => {
      const { rows } = await svc.pool.query(
        "select count(*)::int as n from account_tool_environments where status = 'active'",
      );
      return rows[0].n === 2 ? true : undefined;
    });
    await sim.close();
    await svc.pool.query(
      "update account_tool_environments set last_heartbeat_at = now() - interval '2 hours' where account_id = $1",
      [ids.stale],
    );
    // A record whose stack is gone; a stack no record has; an operator canary (no acct- stack).
    await svc.pool.query(
      `insert into account_tool_environments (account_id, user_id, status, stack_name, name, last_heartbeat_at)
       values ($1, $1, 'active', $2, 'x', now())`,
      [ids.recordOnly, `acct-${ids.recordOnly}`],
    );
    engine.seedStack(`acct-${ids.stackOnly}`);
    engine.seedStack("dev", { toolboxes: {} });
    const canary = canaryAccountId("dev", "canary-dev");
    await svc.pool.query(
      `insert into account_tool_environments (account_id, user_id, status, stack_name, name, managed_by,
         operator_stack, operator_toolbox_id, last_heartbeat_at)
       values ($1, $1, 'active', 'dev', 'canary-dev', 'operator', 'dev', 'canary-dev', now())`,
      [canary],
    );
    // Droplets: the toolboxes' own and the canary's (tracked), one untracked of this
    // environment, one untracked without its tag, and one that is no toolbox at all.
    const tags = (a: string, env = "env-dev") => ["agentopia-toolbox", `account-${a}`, env];
    api.droplets = [
      { id: 1001, name: `tbx-${ids.healthy}`, tags: tags(ids.healthy) },
      { id: 1002, name: `tbx-${ids.stale}`, tags: tags(ids.stale) },
      { id: 1003, name: "tbx-canary-dev", tags: tags("canary-dev") },
      { id: 1004, name: `tbx-${ids.dropletOnly}`, tags: tags(ids.dropletOnly) },
      { id: 1005, name: `tbx-${ids.foreignDroplet}`, tags: tags(ids.foreignDroplet, "env-prod") },
      { id: 1006, name: "web-1", tags: ["web"] },
    ];
  });
  after(async () => {
    await svc.stop();
    await api.close();
  });

  it("a dry run (the default) finds each seeded mismatch exactly once and changes nothing", async () => {
    const before = await world();
    const run = await reconcile({});
    assert.equal(run.status, "succeeded", run.error_message);
    assert.equal(run.result.dry_run, true);
    assert.deepEqual(of(run, "record_without_stack"), [ids.recordOnly]);
    assert.deepEqual(of(run, "stack_without_record"), [ids.stackOnly]);
    assert.deepEqual(
      of(run, "untracked_droplet").sort(),
      [ids.dropletOnly, ids.foreignDroplet].sort(),
    );
    assert.deepEqual(of(run, "stale_heartbeat"), [ids.stale]);
    assert.equal(run.result.findings.length, 5);
    assert.deepEqual(run.result.counts, {
      record_without_stack: 1,
      stack_without_record: 1,
      untracked_droplet: 2,
      stale_heartbeat: 1,
    });
    assert.ok(run.result.findings.every((f: any) => f.action === undefined));
    assert.deepEqual(await world(), before);
    assert.ok(
      api.requests.every((r) => r.method === "GET"),
      "read only",
    );
    // Its events stream like an operation's; the DigitalOcean token is in none of it.
    const stream = await svc.app.inject({
      url: `/v1/reconciliations/${run.id}/events`,
      headers: auth,
    });
    assert.equal(stream.body.match(/event: finding/g)?.length, 5);
    assert.match(stream.body, /event: end\ndata: \{"status":"succeeded"\}/);
    // Its last events are written with its final status (one transaction, one now()): a stream
    // that ends on the status has sent them.
    const { rows: last } = await svc.pool.query(
      "select f.finished_at = (select max(e.at) from fleet_operation_events e where e.operation_id = f.id) as together from fleet_operations f where f.id = $1",
      [run.id],
    );
    assert.equal(last[0].together, true);
    const { rows } = await svc.pool.query(
      "select count(*)::int as n from fleet_operation_events where message like '%' || $1 || '%' or data::text like '%' || $1 || '%'",
      [DO_TOKEN],
    );
    assert.equal(rows[0].n, 0);
    const metrics = await svc.app.inject({ url: "/metrics", headers: auth });
    assert.match(metrics.body, /automation_reconcile_findings\{kind="untracked_droplet"\} 2/);
    assert.match(
      metrics.body,
      /automation_reconcile_runs_total\{mode="dry_run",outcome="succeeded"\} 1/,
    );
  });

  it("each action touches its kind only: destroy the orphaned stack, delete the untracked droplet of this environment, mark the records", async () => {
    const stacksRun = await reconcile({ dry_run: false, act_on: ["stack_without_record"] });
    const before = await world();
    assert.equal(stacksRun.status, "succeeded");
    assert.ok(!before.stacks.includes(`acct-${ids.stackOnly}`), "the orphaned stack is destroyed");
    assert.ok(
      engine.calls.some((c) => c.op === "destroyStack" && c.stackName === `acct-${ids.stackOnly}`),
    );
    assert.equal(before.droplets.length, 6, "no droplet touched");
    assert.ok(
      before.records.every((r: any) => r.status === "active"),
      "no record touched",
    );
    assert.ok(api.requests.every((r) => r.method === "GET"));

    const droplets = await reconcile({ dry_run: false, act_on: ["untracked_droplet"] });
    const acted = droplets.result.findings.filter((f: any) => f.kind === "untracked_droplet");
    const outcome = (a: string) => acted.find((f: any) => f.account_id === a).action.outcome;
    assert.equal(outcome(ids.dropletOnly), "done");
    assert.equal(outcome(ids.foreignDroplet), "refused", "not this environment's: never deleted");
    assert.deepEqual(
      api.requests.filter((r) => r.method === "DELETE").map((r) => r.url),
      ["/v2/droplets/1004"],
    );
    const afterDroplets = await world();
    assert.deepEqual(afterDroplets.records, before.records);
    assert.deepEqual(afterDroplets.stacks, before.stacks);

    const records = await reconcile({ dry_run: false, act_on: ["record_without_stack"] });
    assert.equal(records.status, "succeeded");
    const status = async (a: string) =>
      (
        await svc.pool.query(
          "select status::text, provisioning_error_message as m from account_tool_environments where account_id = $1",
          [a],
        )
      ).rows[0];
    const marked = await status(ids.recordOnly);
    assert.equal(marked.status, "error_provisioning");
    assert.match(
      marked.m,
      /^reconciliation [0-9a-f-]+: the record is active but stack acct-.* does not exist$/,
    );
    assert.equal((await status(ids.stale)).status, "active", "the stale one is another kind");

    const stale = await reconcile({ dry_run: false, act_on: ["stale_heartbeat"] });
    assert.equal(stale.status, "succeeded");
    assert.equal((await status(ids.stale)).status, "error_provisioning");
    assert.equal((await status(ids.healthy)).status, "active");
    assert.deepEqual((await world()).droplets, afterDroplets.droplets);
    // Nothing is left to find but the droplet that is not this environment's.
    const last = await reconcile({});
    assert.deepEqual(
      last.result.findings.map((f: any) => [f.kind, f.account_id]),
      [["untracked_droplet", ids.foreignDroplet]],
    );
  });
});
