// DTMA benchmarks: prints figures (no assertions). Runs the built service (`npm run build`) as
// it ships — same node flags as the Dockerfile CMD — against the local Docker daemon.
//   npm run build && npm run bench
import { execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import http from "node:http";
import path from "node:path";
import { promisify } from "node:util";

const exec = promisify(execFile);
// The Dockerfile CMD flags; DTMA_NODE_FLAGS overrides them to compare settings.
const NODE_FLAGS = (
  process.env.DTMA_NODE_FLAGS ?? "--lite-mode --max-semi-space-size=1 --max-old-space-size=64"
).split(" ");
const IMAGE = "agentopia-test/busybox:latest";
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

async function main() {
  const entry = path.join(__dirname, "..", "dist", "main.js");
  const child = spawn(process.execPath, [...NODE_FLAGS, entry], {
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
      await exec("docker", [
        "run",
        "-d",
        "--name",
        `dtma-bench-${RUN}-run-${i}`,
        "--label",
        `agentopia.dtma-scope=${SCOPE}`,
        "--network",
        NETWORK,
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
    const afterLoad = rssMb(pid);
    await sleep(5000);
    const settled = rssMb(pid);

    console.log(
      `DTMA benchmarks (node ${process.version}, flags ${NODE_FLAGS.join(" ")}, ${new Date().toISOString()})`,
    );
    console.log(`RSS idle: ${idle.toFixed(1)} MB (target <= 60)`);
    console.log(
      `RSS after load: ${afterLoad.toFixed(1)} MB, 5 s later ${settled.toFixed(1)} MB (target <= 80)`,
    );
    console.log(
      `deploy latency, median of 8: DTMA ${median(dtma).toFixed(0)} ms, docker run -d ${median(docker).toFixed(0)} ms, ratio ${(median(dtma) / median(docker)).toFixed(2)}x (target <= 1.0)`,
    );
    for (const line of results) console.log(line);
  } finally {
    child.kill("SIGTERM");
    const { stdout } = await exec("docker", [
      "ps",
      "-aq",
      "--filter",
      `label=agentopia.dtma-scope=${SCOPE}`,
    ]);
    const ids = stdout.split("\n").filter(Boolean);
    if (ids.length) await exec("docker", ["rm", "-f", ...ids]);
    await exec("docker", ["network", "rm", NETWORK]).catch(() => undefined);
  }
}

void main();
