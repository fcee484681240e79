/**
 * Operations' event streams with many listeners (issue 13, item 9): the service's RSS and the
 * Postgres transactions it causes, with no stream, with BENCH_LISTENERS streams open and idle,
 * when one event reaches them all, and after they have ended. The listeners run in a child
 * process (their sockets and buffers are not the service's); the service, its pool and the
 * embedded PostgreSQL are real, its workers are off (the bench writes events as a worker would).
 *   BENCH_LISTENERS (default 1500), BENCH_OPERATIONS (default 150), BENCH_IDLE_S (default 10)
 * Run with --expose-gc (npm run bench does) to also print the RSS after a full collection.
 */
import { fork } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { Pool } from "pg";

const listeners = Number(process.env.BENCH_LISTENERS ?? 1500);
const operations = Number(process.env.BENCH_OPERATIONS ?? 150);
const idleSeconds = Number(process.env.BENCH_IDLE_S ?? 10);
const mb = (n: number) => `${(n / 2 ** 20).toFixed(1)} MB`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type FromClients =
  | { kind: "opened"; ok: number; failed: number }
  | { kind: "events"; count: number }
  | { kind: "ended"; count: number };

/** The child: opens the streams and reports how many got how many events, and when they end. */
function clients(base: string, token: string, ids: string[]): void {
  let ok = 0;
  let failed = 0;
  let ended = 0;
  const counts: number[] = [];
  let reported = 0;
  const report = () => {
    const min = Math.min(...counts);
    if (min > reported) {
      reported = min;
      process.send!({ kind: "events", count: min } satisfies FromClients);
    }
  };
  for (let i = 0; i < listeners; i++) {
    counts.push(0);
    const req = http.get(
      `${base}/v1/operations/${ids[i % ids.length]}/events`,
      { headers: { authorization: `Bearer ${token}` }, agent: false },
      (res) => {
        if (res.statusCode === 200) ok++;
        else failed++;
        if (ok + failed === listeners) process.send!({ kind: "opened", ok, failed });
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          counts[i] += chunk.split("\nevent: ").length - 1 + (chunk.startsWith("event: ") ? 1 : 0);
          report();
        });
        res.on("close", () => {
          if (++ended === listeners) process.send!({ kind: "ended", count: ended });
        });
      },
    );
    req.on("error", () => {
      failed++;
      ended++;
    });
  }
}

