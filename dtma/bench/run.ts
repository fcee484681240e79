// DTMA benchmarks: prints figures (no assertions). Runs the built service (`npm run build`) as
// it ships — same node flags as the Dockerfile CMD — against the local Docker daemon.
//   npm run build && npm run bench
import { execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import http from "node:http";
import path from "node:path";
import type { Duplex } from "node:stream";
import { promisify } from "node:util";
import { DtmaClient } from "../src/client";

const exec = promisify(execFile);
// The Dockerfile CMD flags; DTMA_NODE_FLAGS overrides them to compare settings.
const NODE_FLAGS = (
  process.env.DTMA_NODE_FLAGS ?? "--lite-mode --max-semi-space-size=1 --max-old-space-size=64"
).split(" ");
const IMAGE = "agentopia-test/busybox:latest";
const MCP_TOOLS = "agentopia-test/mcp-tools:latest";
const RUN = randomBytes(3).toString("hex");
const SCOPE = `bench${RUN}`;
const NETWORK = `dtma-bench-${RUN}`;
const TOKEN = randomBytes(32).toString("base64url");
const PORT = 31000 + Math.floor(Math.random() * 1000);
const BASE = `http://127.0.0.1:${PORT}`;

const rssMb = (pid: number) =>
  Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) / 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const pct = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))];

async function imageExists(image: string): Promise<boolean> {
  return exec("docker", ["image", "inspect", image]).then(
    () => true,
    () => false,
  );
}

async function call(method: string, p: string, body?: unknown): Promise<number> {
  const res = await fetch(BASE + p, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  await res.arrayBuffer();
  return res.status;
}

/** `connections` keep-alive clients hammering GET /status for `seconds`. */
async function load(seconds: number, connections: number) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  const latencies: number[] = [];
  const end = Date.now() + seconds * 1000;
  const one = () =>
    new Promise<void>((resolve, reject) => {
      const t0 = process.hrtime.bigint();
      http
        .get(`${BASE}/status`, { agent, headers: { authorization: `Bearer ${TOKEN}` } }, (res) => {
          res.resume();
          res.on("end", () => {
            latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
            resolve();
          });
        })
        .on("error", reject);
    });
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (Date.now() < end) await one();
    }),
  );
  agent.destroy();
  return { rps: latencies.length / seconds, p50: pct(latencies, 0.5), p99: pct(latencies, 0.99) };
}

const cpuSeconds = (pid: number) => {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime, in clock ticks
};

/** Request/response over a raw stdio stream: one JSON-RPC request in flight at a time. */
class RoundTrips {
  private buffer = "";
  private waiting: ((line: string) => void) | undefined;
  private reject: ((err: Error) => void) | undefined;
  private failed: Error | undefined;
  private id = 0;

  constructor(private readonly stream: Duplex) {
    // A stream that ends (the process exited, e.g. killed at the memory limit) ends the bench.
    stream.on("close", () => {
      this.failed = new Error("a stdio stream closed during the bench");
      this.waiting = undefined;
      this.reject?.(this.failed);
    });
    stream.on("data", (chunk: Buffer) => {
      this.buffer += chunk.toString("utf8");
      let nl: number;
      while ((nl = this.buffer.indexOf("\n")) >= 0) {
        const line = this.buffer.slice(0, nl);
        this.buffer = this.buffer.slice(nl + 1);
        this.waiting?.(line);
      }
    });
  }

  call(method: string, params: unknown): Promise<string> {
    return new Promise((resolve, reject) => {
      if (this.failed) return reject(this.failed);
      this.waiting = resolve;
      this.reject = reject;
      this.stream.write(`${JSON.stringify({ jsonrpc: "2.0", id: ++this.id, method, params })}\n`);
    });
  }

  async initialize(): Promise<void> {
    await this.call("initialize", {
      protocolVersion: "2025-06-18",
      capabilities: {},
      clientInfo: { name: "dtma-bench", version: "0" },
    });
    this.stream.write(
      `${JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" })}\n`,
    );
  }
}

