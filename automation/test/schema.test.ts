/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-unsafe-argument, @typescript-eslint/no-unsafe-return -- JSON responses are checked by assertions */
import assert from "node:assert/strict";
import { TOOLBOX_STATUSES } from "@agentopia-toolboxes/contract";
import { Pool } from "pg";
import { migrate } from "../src/db/migrate";
import { AutomationEngine } from "../src/engine/automationEngine";
import { findOnPath } from "../src/engine/automationOptions";
import { sweepUnresponsive } from "../src/heartbeat";
import { auth, freshDatabase, newAccount, startTestService, waitFor } from "./helpers";

describe("schema: migrations, Agentopia's enum, row-level security, heartbeat sweep", () => {
  let url: string;
  let pool: Pool;
  before(async () => {
    url = await freshDatabase();
    pool = new Pool({ connectionString: url });
  });
  after(async () => {
    // end() resolves before its clients' sockets close; the root hook may already be stopping
    // the cluster, whose goodbye would otherwise reach a pool with no error listener.
    pool.on("error", () => undefined);
    await pool.end();
  });

  it("applies the migrations once, in order, and again is a no-op", async () => {
    const first = await migrate(pool);
    assert.deepEqual(first, [...first].sort());
    assert.equal(first.length >= 3, true);
    assert.deepEqual(await migrate(pool), []);
    const { rows } = await pool.query<{ v: string }>(
      "select unnest(enum_range(null::account_tool_environment_status_enum))::text as v",
    );
    for (const v of TOOLBOX_STATUSES) {
      assert.ok(
        rows.some((r) => r.v === v),
        v,
      );
    }
  });

  it("the SQL re-applies cleanly over an existing schema (as the Supabase CLI would on Agentopia's)", async () => {
    await pool.query("delete from automation_schema_migrations");
    assert.equal((await migrate(pool)).length >= 3, true);
  });

  it("an end user reads only their own toolbox through RLS", async () => {
    const [mine, theirs] = [newAccount(), newAccount()];
    for (const id of [mine, theirs]) {
      await pool.query(
        "insert into account_tool_environments (account_id, user_id, status, stack_name) values ($1, $1, 'active', $2)",
        [id, `acct-${id}`],
      );
    }
    await pool.query(
      "do $$ begin if not exists (select 1 from pg_roles where rolname = 'rls_user') then create role rls_user; end if; end $$",
    );
    await pool.query(
      "grant usage on schema auth to rls_user; grant select on account_tool_environments to rls_user",
    );
    const client = await pool.connect();
    try {
      await client.query("begin");
      await client.query("set local role rls_user");
      await client.query("select set_config('request.jwt.claim.sub', $1, true)", [mine]);
      const { rows } = await client.query<{ account_id: string }>(
        "select account_id from account_tool_environments",
      );
      assert.deepEqual(
        rows.map((r) => r.account_id),
        [mine],
      );
      await client.query("rollback");
    } finally {
      client.release();
    }
  });

  it("missed heartbeats make a toolbox unresponsive; fresh ones do not", async () => {
    const [stale, fresh] = [newAccount(), newAccount()];
    await pool.query(
      "insert into account_tool_environments (account_id, user_id, status, stack_name, last_heartbeat_at) values ($1, $1, 'active', 's1', now() - interval '10 minutes'), ($2, $2, 'active', 's2', now())",
      [stale, fresh],
    );
    assert.ok((await sweepUnresponsive(pool, 180)) >= 1);
    const { rows } = await pool.query<{ account_id: string; status: string }>(
      "select account_id, status::text from account_tool_environments where account_id in ($1, $2)",
      [stale, fresh],
    );
    assert.equal(rows.find((r) => r.account_id === stale)?.status, "unresponsive");
    assert.equal(rows.find((r) => r.account_id === fresh)?.status, "active");
  });

  it("with the real engine and no pulumi CLI: error_provisioning with the reason, no retry loop", async function () {
    if (findOnPath("pulumi")) {
      console.log("      (a pulumi CLI is on PATH: this checks the no-CLI path only)");
      this.skip();
    }
    const svc = await startTestService({
      engine: new AutomationEngine({
        repoRoot: "/nonexistent",
        workRoot: "/tmp/none",
        stateBackendUrl: "file:///tmp/none",
      }),
      retryLimit: 3,
    });
    try {
      const account = newAccount();
      const res = await svc.app.inject({
        method: "POST",
        url: "/v1/toolboxes",
        headers: auth,
        payload: { account_id: account },
      });
      const tb = await waitFor("error_provisioning", async () => {
        const t = (await svc.app.inject({ url: `/v1/toolboxes/${account}`, headers: auth })).json()
          .toolbox;
        return t.status === "error_provisioning" ? t : undefined;
      });
      assert.match(tb.error_message, /Pulumi CLI was not found on PATH/);
      const op = (
        await svc.app.inject({ url: `/v1/operations/${res.json().operation.id}`, headers: auth })
      ).json().operation;
      assert.equal(op.status, "failed");
      assert.equal(op.attempts, 1);
    } finally {
      await svc.stop();
    }
  });
});
