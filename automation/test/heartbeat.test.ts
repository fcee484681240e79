/* eslint-disable @typescript-eslint/no-unsafe-member-access -- JSON responses are checked by assertions */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { TestEngine } from "../src/engine/testEngine";
import { installationStatusFor, recordHeartbeat } from "../src/heartbeat";
import { auth, newAccount, startTestService, waitFor } from "./helpers";

type Service = Awaited<ReturnType<typeof startTestService>>;

interface InstanceRow {
  id: string;
  status_on_toolbox: string;
  last_heartbeat_from_dtma: Date | null;
}

describe("heartbeat: tool statuses update the toolbox's account_tool_instances rows (real Postgres)", () => {
  let svc: Service;
  before(async () => (svc = await startTestService({ engine: new TestEngine() })));
  after(async () => svc.stop());

  /** A provisioned toolbox with its DTMA token and two tool instances on it. */
  async function toolbox() {
    const account = newAccount();
    const res = await svc.app.inject({
      method: "POST",
      url: "/v1/toolboxes",
      headers: auth,
      payload: { account_id: account },
    });
    assert.equal(res.statusCode, 202);
    await waitFor("the toolbox to be provisioned", async () => {
      const { rows } = await svc.pool.query<{ status: string }>(
        "select status::text from account_tool_environments where account_id = $1",
        [account],
      );
      return rows[0]?.status === "awaiting_heartbeat" ? true : undefined;
    });
    const token = (
      await svc.app.inject({ url: `/v1/toolboxes/${account}/tokens`, headers: auth })
    ).json().dtma_token as string;
    const { rows } = await svc.pool.query<{ id: string }>(
      `insert into account_tool_instances (account_tool_environment_id, instance_name_on_toolbox, status_on_toolbox)
       select id, n, 'pending_deploy' from account_tool_environments, unnest(array['alpha', 'beta']) n
       where account_id = $1 returning id`,
      [account],
    );
    return { account, token, instances: rows.map((r) => r.id) };
  }

  const beat = (token: string, tool_statuses: unknown[]) =>
    svc.app.inject({
      method: "POST",
      url: "/v1/heartbeat",
      headers: { authorization: `Bearer ${token}` },
      payload: { dtma_version: "1.0.0", system_status: { status: "ok" }, tool_statuses },
    });

  const instances = async (ids: string[]) =>
    new Map(
      (
        await svc.pool.query<InstanceRow>(
          "select id, status_on_toolbox::text, last_heartbeat_from_dtma from account_tool_instances where id = any($1)",
          [ids],
        )
      ).rows.map((r) => [r.id, r]),
    );

  it("each tool status sets its row's status_on_toolbox and last_heartbeat_from_dtma", async () => {
    const {
      account,
      token,
      instances: [alpha, beta],
    } = await toolbox();
    const res = await beat(token, [
      { account_tool_instance_id: alpha, name: "alpha", status: "running", state: "running" },
      { account_tool_instance_id: beta, name: "beta", status: "stopped", state: "exited" },
    ]);
    assert.equal(res.statusCode, 204);
    const rows = await instances([alpha, beta]);
    assert.equal(rows.get(alpha)!.status_on_toolbox, "running");
    assert.equal(rows.get(beta)!.status_on_toolbox, "stopped");
    assert.ok(rows.get(alpha)!.last_heartbeat_from_dtma instanceof Date);
    assert.ok(rows.get(beta)!.last_heartbeat_from_dtma instanceof Date);
    const env = await svc.pool.query<{ status: string }>(
      "select status::text from account_tool_environments where account_id = $1",
      [account],
    );
    assert.equal(env.rows[0].status, "active", "the toolbox row is updated as well");

    // The DTMA's Docker state is the truth: a restarting container is starting again.
    await beat(token, [
      {
        account_tool_instance_id: alpha,
        name: "alpha",
        status: "error_runtime",
        state: "restarting",
      },
      { account_tool_instance_id: beta, name: "beta", status: "error", state: "dead" },
    ]);
    const after = await instances([alpha, beta]);
    assert.equal(
      after.get(alpha)!.status_on_toolbox,
      "error_runtime",
      "a container its restart policy keeps restarting is failing",
    );
    assert.equal(after.get(beta)!.status_on_toolbox, "error_runtime");
  });

  it("an instance of another toolbox is ignored, never updated; unknown ids are ignored", async () => {
    const mine = await toolbox();
    const theirs = await toolbox();
    const before = await instances(theirs.instances);
    const res = await beat(mine.token, [
      {
        account_tool_instance_id: theirs.instances[0],
        name: "alpha",
        status: "stopped",
        state: "exited",
      },
      {
        account_tool_instance_id: randomUUID(),
        name: "ghost",
        status: "running",
        state: "running",
      },
      { account_tool_instance_id: "not-a-uuid", name: "junk", status: "running" },
      {
        account_tool_instance_id: mine.instances[0],
        name: "alpha",
        status: "running",
        state: "running",
      },
    ]);
    assert.equal(res.statusCode, 204, "the heartbeat itself is accepted");
    const result = await recordHeartbeat(svc.pool, mine.token, {
      tool_statuses: [
        { account_tool_instance_id: theirs.instances[0], status: "stopped" },
        { account_tool_instance_id: "not-a-uuid", status: "running" },
      ],
    });
    assert.deepEqual(result.foreign, [theirs.instances[0]], "reported for the log");
    assert.deepEqual(result.unknown, ["not-a-uuid"]);
    assert.deepEqual(
      await instances(theirs.instances),
      before,
      "the other toolbox's rows are untouched",
    );
    const own = await instances(mine.instances);
    assert.equal(own.get(mine.instances[0])!.status_on_toolbox, "running");
    assert.equal(
      own.get(mine.instances[1])!.status_on_toolbox,
      "pending_deploy",
      "not reported, not changed",
    );
    assert.equal(own.get(mine.instances[1])!.last_heartbeat_from_dtma, null);
  });

  it("an unknown token is 401 and writes nothing", async () => {
    const { instances: ids } = await toolbox();
    const before = await instances(ids);
    const res = await beat("not-a-toolbox-token", [
      { account_tool_instance_id: ids[0], name: "alpha", status: "running", state: "running" },
    ]);
    assert.equal(res.statusCode, 401);
    assert.deepEqual(await instances(ids), before);
  });

  it("an end user reads only the tool instances on their own toolbox through RLS", async () => {
    const mine = await toolbox();
    const theirs = await toolbox();
    await svc.pool.query(
      "do $$ begin if not exists (select 1 from pg_roles where rolname = 'rls_user') then create role rls_user; end if; end $$",
    );
    await svc.pool.query(
      `grant usage on schema auth to rls_user;
       grant select on account_tool_environments, account_tool_instances, tool_catalog to rls_user`,
    );
    const client = await svc.pool.connect();
    try {
      await client.query("begin");
      await client.query("set local role rls_user");
      await client.query("select set_config('request.jwt.claim.sub', $1, true)", [mine.account]);
      const { rows } = await client.query<{ id: string }>(
        "select id from account_tool_instances where id = any($1)",
        [[...mine.instances, ...theirs.instances]],
      );
      assert.deepEqual(rows.map((r) => r.id).sort(), [...mine.instances].sort());
      await client.query("rollback");
    } finally {
      client.release();
    }
  });

  it("maps every DTMA state and status to the installation enum (the contract's map)", () => {
    const cases: [Record<string, string>, string | undefined][] = [
      [{ state: "running" }, "running"],
      [{ state: "created" }, "starting"],
      [{ state: "restarting" }, "error_runtime"],
      [{ state: "paused" }, "stopped"],
      [{ state: "exited" }, "stopped"],
      [{ state: "removing" }, "deleting"],
      [{ state: "dead" }, "error_runtime"],
      [{ status: "stopped" }, "stopped"],
      [{ status: "error" }, "error"],
      [{ status: "starting" }, "starting"],
      [{ state: "exited", status: "running" }, "stopped"],
      [{ state: "weird", status: "running" }, "running"],
      [{ status: "toString" }, undefined],
      [{}, undefined],
    ];
    for (const [input, expected] of cases) {
      assert.equal(installationStatusFor(input), expected, JSON.stringify(input));
    }
  });
});
