/**
 * Toolbox gateway benchmarks on the real Docker daemon, with the DTMA and backend images started
 * from their container specs (the droplet in a box). Prints figures; asserts nothing.
 *   1. Tool-call latency through /mcp/:server against calling the same http server directly, in
 *      the same run (interleaved rounds), p50 and p99 as ratios (target p50 ≤ 1.2×, p99 ≤ 1.5×).
 *   2. A stdio server through the bridge (DTMA attachment + lane) against `docker run -i` with
 *      the SDK's stdio client (the Docker CLI's own attach), same rounds.
 *   3. 100 concurrent sessions on one stdio server: throughput, p99, backend RSS per session
 *      (target ≤ 100 KB) and misrouted answers (target 0).
 *   4. Backend idle RSS (target ≤ 60 MB) and DTMA + backend idle and after the load (≤ 130 MB).
 *
 *   bash scripts/build-test-images.sh && npx tsx bench/gateway.bench.ts
 *   BACKEND_NODE_FLAGS="--lite-mode" npx tsx bench/gateway.bench.ts   # compare node flags
 */
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { DTMA_PORT } from "../components/containerSpecs";
import { docker } from "../tests/harness/dockerCli";
import { startToolbox, type Toolbox } from "../tests/harness/toolbox";
import {
  addressOn,
  backendImage,
  compare,
  connect,
  cpuNs,
  mb,
  MCP_TOOLS,
  ms,
  nodePid,
  pct,
  report,
  rss,
} from "./gatewayKit";

const SESSIONS = 100;
const CALLS_PER_SESSION = 20;

async function main(): Promise<void> {
  let box: Toolbox | undefined;
  const clients: Client[] = [];
  try {
    // The per-token rate limit and the in-flight cap would measure themselves, not the gateway.
    box = await startToolbox({
      backendImage: backendImage(),
      backendEnv: {
        MCP_RATE_PER_MINUTE: "1000000",
        MCP_RATE_BURST: "1000000",
        MCP_MAX_INFLIGHT_PER_SERVER: "1000",
      },
    });
    const { tokens, specs, toolNetwork } = box;
    // Agents reach the backend at its address on the control network, as the direct client
    // reaches the server at its address on its own network: the published loopback port would
    // add Docker's userland proxy to one side only.
    const backendUrl = `http://${addressOn(specs.backend.name, specs.networks[0].name)}:3000`;
    const api = (method: string, path: string, body?: unknown) =>
      fetch(backendUrl + path, {
        method,
        headers: {
          authorization: `Bearer ${tokens.backendApi}`,
          "content-type": "application/json",
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      }).then(async (r) => ({
        status: r.status,
        body: (await r.json()) as Record<string, unknown>,
      }));
    for (const [name, spec] of [
      [
        "web",
        {
          image: MCP_TOOLS,
          command: ["node", "http.mjs"],
          transport: { type: "http", port: 8080, path: "/mcp" },
        },
      ],
      ["tools", { image: MCP_TOOLS, transport: { type: "stdio" } }],
    ] as const) {
      const res = await api("PUT", `/v1/servers/${name}`, spec);
      if (res.status !== 201)
        throw new Error(`deploy ${name}: ${res.status} ${JSON.stringify(res.body)}`);
    }
    const dtmaUrl = `http://${addressOn(specs.dtma.name, specs.networks[0].name)}:${DTMA_PORT}`;
    const webIp = addressOn(
      docker([
        "ps",
        "-q",
        "--filter",
        `network=${toolNetwork}.web`,
        "--filter",
        "label=agentopia.tool-name=web",
      ]),
      `${toolNetwork}.web`,
    );
    await new Promise((r) => setTimeout(r, 3000));
    const idle = {
      backend: await rss(backendUrl, tokens.backendApi),
      dtma: await rss(dtmaUrl, tokens.dtma),
    };

    // 1. http server: direct vs through /mcp/web.
    const direct = await connect(`http://${webIp}:8080/mcp`);
    const viaWeb = await connect(`${backendUrl}/mcp/web`, tokens.agentGateway);
    clients.push(direct, viaWeb);
    const backendPid = nodePid(specs.backend.name);
    const cpu = () => cpuNs(backendPid);
    report(
      "1. http MCP server, tools/call echo",
      "direct (tool network)",
      await compare(direct, viaWeb, cpu),
    );

    // 2. stdio server: `docker run -i` with the SDK's stdio client vs through /mcp/tools.
    const stdioDirect = new Client({ name: "gateway-bench", version: "1.0.0" });
    await stdioDirect.connect(
      new StdioClientTransport({
        command: "docker",
        args: ["run", "-i", "--rm", "--network", "none", MCP_TOOLS],
      }),
    );
    const viaTools = await connect(`${backendUrl}/mcp/tools`, tokens.agentGateway);
    clients.push(stdioDirect, viaTools);
    report(
      "2. stdio MCP server, tools/call echo",
      "docker run -i (SDK stdio client)",
      await compare(stdioDirect, viaTools, cpu),
    );

    // 3. 100 concurrent sessions on one stdio server.
    const beforeSessions = await rss(backendUrl, tokens.backendApi);
    const sessions = await Promise.all(
      Array.from({ length: SESSIONS }, () =>
        connect(`${backendUrl}/mcp/tools`, tokens.agentGateway),
      ),
    );
    clients.push(...sessions);
    await new Promise((r) => setTimeout(r, 1000));
    const afterOpen = await rss(backendUrl, tokens.backendApi);
    let misrouted = 0;
    const latencies: number[] = [];
    const t0 = performance.now();
    await Promise.all(
      sessions.map(async (client, s) => {
        for (let i = 0; i < CALLS_PER_SESSION; i++) {
          const text = `s${s}-c${i}`;
          const c0 = performance.now();
          const result = await client.callTool({ name: "echo", arguments: { text } });
          latencies.push(performance.now() - c0);
          const got = (result.content as { text: string }[])[0]?.text;
          if (got !== text) misrouted++;
        }
      }),
    );
    const wall = (performance.now() - t0) / 1000;
    const after = {
      backend: await rss(backendUrl, tokens.backendApi),
      dtma: await rss(dtmaUrl, tokens.dtma),
    };
    console.log(
      `\n3. ${SESSIONS} concurrent sessions on one stdio server, ${CALLS_PER_SESSION} calls each`,
    );
    console.log(
      `  throughput ${(latencies.length / wall).toFixed(0)} calls/s, p50 ${ms(pct(latencies, 0.5))}, p99 ${ms(pct(latencies, 0.99))}`,
    );
    console.log(
      `  backend RSS per open session ${((afterOpen - beforeSessions) / SESSIONS / 1024).toFixed(1)} KB (target ≤ 100 KB)`,
    );
    console.log(`  misrouted answers ${misrouted} of ${latencies.length} (target 0)`);

    console.log("\n4. resident memory (process_resident_memory_bytes from each /metrics)");
    console.log(
      `  backend idle ${mb(idle.backend)} (target ≤ 60 MB), after load ${mb(after.backend)}`,
    );
    console.log(`  DTMA idle ${mb(idle.dtma)}, after load ${mb(after.dtma)}`);
    console.log(
      `  DTMA + backend idle ${mb(idle.backend + idle.dtma)}, after load ${mb(after.backend + after.dtma)} (target ≤ 130 MB)`,
    );
  } finally {
    for (const c of clients) await c.close().catch(() => undefined);
    box?.remove();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
