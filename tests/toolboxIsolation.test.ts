/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-explicit-any -- tests read Docker's JSON loosely */
/**
 * Issue 13, item 4, on the real daemon: the DTMA and backend images started from their specs,
 * two http MCP servers deployed through the backend (so the gateway reached each: a deploy
 * answers only after an MCP initialize through it), then one tool probes everything it must not
 * reach. A tool reaches the outside world and is reached by the gateway: never another tool,
 * the DTMA, or the backend's other networks.
 */
import assert from "node:assert/strict";
import { dtmaScopeFor } from "@agentopia-toolboxes/contract";
import { docker, DTMA_TEST_IMAGE } from "./harness/dockerCli";
import { BACKEND_TEST_IMAGE, imagePresent, startToolbox, type Toolbox } from "./harness/toolbox";

const MCP_TOOLS = "agentopia-test/mcp-tools:latest";

type Json = Record<string, any>;

/** Tries a TCP connection to each target from inside `container`: "open" or the error's code. */
function probe(container: string, targets: [string, number][]): Record<string, string> {
  const script = `
const net = require("node:net");
const targets = ${JSON.stringify(targets)};
Promise.all(targets.map(([host, port]) => new Promise((resolve) => {
  const s = net.connect({ host, port, timeout: 2000 });
  s.on("connect", () => { s.destroy(); resolve("open"); });
  s.on("timeout", () => { s.destroy(); resolve("timeout"); });
  s.on("error", (e) => resolve(e.code || e.message));
}))).then((r) => console.log(JSON.stringify(r)));`;
  const out = JSON.parse(docker(["exec", container, "node", "-e", script])) as string[];
  return Object.fromEntries(targets.map(([h, p], i) => [`${h}:${p}`, out[i]]));
}

describe("tool isolation on the real daemon (issue 13, item 4)", function () {
  this.timeout(300_000);
  let box: Toolbox;

  const api = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(box.backendUrl + path, {
      method,
      headers: {
        authorization: `Bearer ${box.tokens.backendApi}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(120_000),
    });
    const text = await res.text();
    return { status: res.status, body: text ? (JSON.parse(text) as Json) : undefined };
  };
  const httpServer = {
    image: MCP_TOOLS,
    command: ["node", "http.mjs"],
    env: { PORT: "8080", MCP_PATH: "/mcp" },
    transport: { type: "http", port: 8080, path: "/mcp" },
  };
  const inspect = (name: string): Json => (JSON.parse(docker(["inspect", name])) as Json[])[0];
  const toolContainer = (name: string): string =>
    docker([
      "ps",
      "-q",
      "--filter",
      `label=agentopia.dtma-scope=${dtmaScopeFor(box.accountId)}`,
      "--filter",
      `label=agentopia.tool-name=${name}`,
    ]);
  const addresses = (c: Json): Record<string, string> =>
    Object.fromEntries(
      Object.entries(c.NetworkSettings.Networks as Record<string, Json>).map(([n, v]) => [
        n,
        v.IPAddress as string,
      ]),
    );

  before(async function () {
    for (const image of [DTMA_TEST_IMAGE, BACKEND_TEST_IMAGE, MCP_TOOLS]) {
      assert.ok(imagePresent(image), `${image} is missing: run bash scripts/build-test-images.sh`);
    }
    box = await startToolbox({});
    for (const name of ["target", "probe"]) {
      const res = await api("PUT", `/v1/servers/${name}`, httpServer);
      assert.equal(res.status, 201, JSON.stringify(res.body));
    }
  });
  after(() => box?.remove());

  it("a tool reaches no other tool, no DTMA and none of the backend's other networks; the gateway reaches both", () => {
    const probeC = inspect(toolContainer("probe"));
    const target = inspect(toolContainer("target"));
    const dtma = inspect(box.specs.dtma.name);
    const backend = inspect(box.specs.backend.name);
    const probeNets = Object.keys(probeC.NetworkSettings.Networks as Json);
    assert.equal(probeNets.length, 1, `the probe is on ${probeNets.join(", ")}`);
    const [ownNet] = probeNets;
    const backendIps = addresses(backend);
    // The gateway shares each tool's network: it is how the deploys above passed.
    assert.ok(backendIps[ownNet], "the backend is on the probe's network");
    const targetNet = Object.keys(target.NetworkSettings.Networks as Json)[0];
    assert.ok(backendIps[targetNet], "the backend is on the target's network");

    const forbidden: [string, number][] = [
      ["target", 8080],
      ...Object.values(addresses(target)).map((ip): [string, number] => [ip, 8080]),
      ["dtma", 30000],
      ...Object.values(addresses(dtma)).map((ip): [string, number] => [ip, 30000]),
      ...Object.entries(backendIps)
        .filter(([net]) => net !== ownNet)
        .map(([, ip]): [string, number] => [ip, 3000]),
    ];
    const allowed: [string, number][] = [
      [Object.values(addresses(probeC))[0], 8080],
      [backendIps[ownNet], 3000],
    ];
    // The backend's replies (published port) still leave by the control network: it sorts first.
    const control = box.specs.networks[0].name;
    const route = docker([
      "exec",
      box.specs.backend.name,
      "node",
      "-e",
      "const l=require('fs').readFileSync('/proc/net/route','utf8').split('\\n').find(x=>x.split('\\t')[1]==='00000000');const h=l.split('\\t')[2];console.log([3,2,1,0].map(i=>parseInt(h.slice(i*2,i*2+2),16)).join('.'))",
    ]);
    assert.equal(route, backend.NetworkSettings.Networks[control].Gateway);
    const seen = probe(probeC.Id as string, [...forbidden, ...allowed]);
    for (const [host, port] of forbidden)
      assert.notEqual(seen[`${host}:${port}`], "open", `the probe reached ${host}:${port}`);
    // Not vacuous: the same probe connects where a tool may (itself, the gateway's port).
    for (const [host, port] of allowed)
      assert.equal(seen[`${host}:${port}`], "open", `${host}:${port}: ${seen[`${host}:${port}`]}`);
  });

  it("a removed tool takes its network with it; the gateway stays connected to the others", async () => {
    const net = Object.keys(inspect(toolContainer("probe")).NetworkSettings.Networks as Json)[0];
    assert.equal((await api("DELETE", "/v1/servers/probe")).status, 204);
    assert.throws(() => docker(["network", "inspect", net]), "the probe's network is gone");
    const backendNets = Object.keys(
      inspect(box.specs.backend.name).NetworkSettings.Networks as Json,
    );
    const targetNet = Object.keys(
      inspect(toolContainer("target")).NetworkSettings.Networks as Json,
    )[0];
    assert.ok(backendNets.includes(targetNet));
  });
});
