/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-call, @typescript-eslint/no-unsafe-assignment -- tests read the JSON of Docker and of the API loosely */
import assert from "node:assert/strict";
import { statSync } from "node:fs";
import { DtmaClient, DtmaUnavailable } from "../src/client";
import {
  BUSYBOX,
  DTMA_IMAGE,
  JsonLines,
  MCP_TOOLS,
  NETWORK,
  RUN,
  SCOPE,
  SOCKET,
  TOKEN,
  api,
  cleanup,
  eventually,
  exec,
  imageExists,
  inspect,
  requireImages,
  sleepTool,
  stdioTool,
} from "./helpers";

// The DTMA as it ships: its image, the socket mounted, non-root with the socket's group,
// reached over a port published on 127.0.0.1 only.

describe("DTMA container (agentopia/dtma:dev)", function () {
  this.timeout(120_000);
  const name = `dtma-test-${RUN}-agent`;
  let url = "";

  before(async function () {
    await requireImages(this, DTMA_IMAGE, BUSYBOX);
    const gid = String(statSync(SOCKET).gid);
    await exec("docker", [
      "run",
      "-d",
      "--name",
      name,
      "--label",
      `agentopia.dtma-scope=${SCOPE}`,
      "-p",
      "127.0.0.1::30000",
      "-v",
      `${SOCKET}:/var/run/docker.sock`,
      "--group-add",
      gid,
      "--memory",
      "160m",
      "-e",
      `DTMA_BEARER_TOKEN=${TOKEN}`,
      "-e",
      "DTMA_BEARER_TOKEN_PREVIOUS=",
      "-e",
      "AGENTOPIA_API_BASE_URL=http://127.0.0.1:9/api",
      "-e",
      `DTMA_TOOL_NETWORK=${NETWORK}`,
      "-e",
      `DTMA_SCOPE=${SCOPE}`,
      DTMA_IMAGE,
    ]);
    await healthy();
  });

  /** Waits for /health on the published port (which `docker start` may change). */
  async function healthy(): Promise<void> {
    const port = (await exec("docker", ["port", name, "30000/tcp"])).stdout
      .trim()
      .split(":")
      .at(-1);
    url = `http://127.0.0.1:${port}`;
    for (let i = 0; i < 100; i++) {
      try {
        if ((await fetch(`${url}/health`)).ok) return;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    const logs = await exec("docker", ["logs", name]);
    assert.fail(`the DTMA container never became healthy: ${logs.stdout}${logs.stderr}`);
  }
  after(cleanup);

  it("answers /health without a token, and runs as non-root with a health check", async () => {
    const res = await api(url, null)("GET", "/health");
    assert.equal(res.status, 200);
    assert.deepEqual(res.json, { status: "ok" });
    const c = await inspect(name);
    assert.equal(c.Config.User, "10001:10001");
    assert.ok(c.Config.Healthcheck.Test.join(" ").includes("/health"));
    assert.ok(c.Config.Labels["org.opencontainers.image.title"]);
  });

  it("deploys a tool through the mounted socket and reports it in /status", async () => {
    const client = new DtmaClient({ baseUrl: url, token: TOKEN });
    const tool = await client.deployTool("in-image", sleepTool() as never);
    assert.equal(tool.created, true);
    assert.equal(tool.state, "running");
    for (let i = 0; i < 50; i++) {
      const status = await client.status();
      if (status.tool_instances.some((t) => t.name === "in-image")) {
        assert.equal(status.docker.reachable, true);
        return;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.fail("/status never listed the tool");
  });

  it("attaches to a stdio tool, and after the DTMA is killed and started again the same process is attachable", async function () {
    if (!(await imageExists(MCP_TOOLS))) {
      console.log(
        `      skipped: image ${MCP_TOOLS} is missing (run scripts/build-test-images.sh)`,
      );
      this.skip();
    }
    const client = new DtmaClient({ baseUrl: url, token: TOKEN });
    try {
      const tool = await client.deployTool("stdio-in-image", stdioTool() as never);
      const first = await client.attach("stdio-in-image");
      assert.equal(first.startedAt, tool.started_at);
      const lines = new JsonLines(first.stream);
      assert.equal((await lines.initialize()).serverInfo.name, "mcp-tools");
      assert.equal(await lines.tool("echo", { text: "through the image" }), "through the image");
      const pid = JSON.parse(await lines.tool("whoami")).pid;

      // No graceful shutdown: the attachment dies with the process, the tool keeps running.
      await exec("docker", ["kill", "-s", "KILL", name]);
      await lines.closed;
      await exec("docker", ["start", name]);
      await healthy();
      const fresh = new DtmaClient({ baseUrl: url, token: TOKEN });
      const again = await eventually(
        () => fresh.attach("stdio-in-image"),
        (err) => err instanceof DtmaUnavailable,
      ).finally(() => fresh.close());
      assert.equal(again.startedAt, tool.started_at);
      const after = new JsonLines(again.stream);
      assert.equal(JSON.parse(await after.tool("whoami")).pid, pid);
      after.close();
      await after.closed;
    } finally {
      client.close();
    }
  });

  it("stops gracefully on SIGTERM and leaves the tools running", async () => {
    await exec("docker", ["stop", "-t", "10", name]);
    const c = await inspect(name);
    assert.equal(c.State.ExitCode, 0);
    const tools = (
      await exec("docker", [
        "ps",
        "-q",
        "--filter",
        `label=agentopia.tool-name=in-image`,
        "--filter",
        `label=agentopia.dtma-scope=${SCOPE}`,
      ])
    ).stdout.trim();
    assert.ok(tools, "the tool container is still running");
  });
});