/** Every stream calls `tool` in a loop for `seconds`; round trips/s, latency, DTMA CPU per call. */
async function roundTrips(
  pid: number,
  streams: RoundTrips[],
  seconds: number,
  args: Record<string, unknown>,
  tool = "echo",
) {
  const latencies: number[] = [];
  const cpu0 = cpuSeconds(pid);
  const end = Date.now() + seconds * 1000;
  await Promise.all(
    streams.map(async (s) => {
      while (Date.now() < end) {
        const t0 = performance.now();
        await s.call("tools/call", { name: tool, arguments: args });
        latencies.push(performance.now() - t0);
      }
    }),
  );
  const cpuUs = ((cpuSeconds(pid) - cpu0) * 1e6) / latencies.length;
  return {
    rps: latencies.length / seconds,
    p50: pct(latencies, 0.5),
    p99: pct(latencies, 0.99),
    cpuUs,
  };
}

const stdioSpec = (extra: Record<string, unknown> = {}) => ({
  image: MCP_TOOLS,
  transport: { type: "stdio" },
  network: "none",
  resources: { memory_mb: 128, pids: 64 },
  ...extra,
});

/**
 * N attachments (one per tool) and `lanes` lanes of one per_session tool, each doing round
 * trips. Every lane is a whole server process within the tool's one memory limit (~45 MB each
 * for this node server), hence 256 MB for the main process and 3 lanes.
 */
async function attachScenario(
  pid: number,
  n: number,
  lanesOpen: number,
  seconds: number,
): Promise<string[]> {
  const client = new DtmaClient({ baseUrl: BASE, token: TOKEN });
  const open: Duplex[] = [];
  const lines: string[] = [];
  const row = (label: string, r: Awaited<ReturnType<typeof roundTrips>>) =>
    `${label}: ${Math.round(r.rps)} round trips/s, p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms, DTMA CPU ${Math.round(r.cpuUs)} µs per round trip, RSS ${rssMb(pid).toFixed(1)} MB`;
  try {
    const attached: RoundTrips[] = [];
    for (let i = 0; i < n; i++) {
      await call("PUT", `/tools/stdio-${i}`, stdioSpec());
      const { stream } = await client.attach(`stdio-${i}`);
      open.push(stream);
      attached.push(new RoundTrips(stream));
    }
    await Promise.all(attached.map((a) => a.initialize()));
    const text = "x".repeat(100);
    lines.push(
      row(
        `attach, ${n} tools x 1 attachment, echo of 100 B`,
        await roundTrips(pid, attached, seconds, { text }),
      ),
    );
    lines.push(
      row(
        `attach, 1 attachment, answers of 256 KiB`,
        await roundTrips(pid, attached.slice(0, 1), seconds, { bytes: 256 * 1024 }, "big"),
      ),
    );

    await call(
      "PUT",
      "/tools/lanes",
      stdioSpec({
        isolation: "per_session",
        max_lanes: lanesOpen,
        resources: { memory_mb: 256, pids: 64 },
      }),
    );
    const lanes: RoundTrips[] = [];
    for (let i = 0; i < lanesOpen; i++) {
      const { stream } = await client.openLane("lanes");
      open.push(stream);
      lanes.push(new RoundTrips(stream));
    }
    await Promise.all(lanes.map((l) => l.initialize()));
    lines.push(
      row(
        `lanes, 1 tool x ${lanesOpen} lanes, echo of 100 B`,
        await roundTrips(pid, lanes, seconds, { text }),
      ),
    );
  } finally {
    for (const s of open) s.destroy();
    client.close();
  }
  return lines;
}

/** RSS now and at its peak (VmHWM) of a process on this host, MB. */
const memoryOf = (pid: number) => {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(status)![1]) / 1024;
  return { rss: kb("VmRSS"), peak: kb("VmHWM") };
};

