/**
 * What the gateway benchmarks share: the backend image (optionally with other node flags),
 * clients, timed calls in interleaved rounds, percentiles, and the backend's CPU time and RSS.
 */
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import {
  StreamableHTTPClientTransport,
  type StreamableHTTPClientTransportOptions,
} from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { docker } from "../tests/harness/dockerCli";

export const MCP_TOOLS = "agentopia-test/mcp-tools:latest";
const BACKEND_IMAGE = "agentopia/backend:dev";

/** The shipped image, or one derived from it that runs node with other flags. */
export function backendImage(): string {
  const flags = process.env.BACKEND_NODE_FLAGS;
  if (flags === undefined) return BACKEND_IMAGE;
  const cmd = [
    "node",
    "--conditions=compiled",
    ...flags.split(" ").filter(Boolean),
    "dist/main.js",
  ];
  execFileSync("docker", ["build", "-q", "-t", "agentopia/backend:bench-flags", "-"], {
    input: `FROM ${BACKEND_IMAGE}\nCMD ${JSON.stringify(cmd)}\n`,
    stdio: ["pipe", "ignore", "inherit"],
  });
  console.log(`backend node flags: ${flags}`);
  return "agentopia/backend:bench-flags";
}
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 8);
const CALLS_PER_ROUND = Number(process.env.BENCH_CALLS ?? 150);

export const pct = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))];
export const ms = (n: number) => `${n.toFixed(2)} ms`;
export const mb = (bytes: number) => `${(bytes / 1048576).toFixed(1)} MB`;

/** The node process of a container (its PID 1 is Docker's init). */
export function nodePid(container: string): number {
  const init = docker(["inspect", "--format", "{{.State.Pid}}", container]);
  return Number(execFileSync("pgrep", ["-P", init], { encoding: "utf8" }).trim().split("\n")[0]);
}

/** CPU time of every thread of a process, in ns (schedstat's first field). */
export function cpuNs(pid: number): number {
  let total = 0;
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    total += Number(readFileSync(`/proc/${pid}/task/${task}/schedstat`, "utf8").split(" ")[0]);
  }
  return total;
}

export async function rss(
  url: string,
  token: string,
  fetchImpl: typeof fetch = fetch,
): Promise<number> {
  const text = await (
    await fetchImpl(`${url}/metrics`, { headers: { authorization: `Bearer ${token}` } })
  ).text();
  return Number(/^process_resident_memory_bytes (\d+)/m.exec(text)?.[1] ?? NaN);
}

export async function connect(
  url: string,
  token?: string,
  extra: StreamableHTTPClientTransportOptions = {},
): Promise<Client> {
  const client = new Client({ name: "gateway-bench", version: "1.0.0" });
  await client.connect(
    new StreamableHTTPClientTransport(new URL(url), {
      ...extra,
      ...(token ? { requestInit: { headers: { authorization: `Bearer ${token}` } } } : {}),
    }),
  );
  return client;
}

/** A container's address on one of its networks. */
export function addressOn(container: string, network: string): string {
  return docker([
    "inspect",
    "--format",
    `{{(index .NetworkSettings.Networks "${network}").IPAddress}}`,
    container,
  ]);
}

/** `calls` sequential echo calls; latency of each in ms. */
async function timed(client: Client, calls: number, tag: string): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < calls; i++) {
    const t0 = performance.now();
    await client.callTool({ name: "echo", arguments: { text: `${tag}-${i}` } });
    out.push(performance.now() - t0);
  }
  return out;
}

/**
 * Interleaved rounds of A and B, so machine noise falls on both alike; `cpu` counts the
 * backend's CPU time during B's rounds (robust where latency is not, on a shared machine).
 */
export async function compare(
  a: Client,
  b: Client,
  cpu: () => number,
): Promise<{ a: number[]; b: number[]; cpuNsPerCall: number }> {
  await timed(a, 100, "warm");
  await timed(b, 100, "warm");
  const res = { a: [] as number[], b: [] as number[], cpuNsPerCall: 0 };
  let spent = 0;
  for (let r = 0; r < ROUNDS; r++) {
    res.a.push(...(await timed(a, CALLS_PER_ROUND, "a")));
    const before = cpu();
    res.b.push(...(await timed(b, CALLS_PER_ROUND, "b")));
    spent += cpu() - before;
  }
  res.cpuNsPerCall = spent / res.b.length;
  return res;
}

export function report(
  title: string,
  baseline: string,
  { a: base, b: via, cpuNsPerCall }: { a: number[]; b: number[]; cpuNsPerCall: number },
  viaLabel = "through the gateway",
): void {
  const p50 = [pct(base, 0.5), pct(via, 0.5)];
  const p99 = [pct(base, 0.99), pct(via, 0.99)];
  console.log(`\n${title} (${base.length} calls each, ${ROUNDS} interleaved rounds)`);
  console.log(`  ${baseline.padEnd(34)} p50 ${ms(p50[0])}  p99 ${ms(p99[0])}`);
  console.log(`  ${viaLabel.padEnd(34)} p50 ${ms(p50[1])}  p99 ${ms(p99[1])}`);
  console.log(
    `  ratio                              p50 ${(p50[1] / p50[0]).toFixed(2)}×  p99 ${(p99[1] / p99[0]).toFixed(2)}×`,
  );
  console.log(`  backend CPU per call ${viaLabel}: ${(cpuNsPerCall / 1000).toFixed(0)} µs`);
}
