/**
 * Throughput of the queue around a test engine of fixed latency (the test engine is the only
 * fake; Postgres, pg-boss and the HTTP app are real). 200 accounts each make 5 requests in turn
 * (provision, refresh, deprovision, provision, refresh), the next once the previous finished:
 * 1,000 operations. Prints the makespan against the ideal for the configured concurrency, then
 * the latency of an idle service: 4 more accounts, one after another, each request once the
 * previous operation ended (queued → started).
 *   BENCH_LATENCY_MS (default 200), BENCH_CONCURRENCY (default 20), BENCH_ACCOUNTS (default 200)
 */
import { startBenchService } from "./benchService";
import { randomBytes, randomUUID } from "node:crypto";
import os from "node:os";
import { TestEngine } from "../src/engine/testEngine";

const latencyMs = Number(process.env.BENCH_LATENCY_MS ?? 200);
const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 20);
const accounts = Number(process.env.BENCH_ACCOUNTS ?? 200);
const idleAccounts = Array.from({ length: 4 }, () => randomUUID());
const steps = ["provision", "refresh", "deprovision", "provision", "refresh"] as const;
const token = randomBytes(24).toString("hex");
const headers = { authorization: `Bearer ${token}` };

async function main() {
  const { svc, stop } = await startBenchService({
    engine: new TestEngine({ latencyMs, eventsPerOperation: 4 }),
    serviceToken: token,
    stackSettings: { controlPlaneCidrs: [] },
    heartbeatTimeoutSeconds: 180,
    workerConcurrency: concurrency,
    pollingIntervalSeconds: 0.5,
  });
  const rssBefore = process.memoryUsage().rss;
  let rssPeak = rssBefore;
  const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, process.memoryUsage().rss)), 200);

  const request = async (account: string, step: (typeof steps)[number]) => {
    const res =
      step === "provision"
        ? await svc.app.inject({
            method: "POST",
            url: "/v1/toolboxes",
            headers,
            payload: { account_id: account },
          })
        : await svc.app.inject({
            method: step === "refresh" ? "POST" : "DELETE",
            url:
              step === "refresh" ? `/v1/toolboxes/${account}/refresh` : `/v1/toolboxes/${account}`,
            headers,
          });
    const opId = res.json<{ operation?: { id: string } }>().operation?.id;
    if (res.statusCode !== 202 || !opId) throw new Error(`${step}: ${res.statusCode} ${res.body}`);
    await finished(opId);
  };

  // One watcher for all clients, so 200 waiting clients do not poll the API and starve the workers.
  const waiters = new Map<string, { resolve: () => void; reject: (e: Error) => void }>();
  const finished = (id: string) =>
    new Promise<void>((resolve, reject) => waiters.set(id, { resolve, reject }));
  let watching = true;
  const watcher = (async () => {
    while (watching) {
      if (waiters.size > 0) {
        const { rows } = await svc.pool.query<{ id: string; status: string; error: string }>(
          "select id, status, error_message as error from toolbox_operations where id = any($1) and status in ('succeeded', 'failed')",
          [[...waiters.keys()]],
        );
        for (const r of rows) {
          const w = waiters.get(r.id)!;
          waiters.delete(r.id);
          if (r.status === "succeeded") w.resolve();
          else w.reject(new Error(`operation ${r.id} failed: ${r.error}`));
        }
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  })();

  const elu = performance.eventLoopUtilization();
  const cpu = process.cpuUsage();
  const started = Date.now();
  await Promise.all(
    Array.from({ length: accounts }, async () => {
      const account = randomUUID();
      for (const step of steps) await request(account, step);
    }),
  );
  const makespan = (Date.now() - started) / 1000;
  const loopBusy = performance.eventLoopUtilization(elu).utilization;
  const cpuUsed = process.cpuUsage(cpu);

  // Latency on an idle service: accounts one after another, each request once the previous ended.
  for (const account of idleAccounts) for (const step of steps) await request(account, step);
  const idle = await svc.pool.query<{ mean: number; max: number }>(
    `select avg(extract(epoch from started_at - created_at)) * 1000 as mean,
            max(extract(epoch from started_at - created_at)) * 1000 as max
     from toolbox_operations where account_id = any($1::uuid[])`,
    [idleAccounts],
  );
  clearInterval(sampler);
  watching = false;
  await watcher;

  const ops = accounts * steps.length;
  const ideal = Math.max(
    (Math.ceil(ops / concurrency) * latencyMs) / 1000,
    (steps.length * latencyMs) / 1000,
  );
  const { rows } = await svc.pool.query<{ wait: number; run: number; claim: number }>(
    `select avg(extract(epoch from o.started_at - o.created_at)) * 1000 as wait,
            avg(extract(epoch from o.finished_at - o.started_at)) * 1000 as run,
            avg(extract(epoch from o.started_at - j.started_on)) * 1000 as claim
     from toolbox_operations o
     left join pgboss.job j on j.name = 'toolbox-operations' and j.data->>'operationId' = o.id::text
     where o.account_id <> all($1::uuid[])`,
    [idleAccounts],
  );
  const overheadMs = ((makespan * concurrency) / ops) * 1000 - latencyMs;
  console.log(`operations           ${ops} (${accounts} accounts × ${steps.length} requests)`);
  console.log(`engine latency       ${latencyMs} ms, worker concurrency ${concurrency}`);
  console.log(`makespan             ${makespan.toFixed(2)} s`);
  console.log(`ideal                ${ideal.toFixed(2)} s`);
  console.log(`makespan / ideal     ${(makespan / ideal).toFixed(3)}× (target ≤ 1.05×)`);
  console.log(
    `queue overhead/op    ${overheadMs.toFixed(1)} ms of slot time beyond the engine's latency`,
  );
  console.log(
    `mean queued → start  ${Number(rows[0]?.wait).toFixed(0)} ms (includes waiting for a free slot)`,
  );
  console.log(
    `mean fetched → start ${Number(rows[0]?.claim).toFixed(0)} ms (pg-boss hands out the job → the attempt has the account)`,
  );
  console.log(
    `mean start → finish  ${Number(rows[0]?.run).toFixed(0)} ms (engine ${latencyMs} ms + bookkeeping)`,
  );
  console.log(
    `idle queued → start  ${Number(idle.rows[0]?.mean).toFixed(0)} ms mean, ${Number(idle.rows[0]?.max).toFixed(0)} ms max (${idleAccounts.length * steps.length} operations one after another, service idle)`,
  );
  console.log(
    `service process      event loop ${(loopBusy * 100).toFixed(0)}% busy, CPU ${((cpuUsed.user + cpuUsed.system) / 1e4 / makespan).toFixed(0)}% of one core (${os.cpus().length} cores, load ${os.loadavg()[0].toFixed(1)})`,
  );
  console.log(
    `RSS                  ${(rssBefore / 2 ** 20).toFixed(0)} MB before, ${(rssPeak / 2 ** 20).toFixed(0)} MB peak`,
  );

  await stop();
}

main().catch((err: Error) => {
  console.error(err);
  process.exit(1);
});
