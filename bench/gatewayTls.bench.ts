/**
 * The gateway over TLS beside plain HTTP, in the same run (issue 10): two toolboxes from their
 * container specs, one backend given a CA-signed certificate, the same http MCP server behind
 * each. Prints figures; asserts nothing.
 *   1. tools/call through /mcp/web on a kept-alive connection: p50/p99 over TLS against plain,
 *      and the backend's CPU per call (the per-request cost of TLS).
 *   2. A new connection per request (GET /health): p50 over TLS against plain, and the backend's
 *      CPU per connection (the handshake's cost).
 *   3. The backend's idle RSS with and without TLS (node:https is loaded only with TLS).
 *
 *   bash scripts/build-test-images.sh && npx tsx bench/gatewayTls.bench.ts
 */
import http from "node:http";
import https from "node:https";
import { Agent, fetch as undiciFetch } from "undici";
import { certificates } from "../plan/certificates";
import { startToolbox, type Toolbox } from "../tests/harness/toolbox";
import {
  addressOn,
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

const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 300);
const LIMITS = {
  MCP_RATE_PER_MINUTE: "1000000",
  MCP_RATE_BURST: "1000000",
  MCP_MAX_INFLIGHT_PER_SERVER: "1000",
};

/** One request on a connection of its own; ms until the answer ended. */
function fresh(url: string, ca?: string): Promise<number> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const done = (res: http.IncomingMessage) => {
      res.resume();
      res.on("end", () => resolve(performance.now() - t0));
    };
    const req = ca
      ? https.get(url, { agent: false, ca, servername: "localhost" }, done)
      : http.get(url, { agent: false }, done);
    req.on("error", reject);
  });
}

async function main(): Promise<void> {
  const boxes: Toolbox[] = [];
  const closers: { close(): Promise<void> }[] = [];
  try {
    const material = certificates();
    const b64 = (s: string) => Buffer.from(s).toString("base64");
    const plain = await startToolbox({ backendEnv: LIMITS });
    boxes.push(plain);
    const secure = await startToolbox({
      backendEnv: LIMITS,
      backendSecretEnv: { TLS_CERT: b64(material.cert), TLS_KEY: b64(material.key) },
    });
    boxes.push(secure);
    // Reached at their addresses on the control network (no userland proxy); the certificate names
    // `localhost`, which the TLS client is told to expect.
    const pinned = new Agent({ connect: { ca: material.ca, servername: "localhost" } });
    closers.push(pinned);
    const tlsFetch = ((url: string, init?: RequestInit) =>
      undiciFetch(url, { ...(init as object), dispatcher: pinned })) as unknown as typeof fetch;
    const urls = boxes.map(
      (b, i) =>
        `${i === 0 ? "http" : "https"}://${addressOn(b.specs.backend.name, b.specs.networks[0].name)}:3000`,
    );
    const fetches = [fetch, tlsFetch];
    for (const [i, box] of boxes.entries()) {
      const res = await fetches[i](`${urls[i]}/v1/servers/web`, {
        method: "PUT",
        headers: {
          authorization: `Bearer ${box.tokens.backendApi}`,
          "content-type": "application/json",
        },
        body: JSON.stringify({
          image: MCP_TOOLS,
          command: ["node", "http.mjs"],
          transport: { type: "http", port: 8080, path: "/mcp" },
        }),
      });
      if (res.status !== 201)
        throw new Error(`deploy on box ${i}: ${res.status} ${await res.text()}`);
    }
    await new Promise((r) => setTimeout(r, 3000));
    const idle = await Promise.all(
      boxes.map((b, i) => rss(urls[i], b.tokens.backendApi, fetches[i])),
    );

    const viaPlain = await connect(`${urls[0]}/mcp/web`, plain.tokens.agentGateway);
    const viaTls = await connect(`${urls[1]}/mcp/web`, secure.tokens.agentGateway, {
      fetch: tlsFetch,
    });
    closers.push(viaPlain, viaTls);
    const securePid = nodePid(secure.specs.backend.name);
    const plainPid = nodePid(plain.specs.backend.name);
    const keptAlive = await compare(viaPlain, viaTls, () => cpuNs(securePid));
    report(
      "1. tools/call echo through /mcp/web on a kept-alive connection",
      "plain HTTP",
      keptAlive,
      "TLS",
    );
    const plainCpu = await compare(viaTls, viaPlain, () => cpuNs(plainPid));
    console.log(
      `  backend CPU per call over plain HTTP: ${(plainCpu.cpuNsPerCall / 1000).toFixed(0)} µs`,
    );

    const rounds = { plain: [] as number[], tls: [] as number[] };
    const cpu = { plain: 0, tls: 0 };
    for (let i = 0; i < CONNECTIONS; i++) {
      let c0 = cpuNs(plainPid);
      rounds.plain.push(await fresh(`${urls[0]}/health`));
      cpu.plain += cpuNs(plainPid) - c0;
      c0 = cpuNs(securePid);
      rounds.tls.push(await fresh(`${urls[1]}/health`, material.ca));
      cpu.tls += cpuNs(securePid) - c0;
    }
    console.log(
      `\n2. a new connection per request, GET /health (${CONNECTIONS} each, interleaved)`,
    );
    console.log(
      `  plain HTTP   p50 ${ms(pct(rounds.plain, 0.5))}  backend CPU ${(cpu.plain / CONNECTIONS / 1000).toFixed(0)} µs per connection`,
    );
    console.log(
      `  TLS          p50 ${ms(pct(rounds.tls, 0.5))}  backend CPU ${(cpu.tls / CONNECTIONS / 1000).toFixed(0)} µs per connection`,
    );
    console.log(
      `  ratio        p50 ${(pct(rounds.tls, 0.5) / pct(rounds.plain, 0.5)).toFixed(2)}×`,
    );

    console.log("\n3. backend resident memory, idle");
    console.log(`  plain HTTP ${mb(idle[0])}, TLS ${mb(idle[1])} (+${mb(idle[1] - idle[0])})`);
  } finally {
    for (const c of closers) await c.close().catch(() => undefined);
    for (const b of boxes) b.remove();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