/**
 * The shipped image under its production limit (--memory 160m, as the container spec declares)
 * with a noisy tool: concurrent log reads of it (twice DTMA_MAX_LOG_READS), 1,000 waits held
 * open, and GET /tools measured throughout. Prints the DTMA's peak RSS, the API's p99 and
 * whether the container survived (no OOM kill, no restart).
 */
async function limitScenario(): Promise<string[]> {
  const image = "agentopia/dtma:dev";
  if (!(await imageExists(image))) return [`limit scenario skipped: ${image} is missing`];
  const name = `dtma-bench-${RUN}-limited`;
  const scope = `${SCOPE}l`;
  const port = PORT + 1;
  const base = `http://127.0.0.1:${port}`;
  const { gid } = await import("node:fs").then((fs) => fs.statSync("/var/run/docker.sock"));
  await exec("docker", [
    "run",
    "-d",
    "--name",
    name,
    "--memory",
    "160m",
    "--memory-swap",
    "160m",
    "--label",
    `agentopia.dtma-scope=${scope}`,
    "-v",
    "/var/run/docker.sock:/var/run/docker.sock",
    "--group-add",
    String(gid),
    "-p",
    `127.0.0.1:${port}:30000`,
    "-e",
    `DTMA_BEARER_TOKEN=${TOKEN}`,
    "-e",
    "AGENTOPIA_API_BASE_URL=http://127.0.0.1:9/api",
    "-e",
    `DTMA_SCOPE=${scope}`,
    "-e",
    `DTMA_TOOL_NETWORK=${NETWORK}l`,
    "-e",
    "LOG_LEVEL=warn",
    ...(process.env.DTMA_BENCH_MALLOC
      ? ["-e", `MALLOC_ARENA_MAX=${process.env.DTMA_BENCH_MALLOC}`]
      : []),
    image,
  ]);
  const lines: string[] = [];
  const headers = { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" };
  try {
    for (let i = 0; i < 100; i++) {
      try {
        if ((await fetch(`${base}/health`)).ok) break;
      } catch {
        await sleep(100);
      }
    }
    // The node process: PID 1 of the container, or docker-init's child with --init.
    const top = Number((await exec("docker", ["inspect", "-f", "{{.State.Pid}}", name])).stdout);
    const comm = readFileSync(`/proc/${top}/comm`, "utf8").trim();
    const pid =
      comm === "docker-init"
        ? Number(readFileSync(`/proc/${top}/task/${top}/children`, "utf8").trim().split(" ")[0])
        : top;
    await sleep(3000);
    const idle = memoryOf(pid).rss;
    // 200 lines of 60 kB (12 MB), then one such line every 50 ms: a tool that never stops talking.
    const script =
      'x=$(head -c 60000 /dev/zero | tr \'\\0\' x); i=0; while [ $i -lt 200 ]; do echo "$i $x"; i=$((i+1)); done; while true; do echo "$x"; sleep 0.05; done';
    const put = await fetch(`${base}/tools/noisy`, {
      method: "PUT",
      headers,
      body: JSON.stringify({
        image: IMAGE,
        command: ["sh", "-c", script],
        transport: { type: "http", port: 8080 },
        network: "none",
      }),
    });
    if (put.status !== 201) throw new Error(`deploy answered ${put.status}: ${await put.text()}`);
    await sleep(3000);

    const agent = new http.Agent({ keepAlive: true, maxSockets: 1100 });
    const get = (path: string) =>
      new Promise<number>((resolve, reject) => {
        http
          .get(base + path, { agent, headers }, (res) => {
            res.resume();
            res.on("end", () => resolve(res.statusCode ?? 0));
          })
          .on("error", reject);
      });
    // DTMA_BENCH_LIMIT=waits|logs runs one half alone, to see what each costs.
    const parts = process.env.DTMA_BENCH_LIMIT ?? "both";
    const waits = Array.from({ length: parts === "logs" ? 0 : 1000 }, () =>
      get("/tools/noisy/wait?state=exited&timeout=25"),
    );
    const end = Date.now() + 15_000;
    const statuses = new Map<number, number>();
    const readers = Array.from({ length: parts === "waits" ? 0 : 8 }, async () => {
      while (Date.now() < end) {
        const status = await get("/tools/noisy/logs?tail=10000");
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
        if (status === 429) await sleep(100);
      }
    });
    const latencies: number[] = [];
    let peak = 0;
    const api = (async () => {
      while (Date.now() < end) {
        const t0 = performance.now();
        await get("/tools");
        latencies.push(performance.now() - t0);
        peak = Math.max(peak, memoryOf(pid).peak);
        await sleep(50);
      }
    })();
    await Promise.all([...readers, api]);
    const waited = await Promise.all(waits);
    agent.destroy();
    const state = JSON.parse(
      (await exec("docker", ["inspect", "-f", "{{json .State}}", name])).stdout,
    ) as {
      Running: boolean;
      OOMKilled: boolean;
    };
    const restarts = (
      await exec("docker", ["inspect", "-f", "{{.RestartCount}}", name])
    ).stdout.trim();
    await sleep(5000);
    lines.push(
      `limit (shipped image, --memory 160m): idle RSS ${idle.toFixed(1)} MB; during 15 s of ${parts === "waits" ? "" : "8 concurrent log reads (tail=10000 of 60 kB lines)"}${parts === "both" ? " + " : ""}${parts === "logs" ? "" : "1,000 waits"}: peak RSS ${Math.max(peak, memoryOf(pid).peak).toFixed(1)} MB, GET /tools p50 ${pct(latencies, 0.5).toFixed(1)} ms, p99 ${pct(latencies, 0.99).toFixed(1)} ms (${latencies.length} calls); 5 s later RSS ${memoryOf(pid).rss.toFixed(1)} MB`,
      `limit: log reads by status ${JSON.stringify(Object.fromEntries(statuses))}; waits answered 200: ${waited.filter((s) => s === 200).length}/1000; container running ${state.Running}, OOM-killed ${state.OOMKilled}, restarts ${restarts}`,
    );
  } finally {
    await exec("docker", ["rm", "-f", name]).catch(() => undefined);
    await removeScope(scope);
  }
  return lines;
}

/** Removes the containers, then the networks, a DTMA scope left. */
async function removeScope(scope: string): Promise<void> {
  for (const kind of [
    ["ps", "-aq"],
    ["network", "ls", "-q"],
  ]) {
    const { stdout } = await exec("docker", [
      ...kind,
      "--filter",
      `label=agentopia.dtma-scope=${scope}`,
    ]);
    const ids = stdout.split("\n").filter(Boolean);
    const rm = kind[0] === "ps" ? ["rm", "-f"] : ["network", "rm"];
    if (ids.length) await exec("docker", [...rm, ...ids]).catch(() => undefined);
  }
}

async function main() {
  // DTMA_BENCH_ONLY=limit: the limit scenario alone (the shipped image under --memory 160m).
  if (process.env.DTMA_BENCH_ONLY === "limit") {
    for (const line of await limitScenario()) console.log(line);
    return;
  }
  const entry = path.join(__dirname, "..", "dist", "main.js");
  // `compiled` resolves the workspace packages to their built JavaScript, as in the image.
  const child = spawn(process.execPath, ["--conditions=compiled", ...NODE_FLAGS, entry], {
    env: {
      ...process.env,
      PORT: String(PORT),
      HOST: "127.0.0.1",
      DTMA_BEARER_TOKEN: TOKEN,
      AGENTOPIA_API_BASE_URL: "http://127.0.0.1:9/api",
      DTMA_TOOL_NETWORK: NETWORK,
      DTMA_SCOPE: SCOPE,
      LOG_LEVEL: "warn",
      DTMA_STATUS_REFRESH_SECONDS: "5",
    },
    stdio: ["ignore", "ignore", "inherit"],
  });
  const pid = child.pid!;
  try {
    for (let i = 0; i < 100; i++) {
      try {
        if ((await fetch(`${BASE}/health`)).ok) break;
      } catch {
        await sleep(100);
      }
    }
    await sleep(3000);
    const idle = rssMb(pid);

    // Deploy latency against `docker run -d` with the same sandbox flags, interleaved.
    const dtma: number[] = [];
    const docker: number[] = [];
    for (let i = 0; i < 8; i++) {
      let t = performance.now();
      const status = await call("PUT", `/tools/lat-${i}`, {
        image: IMAGE,
        command: ["sleep", "3600"],
        transport: { type: "stdio" },
      });
      dtma.push(performance.now() - t);
      if (status !== 201) throw new Error(`deploy answered ${status}`);
      t = performance.now();
      // The DTMA gives each egress tool its own network (decision 0026): so does the baseline.
      await exec("docker", [
        "network",
        "create",
        "--label",
        `agentopia.dtma-scope=${SCOPE}`,
        `${NETWORK}-run-${i}`,
      ]);
      await exec("docker", [
        "run",
        "-d",
        "--name",
        `dtma-bench-${RUN}-run-${i}`,
        "--label",
        `agentopia.dtma-scope=${SCOPE}`,
        "--network",
        `${NETWORK}-run-${i}`,
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges:true",
        "--read-only",
        "--tmpfs",
        "/tmp",
        "--memory",
        "256m",
        "--cpus",
        "1",
        "--pids-limit",
        "256",
        "--init",
        "--restart",
        "unless-stopped",
        IMAGE,
        "sleep",
        "3600",
      ]);
      docker.push(performance.now() - t);
    }
    for (let i = 0; i < 8; i++) await call("DELETE", `/tools/lat-${i}`);

    const results: string[] = [];
    for (const tools of [0, 20]) {
      for (let i = 0; i < tools; i++) {
        await call("PUT", `/tools/status-${i}`, {
          image: IMAGE,
          command: ["sleep", "3600"],
          transport: { type: "stdio" },
        });
      }
      await sleep(6000); // one background sample with the tools in it
      const r = await load(10, 10);
      results.push(
        `GET /status, ${String(tools).padStart(2)} tools, 10 connections: ${Math.round(r.rps)} req/s, p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms`,
      );
    }
    const afterStatus = rssMb(pid);
    const attach = (await imageExists(MCP_TOOLS))
      ? await attachScenario(pid, 4, 3, 10)
      : [`attach scenario skipped: image ${MCP_TOOLS} is missing (scripts/build-test-images.sh)`];
    const afterLoad = rssMb(pid);
    await sleep(5000);
    const settled = rssMb(pid);
    const limited = await limitScenario();

    console.log(
      `DTMA benchmarks (node ${process.version}, flags ${NODE_FLAGS.join(" ")}, ${new Date().toISOString()})`,
    );
    console.log(`RSS idle: ${idle.toFixed(1)} MB (target <= 60)`);
    console.log(
      `RSS after load: ${afterLoad.toFixed(1)} MB (after /status load ${afterStatus.toFixed(1)} MB), 5 s later ${settled.toFixed(1)} MB (target <= 80)`,
    );
    console.log(
      `deploy latency, median of 8: DTMA ${median(dtma).toFixed(0)} ms, docker run -d ${median(docker).toFixed(0)} ms, ratio ${(median(dtma) / median(docker)).toFixed(2)}x (target <= 1.0)`,
    );
    for (const line of [...results, ...attach, ...limited]) console.log(line);
  } finally {
    child.kill("SIGTERM");
    await removeScope(SCOPE);
    await exec("docker", ["network", "rm", NETWORK]).catch(() => undefined);
  }
}

void main();