async function main() {
  // Loaded here, not at the top: the child process needs none of it.
  const { startBenchService } = await import("./benchService");
  const { TestEngine } = await import("../src/engine/testEngine");

  const token = randomBytes(24).toString("hex");
  const { svc, databaseUrl, stop } = await startBenchService({
    engine: new TestEngine(),
    serviceToken: token,
    heartbeatTimeoutSeconds: 180,
    workerConcurrency: 0,
    queue: { superviseIntervalSeconds: 60 },
    eventStreamsPerService: listeners,
  });
  await svc.app.listen({ port: 0, host: "127.0.0.1" });
  const base = `http://127.0.0.1:${(svc.app.server.address() as AddressInfo).port}`;

  // Operations that stay queued (no worker), one per account.
  const ids: string[] = [];
  for (let i = 0; i < operations; i++) {
    const res = await svc.app.inject({
      method: "POST",
      url: "/v1/toolboxes",
      headers: { authorization: `Bearer ${token}` },
      payload: { account_id: randomUUID() },
    });
    ids.push(res.json<{ operation: { id: string } }>().operation.id);
  }

  // Two counts: the queries the API's pool sends, and Postgres's own count of transactions on
  // the database (every query outside a transaction is one). A backend reports its counts up to
  // 10 s after it went idle, so each window starts 11 s after the work before it.
  let queries = 0;
  const query = svc.pool.query.bind(svc.pool) as (...args: unknown[]) => unknown;
  (svc.pool as unknown as { query: (...args: unknown[]) => unknown }).query = (...args) => {
    queries++;
    return query(...args);
  };
  const stats = new Pool({ connectionString: databaseUrl, max: 1 });
  const transactions = async () => {
    const { rows } = await stats.query<{ n: string }>(
      "select xact_commit + xact_rollback as n from pg_stat_database where datname = current_database()",
    );
    return Number(rows[0].n);
  };
  const rate = async (seconds: number) => {
    await sleep(11_000);
    const [t0, q0] = [await transactions(), queries];
    await sleep(seconds * 1000);
    // Less this measurement's own transactions (one each way).
    return { tx: ((await transactions()) - t0 - 1) / seconds, queries: (queries - q0) / seconds };
  };
  let rssPeak = process.memoryUsage().rss;
  const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, process.memoryUsage().rss)), 100);
  const gc = (globalThis as { gc?: () => void }).gc;

  const txIdle = await rate(idleSeconds);
  const rssIdle = process.memoryUsage().rss;
  const heapIdle = process.memoryUsage().heapUsed;

  const child = fork(__filename, ["--clients", base, token, ...ids], {
    execArgv: ["--import", "tsx"],
  });
  const next = (kind: FromClients["kind"], count?: number) =>
    new Promise<FromClients>((resolve) => {
      const on = (m: FromClients) => {
        if (m.kind === kind && (count === undefined || ("count" in m && m.count >= count))) {
          child.off("message", on);
          resolve(m);
        }
      };
      child.on("message", on);
    });
  const t0 = Date.now();
  const opened = (await next("opened")) as { ok: number; failed: number };
  await next("events", 1);
  const openMs = Date.now() - t0;
  const rssOpen = process.memoryUsage().rss;
  const txOpen = await rate(idleSeconds);
  const rssAfterIdle = process.memoryUsage().rss;
  const heapOpen = process.memoryUsage().heapUsed;

  const writer = new Pool({ connectionString: databaseUrl, max: 4 });
  const sent = Date.now();
  await Promise.all(
    ids.map((id) =>
      writer.query(
        "insert into toolbox_operation_events (operation_id, type, message) values ($1, 'resourcePreEvent', 'bench')",
        [id],
      ),
    ),
  );
  await next("events", 2);
  const deliveryMs = Date.now() - sent;

  await writer.query(
    "update toolbox_operations set status = 'succeeded', finished_at = now() where id = any($1)",
    [ids],
  );
  await next("ended");
  await sleep(5000);
  const rssEnded = process.memoryUsage().rss;
  gc?.();
  await sleep(500);
  const rssGc = gc ? process.memoryUsage().rss : undefined;
  const heapEnded = process.memoryUsage().heapUsed;
  clearInterval(sampler);
  child.kill();

  console.log(
    `event streams: ${opened.ok} listeners open (${opened.failed} refused) on ${operations} operations, in ${openMs} ms`,
  );
  console.log(
    `  per second over ${idleSeconds} s: ${txIdle.queries.toFixed(1)} queries of the API's pool and ${txIdle.tx.toFixed(1)} Postgres transactions with no stream; ${txOpen.queries.toFixed(1)} and ${txOpen.tx.toFixed(1)} with ${opened.ok} idle streams`,
  );
  console.log(`  one event on each operation reached every listener in ${deliveryMs} ms`);
  console.log(
    `  service RSS: ${mb(rssIdle)} before, ${mb(rssOpen)} once open, ${mb(rssAfterIdle)} after ${11 + idleSeconds} s idle, peak ${mb(rssPeak)}, ${mb(rssEnded)} 5 s after they ended${rssGc ? `, ${mb(rssGc)} after a full GC` : ""}`,
  );
  console.log(
    `  service heap used: ${mb(heapIdle)} before, ${mb(heapOpen)} with the streams idle, ${mb(heapEnded)} after they ended${gc ? " and a full GC" : ""}`,
  );
  await writer.end();
  await stats.end();
  await stop();
}

if (process.argv[2] === "--clients") {
  const [base, token, ...ids] = process.argv.slice(3);
  clients(base, token, ids);
} else {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
