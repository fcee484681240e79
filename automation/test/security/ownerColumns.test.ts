import assert from "node:assert/strict";
import { copyFile, mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Pool, type PoolClient } from "pg";
import { migrate, MIGRATIONS_DIR } from "../../src/db/migrate";
import { sha256Hex } from "../../src/secrets/tokenCipher";
import { auth, freshDatabase, newAccount } from "../helpers";
import { loggedService, provisioned, type LoggedService } from "./kit";

// Issue 13, item 11: RLS let an owner select every column of their toolbox's row, the DTMA
// token hashes and the tokens' ciphertext included. The material now lives in a table no end
// user reads; the owner's `select *` of their row still works, without it.

const SUPABASE_ROLE = "authenticated";
const CREDENTIALS_MIGRATION = "20250101000008_toolbox_credentials.sql";

describe("security (issue 13, item 11): owners read no token material", () => {
  let svc: LoggedService;
  let toolbox: { account: string; dtmaToken: string };
  let ciphertext: string;

  before(async () => {
    svc = await loggedService();
    toolbox = await provisioned(svc);
    const { rows } = await svc.pool.query<{ tokens_ciphertext: string }>(
      `select c.tokens_ciphertext from account_tool_environment_credentials c
       join account_tool_environments e on e.id = c.environment_id where e.account_id = $1`,
      [toolbox.account],
    );
    ciphertext = rows[0].tokens_ciphertext;
    // Supabase's client role, with the grants Supabase gives it on every table of public.
    await svc.pool.query(
      `do $$ begin if not exists (select 1 from pg_roles where rolname = '${SUPABASE_ROLE}')
         then create role ${SUPABASE_ROLE}; end if; end $$`,
    );
    await svc.pool.query(
      `grant usage on schema public, auth to ${SUPABASE_ROLE};
       grant select on all tables in schema public to ${SUPABASE_ROLE}`,
    );
  });
  after(() => svc.stop());

  /** Runs `fn` as the owner would reach Postgres through PostgREST (role, JWT subject). */
  async function asOwner<T>(fn: (c: PoolClient) => Promise<T>): Promise<T> {
    const client = await svc.pool.connect();
    try {
      await client.query("begin");
      await client.query(`set local role ${SUPABASE_ROLE}`);
      await client.query("select set_config('request.jwt.claim.sub', $1, true)", [toolbox.account]);
      return await fn(client);
    } finally {
      await client.query("rollback");
      client.release();
    }
  }

  it("the owner's select * of their toolbox carries neither the hashes nor the ciphertext", async () => {
    const rows = await asOwner(
      async (c) =>
        (await c.query<Record<string, unknown>>("select * from account_tool_environments")).rows,
    );
    assert.equal(rows.length, 1, "the owner still reads their own row");
    const text = JSON.stringify(rows[0]);
    assert.ok(!text.includes(sha256Hex(toolbox.dtmaToken)), "no token hash");
    assert.ok(!text.includes(ciphertext), "no ciphertext");
    assert.ok(!text.includes(toolbox.dtmaToken), "no token");
    for (const column of ["dtma_token_hash", "dtma_token_previous_hash", "tokens_ciphertext"]) {
      assert.ok(!(column in rows[0]), column);
    }
  });

  it("the credentials table gives the owner nothing, even with a table grant", async () => {
    const rows = await asOwner(
      async (c) =>
        (
          await c.query<Record<string, unknown>>(
            "select * from account_tool_environment_credentials",
          )
        ).rows,
    );
    assert.deepEqual(rows, [], "row-level security without a policy");
  });

  it("the migration takes Supabase's default grant on the credentials table away", async () => {
    const sql = await readFile(path.join(MIGRATIONS_DIR, CREDENTIALS_MIGRATION), "utf8");
    await svc.pool.query(sql);
    const { rows } = await svc.pool.query<{ granted: boolean }>(
      "select has_table_privilege($1, 'public.account_tool_environment_credentials', 'select') as granted",
      [SUPABASE_ROLE],
    );
    assert.equal(rows[0].granted, false);
    // Re-applied over a live schema, it kept the toolbox's material: /tokens still decrypts.
    const tokens = await svc.app.inject({
      url: `/v1/toolboxes/${toolbox.account}/tokens`,
      headers: auth,
    });
    assert.equal(tokens.statusCode, 200, tokens.body);
  });

  it("heartbeats still find the toolbox by its token's hash", async () => {
    const res = await fetch(`${svc.base}/v1/heartbeat`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${toolbox.dtmaToken}`,
        "content-type": "application/json",
      },
      body: JSON.stringify({ dtma_version: "1.0.0", system_status: {}, tool_statuses: [] }),
    });
    assert.equal(res.status, 204);
  });

  it("a database migrated before the move keeps its toolboxes' material, moved", async () => {
    const before = await mkdtemp(path.join(os.tmpdir(), "migrations-"));
    const pool = new Pool({ connectionString: await freshDatabase() });
    try {
      for (const f of await readdir(MIGRATIONS_DIR)) {
        if (f < CREDENTIALS_MIGRATION)
          await copyFile(path.join(MIGRATIONS_DIR, f), path.join(before, f));
      }
      await migrate(pool, before);
      const account = newAccount();
      await pool.query(
        `insert into account_tool_environments (account_id, user_id, status, stack_name,
           dtma_token_hash, dtma_token_previous_hash, tokens_ciphertext)
         values ($1, $1, 'active', $2, 'h1', 'h0', 'v1:iv:tag:ct')`,
        [account, `acct-${account}`],
      );
      assert.equal((await migrate(pool))[0], CREDENTIALS_MIGRATION);
      const { rows } = await pool.query(
        `select c.dtma_token_hash, c.dtma_token_previous_hash, c.tokens_ciphertext
         from account_tool_environment_credentials c
         join account_tool_environments e on e.id = c.environment_id where e.account_id = $1`,
        [account],
      );
      assert.deepEqual(rows, [
        {
          dtma_token_hash: "h1",
          dtma_token_previous_hash: "h0",
          tokens_ciphertext: "v1:iv:tag:ct",
        },
      ]);
    } finally {
      pool.on("error", () => undefined);
      await pool.end();
      await rm(before, { recursive: true, force: true });
    }
  });
});
