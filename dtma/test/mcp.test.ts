/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-argument -- tests read the JSON of Docker loosely */
import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { DtmaError } from "../src/client";
import type { Running } from "./helpers";
import { NETWORK, SCOPE, cleanup, exec, inspect, requireImages, startDtma } from "./helpers";

// End to end: the DTMA runs a real MCP server (test/fixtures/mcp-echo, built by
// scripts/build-test-images.sh) in its sandbox on the tool network, and the real MCP SDK client
// talks to it there, as the backend's gateway would.

const MCP_ECHO = "agentopia-test/mcp-echo:latest";
const PORT = 8080;
const PATH = "/mcp";

describe("an MCP tool server run by the DTMA (real MCP SDK client)", function () {
  this.timeout(120_000);
  let dtma: Running;
  let mcp: Client | undefined;

  before(async function () {
    await requireImages(this, MCP_ECHO);
    dtma = await startDtma();
  });
  after(async () => {
    await mcp?.close().catch(() => undefined);
    await dtma?.stop();
    await cleanup();
  });

  it("deploys, answers listTools and callTool over Streamable HTTP, and is removed", async () => {
    const deployed = await dtma.client.deployTool("echo", {
      image: MCP_ECHO,
      env: { PORT: String(PORT), MCP_PATH: PATH },
      transport: { type: "http", port: PORT, path: PATH },
      network: "egress",
      resources: { memory_mb: 128, pids: 64 },
      account_tool_instance_id: "ati-mcp-echo",
    });
    assert.equal(deployed.created, true);
    assert.equal(deployed.endpoint, `http://echo:${PORT}${PATH}`);
    assert.equal(deployed.account_tool_instance_id, "ati-mcp-echo");

    const waited = await dtma.client.waitForTool("echo", "running", 30);
    assert.equal(waited.reached, true, JSON.stringify(waited));

    // The container is this run's, in the default sandbox, on this run's tool network only.
    const c = await inspect(deployed.container_id);
    assert.equal(c.Config.Labels["agentopia.dtma-scope"], SCOPE);
    assert.equal(c.HostConfig.ReadonlyRootfs, true);
    assert.deepEqual(c.HostConfig.CapDrop, ["ALL"]);
    assert.deepEqual(c.HostConfig.SecurityOpt, ["no-new-privileges:true"]);
    assert.equal(c.HostConfig.Memory, 128 * 1024 * 1024);
    assert.equal(c.HostConfig.PidsLimit, 64);
    assert.equal(c.Config.User, "10001:10001");
    // The tool's own network (decision 0026).
    const own = `${NETWORK}.echo`;
    assert.deepEqual(Object.keys(c.NetworkSettings.Networks), [own]);
    const address = c.NetworkSettings.Networks[own].IPAddress as string;
    assert.match(address, /^\d+\.\d+\.\d+\.\d+$/);

    // "running" means the process started; its log line (read through the DTMA) means it listens.
    let logs = await dtma.client.toolLogs("echo");
    for (let i = 0; i < 100 && !logs.entries.some((e) => e.text.includes("listening")); i++) {
      await new Promise((r) => setTimeout(r, 100));
      logs = await dtma.client.toolLogs("echo");
    }
    assert.ok(
      logs.entries.some((e) => e.text.includes("mcp-echo listening")),
      JSON.stringify(logs.entries),
    );

    // The DTMA reports http://echo:8080/mcp (the alias resolves on the tool network); from the
    // test process the same endpoint is the container's address on that network.
    mcp = new Client({ name: "dtma-test", version: "0.0.0" });
    await mcp.connect(
      new StreamableHTTPClientTransport(new URL(`http://${address}:${PORT}${PATH}`)),
    );
    assert.equal(mcp.getServerVersion()?.name, "mcp-echo");

    const { tools } = await mcp.listTools();
    assert.deepEqual(tools.map((t) => t.name).sort(), ["add", "echo"]);
    const echoTool = tools.find((t) => t.name === "echo");
    assert.deepEqual(echoTool?.inputSchema.required, ["text"]);

    const text = `hello from ${SCOPE} ✓`;
    const echoed = await mcp.callTool({ name: "echo", arguments: { text } });
    assert.notEqual(echoed.isError, true);
    assert.deepEqual(echoed.content, [{ type: "text", text }]);

    const sum = await mcp.callTool({ name: "add", arguments: { a: 2, b: 40 } });
    assert.deepEqual(sum.content, [{ type: "text", text: "42" }]);

    // A bad argument is the tool's error, not a transport failure.
    const bad = await mcp.callTool({ name: "echo", arguments: { text: 7 } });
    assert.equal(bad.isError, true);

    await mcp.close();
    mcp = undefined;

    await dtma.client.removeTool("echo");
    await assert.rejects(
      dtma.client.getTool("echo"),
      (err: unknown) => err instanceof DtmaError && err.status === 404,
    );
    const { stdout } = await exec("docker", [
      "ps",
      "-aq",
      "--no-trunc",
      "--filter",
      `id=${deployed.container_id}`,
    ]);
    assert.equal(stdout.trim(), "");
  });
});
