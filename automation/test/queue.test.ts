/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-unsafe-argument, @typescript-eslint/no-unsafe-return -- JSON responses are checked by assertions */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import path from "node:path";
import { TestEngine, type EngineCall } from "../src/engine/testEngine";
import type { OperationRow } from "../src/db/rows";
import { assertSerializedPerStack } from "./fixtures/engineCalls";
import { auth, freshDatabase, newAccount, startTestService, waitFor } from "./helpers";

type Service = Awaited<ReturnType<typeof startTestService>>;

const post = (svc: Service, account: string) =>
  svc.app.inject({
    method: "POST",
    url: "/v1/toolboxes",
    headers: auth,
    payload: { account_id: account },
  });

async function operation(svc: Service, id: string): Promise<OperationRow> {
  const { rows } = await svc.pool.query<OperationRow>(
    "select * from toolbox_operations where id = $1",
    [id],
  );
  return rows[0];
}

const finished = (svc: Service, id: string) =>
  waitFor(`operation ${id} to finish`, async () => {
    const op = await operation(svc, id);
    return op.status === "succeeded" || op.status === "failed" ? op : undefined;
  });

describe("queue: idempotency, serialization, retries and recovery (real Postgres, pg-boss)", function () {
  describe("one service", () => {
    let svc: Service;
    const engine = new TestEngine({
      latencyMs: 50,
      // The region says how an account fails: sfo3 always, permanently; ams3 once, transiently;
      // fra1 on a stale lock once.
      failWith: (op, req) => {
        if (op !== "up") return undefined;
        if (req.config.region === "sfo3")
          return {
            message: "no cloud credentials: DIGITALOCEAN_TOKEN is not set",
            kind: "permanent",
          };
        if (
          req.config.region === "ams3" &&
          engine.calls.filter((c) => c.stackName === req.stackName).length === 1
        ) {
          return { message: "503 Service Unavailable from the cloud API", kind: "transient" };
        }
        if (
          req.config.region === "fra1" &&
          engine.calls.filter((c) => c.stackName === req.stackName && c.op === "up").length === 1
        ) {
          return { message: "the stack is currently locked by 1 lock(s)", kind: "locked" };
        }
        return undefined;
      },
    });
    before(async () => (svc = await startTestService({ engine, workerConcurrency: 4 })));
    after(async () => svc.stop());

    it("50 concurrent requests for one account make one operation, and the same one comes back", async () => {
      const account = newAccount();
      const responses = await Promise.all(Array.from({ length: 50 }, () => post(svc, account)));
      // 202 with the one operation; a request that arrives after it finished gets 200 (provisioned).
      assert.deepEqual(
        responses.map((r) => r.statusCode).filter((s) => s !== 202 && s !== 200),
        [],
      );
      const ids = new Set(
        responses.filter((r) => r.statusCode === 202).map((r) => r.json().operation.id as string),
      );
      assert.equal(ids.size, 1);
      const { rows } = await svc.pool.query(
        "select count(*)::int as n from toolbox_operations where account_id = $1",
        [account],
      );
      assert.equal(rows[0].n, 1);
      await finished(svc, [...ids][0]);
    });

    it("50 concurrent mixed requests never run two operations for one account at once", async () => {
      const account = newAccount();
      for (let round = 0; round < 3; round++) {
        const responses = await Promise.all(
          Array.from({ length: 50 }, (_, i) =>
            i % 3 === 0
              ? post(svc, account)
              : svc.app.inject({
                  method: i % 3 === 1 ? "DELETE" : "POST",
                  url:
                    i % 3 === 1 ? `/v1/toolboxes/${account}` : `/v1/toolboxes/${account}/refresh`,
                  headers: auth,
                }),
          ),
        );
        assert.deepEqual(
          responses.map((r) => r.statusCode).filter((s) => ![200, 202, 404, 409].includes(s)),
          [],
        );
        const ids = new Set(
          responses.map((r) => r.json().operation?.id as string | undefined).filter(Boolean),
        );
        for (const id of ids) await finished(svc, id!);
        // Between rounds, one open operation at most ever existed: all of them are final now.
        const open = await svc.pool.query(
          "select count(*)::int as n from toolbox_operations where account_id = $1 and status in ('queued','running')",
          [account],
        );
        assert.equal(open.rows[0].n, 0);
      }
      assertSerializedPerStack(engine.calls);
    });

    it("an engine failure ends in error_provisioning with its message, then a retry succeeds", async () => {
      const account = newAccount();
      const first = await svc.app.inject({
        method: "POST",
        url: "/v1/toolboxes",
        headers: auth,
        payload: { account_id: account, region: "sfo3" },
      });
      const op = await finished(svc, first.json().operation.id);
      assert.equal(op.status, "failed");
      assert.equal(op.attempts, 1, "a permanent failure is not retried");
      const tb = (await svc.app.inject({ url: `/v1/toolboxes/${account}`, headers: auth })).json()
        .toolbox;
      assert.equal(tb.status, "error_provisioning");
      assert.match(tb.error_message, /DIGITALOCEAN_TOKEN is not set/);
      const events = await svc.pool.query(
        "select type, message from toolbox_operation_events where operation_id = $1 order by id",
        [op.id],
      );
      assert.ok(
        events.rows.some((e) => e.type === "failed" && /DIGITALOCEAN_TOKEN/.test(e.message)),
      );

      const retry = await svc.app.inject({
        method: "POST",
        url: "/v1/toolboxes",
        headers: auth,
        payload: { account_id: account, region: "nyc3" },
      });
      assert.equal(retry.statusCode, 202);
      assert.notEqual(retry.json().operation.id, op.id);
      assert.equal((await finished(svc, retry.json().operation.id)).status, "succeeded");
      const after = (
        await svc.app.inject({ url: `/v1/toolboxes/${account}`, headers: auth })
      ).json().toolbox;
      assert.equal(after.status, "awaiting_heartbeat");
      assert.equal(after.error_message, null);
    });

    it("a transient failure is retried with backoff and succeeds", async () => {
      const account = newAccount();
      const res = await svc.app.inject({
        method: "POST",
        url: "/v1/toolboxes",
        headers: auth,
        payload: { account_id: account, region: "ams3" },
      });
      const op = await finished(svc, res.json().operation.id);
      assert.equal(op.status, "succeeded");
      assert.equal(op.attempts, 2);
      const types = (
        await svc.pool.query(
          "select type from toolbox_operation_events where operation_id = $1 order by id",
          [op.id],
        )
      ).rows.map((r) => r.type as string);
      assert.ok(types.includes("retrying"));
    });

    it("a stack lock left by a dead attempt is cleared once, then the operation goes through", async () => {
      const account = newAccount();
      const res = await svc.app.inject({
        method: "POST",
        url: "/v1/toolboxes",
        headers: auth,
        payload: { account_id: account, region: "fra1" },
      });
      const op = await finished(svc, res.json().operation.id);
      assert.equal(op.status, "succeeded");
      const ops = engine.calls.filter((c) => c.stackName === `acct-${account}`).map((c) => c.op);
      assert.deepEqual(ops, ["up", "recover", "up"]);
    });

    it("a delete while provisioning is queued is refused with 409 naming the operation", async () => {
      const account = newAccount();
      const created = await post(svc, account);
      const del = await svc.app.inject({
        method: "DELETE",
        url: `/v1/toolboxes/${account}`,
        headers: auth,
      });
      // Either the provision is still open (409) or it already finished (202 for the delete).
      if (del.statusCode === 409) {
        assert.equal(del.json().operation.id, created.json().operation.id);
      } else {
        assert.equal(del.statusCode, 202);
      }
    });
  });

  it("two workers on one database share the work and never overlap on an account", async function () {
    this.timeout(120_000);
    const databaseUrl = await freshDatabase();
    const calls: EngineCall[] = [];
    const a = await startTestService({
      engine: new TestEngine({ latencyMs: 40 }, calls),
      databaseUrl,
      workerConcurrency: 2,
    });
    const b = await startTestService({
      engine: new TestEngine({ latencyMs: 40 }, calls),
      databaseUrl,
      workerConcurrency: 2,
    });
    try {
      const accounts = Array.from({ length: 10 }, newAccount);
      // Each account: provision, then (after it) a refresh, then a delete — requested through both.
      const ops: string[] = [];
      for (const [i, svc] of [a, b, a].entries()) {
        const results = await Promise.all(
          accounts.map((acc) =>
            i === 0
              ? post(svc, acc)
              : svc.app.inject({
                  method: i === 1 ? "POST" : "DELETE",
                  url: i === 1 ? `/v1/toolboxes/${acc}/refresh` : `/v1/toolboxes/${acc}`,
                  headers: auth,
                }),
          ),
        );
        const ids = results.map((r) => r.json().operation.id as string);
        ops.push(...ids);
        for (const id of ids) assert.equal((await finished(a, id)).status, "succeeded");
      }
      const workers = await a.pool.query("select distinct worker_id from toolbox_operations");
      assert.equal(workers.rowCount, 2, "both workers ran operations");
      assertSerializedPerStack(calls);
      const statuses = await a.pool.query(
        "select distinct status::text from account_tool_environments",
      );
      assert.deepEqual(
        statuses.rows.map((r) => r.status),
        ["deprovisioned"],
      );
    } finally {
      await a.stop();
      await b.stop();
    }
  });

  it("a job pg-boss re-issues while its attempt still runs waits for the account lock: no overlap, no second attempt", async function () {
    this.timeout(120_000);
    const databaseUrl = await freshDatabase();
    const calls: EngineCall[] = [];
    // One slot each: the attempt takes one service's slot, the re-issued job goes to the other.
    const [a, b] = await Promise.all(
      [0, 1].map(() =>
        startTestService({
          engine: new TestEngine({ latencyMs: 4000 }, calls),
          databaseUrl,
          workerConcurrency: 1,
        }),
      ),
    );
    try {
      const opId = (await post(a, newAccount())).json().operation.id as string;
      await waitFor("the attempt's engine call", () =>
        Promise.resolve(calls.length > 0 ? true : undefined),
      );
      // Its claim lapses as if the job heartbeats stopped reaching pg-boss, while the worker, its
      // connection and the engine call live on; pg-boss fails the job and hands it out again.
      await waitFor("pg-boss to give up the claim", async () => {
        const { rowCount } = await a.pool.query(
          `update pgboss.job set heartbeat_on = now() - interval '1 hour'
           where name = 'toolbox-operations' and state = 'active' returning id`,
        );
        return rowCount === 0 ? true : undefined;
      });
      const job = await waitFor("the re-issued job to complete", async () => {
        const { rows } = await a.pool.query(
          `select state, retry_count, singleton_key from pgboss.job
           where name = 'toolbox-operations' and data->>'operationId' = $1`,
          [opId],
        );
        return rows[0]?.state === "completed" ? rows[0] : undefined;
      });
      assert.ok(job.retry_count >= 1, "pg-boss handed the job out again");
      // The queue keys nothing (decision 0033): the account lock alone kept the jobs apart.
      assert.equal(job.singleton_key, null);
      const op = await operation(a, opId);
      assert.equal(op.status, "succeeded");
      assert.equal(op.attempts, 1, "the re-issued job found the operation finished");
      assert.deepEqual(
        calls.map((c) => c.op),
        ["up"],
      );
      assertSerializedPerStack(calls);
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  });

  it("retries exhausted while the attempt still runs: the dead-letter handler waits for it and never fails a live operation", async function () {
    this.timeout(120_000);
    const calls: EngineCall[] = [];
    // No retry: a claim pg-boss gives up goes straight to the dead letters, the attempt lives on.
    const svc = await startTestService({
      engine: new TestEngine({ latencyMs: 4000 }, calls),
      workerConcurrency: 1,
      retryLimit: 0,
    });
    try {
      const opId = (await post(svc, newAccount())).json().operation.id as string;
      await waitFor("the attempt's engine call", () =>
        Promise.resolve(calls.length > 0 ? true : undefined),
      );
      await waitFor("pg-boss to give up the claim", async () => {
        const { rowCount } = await svc.pool.query(
          `update pgboss.job set heartbeat_on = now() - interval '1 hour'
           where name = 'toolbox-operations' and state = 'active' returning id`,
        );
        return rowCount === 0 ? true : undefined;
      });
      const op = await finished(svc, opId);
      assert.equal(op.status, "succeeded", "the live attempt's outcome stands");
      const { rows } = await svc.pool.query<{ type: string }>(
        "select type from toolbox_operation_events where operation_id = $1 order by id",
        [opId],
      );
      assert.ok(!rows.some((r) => r.type === "failed"), rows.map((r) => r.type).join(", "));
      const dead = await waitFor("the dead letter to be handled", async () => {
        const { rows: jobs } = await svc.pool.query<{ state: string }>(
          `select state from pgboss.job
           where name = 'toolbox-operations-dead' and data->>'operationId' = $1`,
          [opId],
        );
        return jobs[0]?.state === "completed" ? jobs[0] : undefined;
      });
      assert.equal(dead.state, "completed");
      assert.equal((await operation(svc, opId)).status, "succeeded", "and it stays so");
    } finally {
      await svc.stop();
    }
  });

  it("a worker killed mid-operation: its operation is taken up again and finishes", async function () {
    this.timeout(120_000);
    const databaseUrl = await freshDatabase();
    // The API process runs no worker; the child process is the only worker at first.
    const engine = new TestEngine({ latencyMs: 100 });
    const api = await startTestService({ engine, databaseUrl, workerConcurrency: 0 });
    const child = spawn(
      process.execPath,
      ["--import=tsx", path.join(__dirname, "fixtures/workerProcess.ts"), databaseUrl],
      {
        stdio: ["ignore", "pipe", "inherit"],
      },
    );
    let rescuer: Service | undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        child.stdout.on("data", (d: Buffer) => d.toString().includes("ready") && resolve());
        child.once("exit", (code) => reject(new Error(`worker exited early (${code})`)));
      });
      const account = newAccount();
      const opId = (await post(api, account)).json().operation.id as string;
      await waitFor("the child to start the operation", async () =>
        (await operation(api, opId)).status === "running" ? true : undefined,
      );
      child.kill("SIGKILL");
      // A second worker comes up; the lost job is failed by missed pg-boss heartbeats and retried.
      rescuer = await startTestService({ engine, databaseUrl, workerConcurrency: 1 });
      const op = await waitFor(
        "the operation to be taken up again",
        async () => {
          const o = await operation(api, opId);
          return o.status === "succeeded" || o.status === "failed" ? o : undefined;
        },
        90_000,
      );
      assert.equal(op.status, "succeeded");
      assert.equal(op.attempts, 2);
      assert.equal(op.worker_id, rescuer.workerId);
      assert.deepEqual(
        engine.calls.map((c) => c.op),
        ["recover", "up"],
        "the stack is recovered before the retry",
      );
      const types = (
        await api.pool.query(
          "select type from toolbox_operation_events where operation_id = $1 order by id",
          [opId],
        )
      ).rows.map((r) => r.type as string);
      assert.ok(types.includes("resumed"));
    } finally {
      child.kill("SIGKILL");
      await rescuer?.stop();
      await api.stop();
    }
  });
});
