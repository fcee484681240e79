/**
 * Upgrade makespan (issue 11): 1,000 toolboxes through a health-gated upgrade in waves, with a
 * test engine of fixed latency (the only fake; Postgres, pg-boss, the HTTP app, the driver and
 * the backends' /status over loopback HTTP are real) and simulated heartbeats a fixed delay after
 * each deployment. Prints the makespan against the ideal: for each wave, ceil(wave / slots) x
 * latency for its ups plus the heartbeat delay for its last toolbox to prove its health.
 *   BENCH_TOOLBOXES (1000), BENCH_LATENCY_MS (1000), BENCH_CONCURRENCY (20),
 *   BENCH_HEARTBEAT_DELAY_MS (200), BENCH_CANARIES (10), BENCH_WAVES ("1,10,50,100")
 */
import { startBenchService } from "./benchService";
import { randomBytes, randomUUID } from "node:crypto";
import os from "node:os";
import { TestEngine } from "../src/engine/testEngine";
import { SimulatedFleet } from "../test/fixtures/simulatedFleet";

const toolboxes = Number(process.env.BENCH_TOOLBOXES ?? 1000);
const latencyMs = Number(process.env.BENCH_LATENCY_MS ?? 1000);
const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 20);
const heartbeatDelayMs = Number(process.env.BENCH_HEARTBEAT_DELAY_MS ?? 200);
const canaries = Number(process.env.BENCH_CANARIES ?? 10);
const waves = (process.env.BENCH_WAVES ?? "1,10,50,100").split(",").map(Number);
const token = randomBytes(24).toString("hex");
const headers = { authorization: `Bearer ${token}` };

async function until<T>(what: string, check: () => Promise<T | undefined>, ms = 600_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function main() {
  const sim = new SimulatedFleet({ serviceToken: token, heartbeatDelayMs, pollMs: 20 });
  await sim.listen();
  let provisioning = true;
  const engine = new TestEngine({
    latencyMs,
    // Provisioning is set-up, not measured: it takes no time.
    latencyFor: () => (provisioning ? 0 : undefined),
    eventsPerOperation: 4,
    backendUrlFor: sim.backendUrlFor,
  });
  const { svc, stop } = await startBenchService({
    engine,
    serviceToken: token,
    stackSettings: { controlPlaneCidrs: [] },
    heartbeatTimeoutSeconds: 3600,
    workerConcurrency: concurrency,
    pollingIntervalSeconds: 0.5,
    driverPollMs: 100,
  });
  sim.attach(svc.app, svc.pool);
  const started = Date.now();
  for (let i = 0; i < toolboxes; i += 100) {
    await Promise.all(
      Array.from({ length: Math.min(100, toolboxes - i) }, () =>
        svc.app.inject({
          method: "POST",
          url: "/v1/toolboxes",
          headers,
          payload: { account_id: randomUUID() },
        }),
      ),
    );
  }
  await until("every toolbox active", async () => {
    const { rows } = await svc.pool.query<{ n: number }>(
      "select count(*)::int as n from account_tool_environments where status = 'active'",
    );
    return rows[0].n === toolboxes ? true : undefined;
  });
  console.log(
    `set-up               ${toolboxes} toolboxes provisioned and active in ${((Date.now() - started) / 1000).toFixed(1)} s`,
  );
  provisioning = false;

  const rssBefore = process.memoryUsage().rss;
  let rssPeak = rssBefore;
  const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, process.memoryUsage().rss)), 200);
  const cpu = process.cpuUsage();
  const t0 = Date.now();
  const res = await svc.app.inject({
    method: "POST",
    url: "/v1/upgrades",
    headers,
    payload: {
      dtma_image: "agentopia/dtma:v2",
      backend_image: "agentopia/backend:v2",
      canary_count: canaries,
      waves,
      max_failure_ratio: 0.05,
      health_deadline_seconds: 600,
    },
  });
  const id = res.json<{ upgrade: { id: string } }>().upgrade.id;
  const done = await until("the upgrade", async () => {
    const { rows } = await svc.pool.query<{ status: string; finished_at: Date | null }>(
      "select status, finished_at from fleet_operations where id = $1",
      [id],
    );
    return rows[0].finished_at ? rows[0] : undefined;
  });
  const makespan = (Date.now() - t0) / 1000;
  const cpuUsed = process.cpuUsage(cpu);
  clearInterval(sampler);

  const { rows: sizes } = await svc.pool.query<{
    wave: number;
    n: number;
    started: Date;
    ended: Date;
  }>(
    `select wave, count(*)::int as n, min(started_at) as started, max(finished_at) as ended
     from fleet_upgrade_targets where upgrade_id = $1 group by wave order by wave`,
    [id],
  );
  const { rows: states } = await svc.pool.query<{ state: string; n: number }>(
    "select state, count(*)::int as n from fleet_upgrade_targets where upgrade_id = $1 group by state",
    [id],
  );
  const perWave = sizes.map((w) => Math.ceil(w.n / concurrency) * latencyMs + heartbeatDelayMs);
  const ideal = perWave.reduce((a, b) => a + b, 0) / 1000;
  console.log(
    `toolboxes            ${toolboxes}, canaries ${canaries}, waves ${waves.join("/")} % of the rest`,
  );
  console.log(
    `engine latency       ${latencyMs} ms, worker slots ${concurrency}, heartbeat ${heartbeatDelayMs} ms after deployment`,
  );
  console.log(
    `outcome              ${done.status}: ${states.map((s) => `${s.n} ${s.state}`).join(", ")}`,
  );
  for (const [i, w] of sizes.entries()) {
    const took = (w.ended.getTime() - w.started.getTime()) / 1000;
    console.log(
      `wave ${w.wave}               ${String(w.n).padStart(4)} toolboxes: ${took.toFixed(2)} s (ideal ${(perWave[i] / 1000).toFixed(2)} s)`,
    );
  }
  console.log(`makespan             ${makespan.toFixed(2)} s`);
  console.log(
    `ideal                ${ideal.toFixed(2)} s (sum over waves of ceil(n / slots) x latency + heartbeat delay)`,
  );
  console.log(`makespan / ideal     ${(makespan / ideal).toFixed(3)}x (target <= 1.1x)`);
  console.log(
    `heartbeats, /status  ${sim.heartbeats} accepted, ${sim.statusCalls} backend /status answered`,
  );
  console.log(
    `service process      CPU ${((cpuUsed.user + cpuUsed.system) / 1e4 / makespan).toFixed(0)}% of one core (${os.cpus().length} cores, load ${os.loadavg()[0].toFixed(1)}); RSS ${(rssBefore / 2 ** 20).toFixed(0)} MB before, ${(rssPeak / 2 ** 20).toFixed(0)} MB peak`,
  );
  await sim.close();
  await stop();
}

main().catch((err: Error) => {
  console.error(err);
  process.exit(1);
});
