/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-unsafe-argument, @typescript-eslint/no-unsafe-call, @typescript-eslint/no-unsafe-return, @typescript-eslint/no-explicit-any -- tests read the JSON of Docker, of the API and of JSON-RPC loosely */
import assert from "node:assert/strict";
import http from "node:http";
import { DtmaClient, DtmaError } from "../src/client";
import type { Running } from "./helpers";
import {
  BUSYBOX,
  JsonLines,
  MCP_TOOLS,
  TOKEN,
  TOKEN_B,
  api,
  cleanup,
  eventually,
  exec,
  httpTool,
  inspect,
  requireImages,
  sleep,
  stdioTool,
  startDtma,
} from "./helpers";

// The stdio attachment and lanes against a real MCP server (agentopia-test/mcp-tools in stdio
// mode) in its sandbox: the test speaks newline-delimited JSON-RPC over the raw stream, as the
// backend's bridge does.

const refusedWith =
  (status: number, code: string) =>
  (err: unknown): boolean =>
    err instanceof DtmaError && err.status === status && err.body.error === code;

/** Refusals the test waits out: the tool is coming back, or the last stream is still closing. */
const transient = (err: unknown): boolean =>
  err instanceof DtmaError &&
  ["not_running", "already_attached", "lane_limit"].includes(err.body.error);

async function attachLines(client: DtmaClient, name: string) {
  const { stream, startedAt } = await client.attach(name);
  return { lines: new JsonLines(stream), startedAt };
}

async function openLane(client: DtmaClient, name: string) {
  return new JsonLines((await client.openLane(name)).stream);
}

/** An upgrade request by hand, for what the typed client never sends. */
function upgradeRequest(
  url: string,
  path: string,
  headers: Record<string, string>,
): Promise<{ status: number; json: any; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url + path, { method: "POST", headers });
    req.on("upgrade", (_res, socket) => {
      socket.destroy();
      reject(new Error(`${path} was upgraded`));
    });
    req.on("response", (res) => {
      let text = "";
      res.on("data", (c: Buffer) => (text += c.toString("utf8")));
      res.on("end", () =>
        resolve({
          status: res.statusCode ?? 0,
          json: JSON.parse(text),
          closed: res.headers.connection === "close",
        }),
      );
    });
    req.on("error", reject);
    req.end();
  });
}

/** The tool's processes whose command line ends with `command` (`docker top`), with their uids. */
async function processes(containerId: string, command: string): Promise<string[]> {
  const { stdout } = await exec("docker", ["top", containerId]);
  return stdout
    .split("\n")
    .slice(1)
    .filter((l) => l.endsWith(` ${command}`) && !l.includes("docker-init"));
}

/** Polls until `n` such processes run (an exec's process starts just after its 101), or gives up. */
async function processCountReaches(containerId: string, command: string, n: number) {
  let procs = await processes(containerId, command);
  for (let i = 0; i < 100 && procs.length !== n; i++) {
    await sleep(100);
    procs = await processes(containerId, command);
  }
  return procs;
}

describe("stdio attachment (real Docker, agentopia-test/mcp-tools)", function () {
  this.timeout(120_000);
  let dtma: Running;

  before(async function () {
    await requireImages(this, MCP_TOOLS, BUSYBOX);
    dtma = await startDtma();
  });
  after(async () => {
    await dtma?.stop();
    await cleanup();
  });

  it("attach: 101 with the start time, a real MCP exchange; stderr stays out of the stream and is the tool's log, stdout is not", async () => {
    const tool = await dtma.client.deployTool("talk", stdioTool() as never);
    assert.equal(tool.state, "running");
    assert.equal(tool.isolation, "shared");
    const { lines, startedAt } = await attachLines(dtma.client, "talk");
    assert.equal(startedAt, tool.started_at);

    const init = await lines.initialize();
    assert.equal(init.serverInfo.name, "mcp-tools");
    const listed = await lines.call("tools/list");
    assert.ok(listed.result.tools.some((t: { name: string }) => t.name === "echo"));
    assert.equal(await lines.tool("echo", { text: "hello ✓" }), "hello ✓");
    const marker = `to-stderr-${Date.now()}`;
    assert.equal(await lines.tool("stderr", { text: marker }), "written");
    assert.equal(await lines.tool("add", { a: 2, b: 40 }), "42");
    assert.ok(!lines.text.includes(marker), "stderr never enters the stream");
    assert.match(await dtma.client.metrics(), /dtma_stdio_attachments 1/);

    let logs = await dtma.client.toolLogs("talk");
    for (let i = 0; i < 50 && !logs.entries.some((e) => e.text === marker); i++) {
      await sleep(100);
      logs = await dtma.client.toolLogs("talk");
    }
    assert.ok(
      logs.entries.some((e) => e.text === marker),
      JSON.stringify(logs.entries),
    );
    assert.ok(logs.entries.some((e) => e.text.startsWith("mcp-tools (stdio) ready")));
    // stdout carried tool results (Docker's json-file log has them too): never in the logs.
    assert.ok(logs.entries.every((e) => e.stream === "stderr"));
    assert.ok(!logs.entries.some((e) => e.text.includes("jsonrpc") || e.text.includes("hello")));

    lines.close();
    assert.deepEqual(await lines.closed, { cleanly: true });
  });

  it("one attachment per tool: a second is 409 already_attached; once the first closes the same process is attachable again", async () => {
    const first = await attachLines(dtma.client, "talk");
    const pid = JSON.parse(await first.lines.tool("whoami")).pid;
    await assert.rejects(dtma.client.attach("talk"), refusedWith(409, "already_attached"));
    first.lines.close();
    await first.lines.closed;

    // The DTMA lets go of the Docker side once it sees the caller leave.
    const second = await eventually(() => attachLines(dtma.client, "talk"), transient);
    // The tool's stdin stayed open (StdinOnce false): the same process answers, still initialized.
    const again = JSON.parse(await second.lines.tool("whoami"));
    assert.equal(again.pid, pid);
    assert.equal(again.clientInfo.name, "dtma-test");
    assert.equal(second.startedAt, first.startedAt);
    second.lines.close();
    await second.lines.closed;
  });

  it("the attachment ends when the tool stops, restarts or crashes, and can be taken again once it runs", async () => {
    const before = await dtma.client.getTool("talk");

    const stopped = await eventually(() => attachLines(dtma.client, "talk"), transient);
    await dtma.client.stopTool("talk");
    assert.deepEqual(await stopped.lines.closed, { cleanly: true });
    await assert.rejects(dtma.client.attach("talk"), refusedWith(409, "not_running"));
    await dtma.client.startTool("talk");

    const restarted = await eventually(() => attachLines(dtma.client, "talk"), transient);
    assert.notEqual(restarted.startedAt, before.started_at);
    await restarted.lines.initialize();
    await dtma.client.restartTool("talk");
    assert.deepEqual(await restarted.lines.closed, { cleanly: true });

    const crashing = await eventually(() => attachLines(dtma.client, "talk"), transient);
    assert.notEqual(crashing.startedAt, restarted.startedAt);
    await crashing.lines.initialize();
    // `crash` exits the process (code 3): there is no answer, the stream just ends.
    crashing.lines.send({ id: 99, method: "tools/call", params: { name: "crash", arguments: {} } });
    assert.deepEqual(await crashing.lines.closed, { cleanly: true });

    // Docker's restart policy brings it back; a new process answers the new attachment.
    const back = await eventually(() => attachLines(dtma.client, "talk"), transient);
    assert.notEqual(back.startedAt, crashing.startedAt);
    await back.lines.initialize();
    assert.equal(await back.lines.tool("echo", { text: "back" }), "back");
    assert.ok((await dtma.client.getTool("talk")).restarts >= 1);
    back.lines.close();
    await back.lines.closed;
  });

  it("a new DTMA instance (a restart) finds the tool running and attachable, the same process", async () => {
    const old = await startDtma();
    const first = await eventually(() => attachLines(old.client, "talk"), transient);
    const pid = JSON.parse(await first.lines.tool("whoami")).pid;
    await old.stop();
    assert.equal((await first.lines.closed).cleanly, true);

    const fresh = await startDtma();
    try {
      const tool = await fresh.client.getTool("talk");
      assert.equal(tool.state, "running");
      const second = await eventually(() => attachLines(fresh.client, "talk"), transient);
      assert.equal(second.startedAt, tool.started_at);
      assert.equal(JSON.parse(await second.lines.tool("whoami")).pid, pid);
      second.lines.close();
      await second.lines.closed;
    } finally {
      await fresh.stop();
    }
  });

  it("refusals on both routes are JSON answers on a closed socket: 401, 400 name, 404, 426, 422 not_stdio, 409 not_running, 422 not_per_session", async () => {
    await dtma.client.deployTool("web", httpTool() as never);
    await dtma.client.deployTool("idle", stdioTool() as never);
    await dtma.client.stopTool("idle");
    const upgrade = { connection: "Upgrade", upgrade: "mcp-stdio" };
    const auth = { authorization: `Bearer ${TOKEN}` };
    const wrong = new DtmaClient({ baseUrl: dtma.url, token: TOKEN_B });
    try {
      for (const route of ["attach", "lanes"]) {
        const open = (c: DtmaClient, name: string) =>
          route === "attach" ? c.attach(name) : c.openLane(name);
        const none = await upgradeRequest(dtma.url, `/tools/talk/${route}`, upgrade);
        assert.equal(none.status, 401, route);
        assert.equal(none.json.error, "unauthorized");
        assert.equal(none.closed, true);
        await assert.rejects(open(wrong, "talk"), refusedWith(401, "unauthorized"));

        for (const name of ["UPPER", "a_b", "-x", "x".repeat(64)]) {
          await assert.rejects(open(dtma.client, name), (err: unknown) => {
            assert.ok(refusedWith(400, "invalid_request")(err), `${route} ${name}: ${String(err)}`);
            assert.equal((err as DtmaError).body.field, "name");
            return true;
          });
        }
        await assert.rejects(open(dtma.client, "absent"), refusedWith(404, "tool_not_found"));

        const plain = await api(dtma.url)("POST", `/tools/talk/${route}`);
        assert.equal(plain.status, 426);
        assert.equal(plain.json.error, "upgrade_required");
        const ws = await upgradeRequest(dtma.url, `/tools/talk/${route}`, {
          ...auth,
          connection: "Upgrade",
          upgrade: "websocket",
        });
        assert.equal(ws.status, 426);
        assert.equal(ws.json.field, "upgrade");

        await assert.rejects(open(dtma.client, "web"), refusedWith(422, "not_stdio"));
      }
      // The stopped tool is shared: attach says not running, a lane says not per_session.
      await assert.rejects(dtma.client.attach("idle"), refusedWith(409, "not_running"));
      await assert.rejects(dtma.client.openLane("talk"), refusedWith(422, "not_per_session"));
      // The refusals left nothing attached.
      const ok = await eventually(() => attachLines(dtma.client, "talk"), transient);
      ok.lines.close();
      await ok.lines.closed;
    } finally {
      wrong.close();
    }
  });

  it("per_session lanes: separate processes with their own state, 429 at max_lanes, a closed lane's process exits and frees its slot", async () => {
    const tool = await dtma.client.deployTool(
      "lanes",
      stdioTool({ isolation: "per_session", max_lanes: 2 }) as never,
    );
    assert.equal(tool.isolation, "per_session");
    assert.equal(tool.max_lanes, 2);
    const main = (await attachLines(dtma.client, "lanes")).lines;
    await main.initialize();
    const mainPid = JSON.parse(await main.tool("whoami")).pid;

    const a = await openLane(dtma.client, "lanes");
    const b = await openLane(dtma.client, "lanes");
    await a.initialize();
    await b.initialize();
    assert.equal(await a.tool("counter"), "1");
    assert.equal(await b.tool("counter"), "1");
    assert.equal(await a.tool("counter"), "2");
    assert.equal(await main.tool("counter"), "1");
    const pids = [
      mainPid,
      ...(await Promise.all([a, b].map((l) => l.tool("whoami")))).map((t) => JSON.parse(t).pid),
    ];
    assert.equal(new Set(pids).size, 3, `pids ${pids.join(", ")}`);
    await assert.rejects(dtma.client.openLane("lanes"), refusedWith(429, "lane_limit"));

    // Three server processes, every one as the container's user (exec inherits it).
    const procs = await processes(tool.container_id, "node stdio.mjs");
    assert.equal(procs.length, 3, procs.join("\n"));
    assert.ok(
      procs.every((p) => p.startsWith("10001 ")),
      procs.join("\n"),
    );

    // The lane's process gets EOF on stdin and exits; its slot is free once it has.
    a.close();
    assert.deepEqual(await a.closed, { cleanly: true });
    const left = await processCountReaches(tool.container_id, "node stdio.mjs", 2);
    assert.equal(left.length, 2, left.join("\n"));
    const c = await eventually(() => openLane(dtma.client, "lanes"), transient);
    assert.equal(await c.tool("counter"), "1");

    // Stopping the tool ends its attachment and every lane.
    await dtma.client.stopTool("lanes");
    for (const l of [main, b, c]) assert.equal((await l.closed).cleanly, true);
    assert.match(await dtma.client.metrics(), /dtma_stdio_lanes 0/);
  });

  it("a lane whose process ignores EOF keeps its slot until the process ends: a restart frees it", async () => {
    // busybox `sleep` never reads stdin, so closing the lane does not end it.
    const tool = await dtma.client.deployTool("deaf", {
      image: BUSYBOX,
      command: ["sleep", "3600"],
      transport: { type: "stdio" },
      network: "none",
      isolation: "per_session",
      max_lanes: 1,
    });
    const sleepers = () => processes(tool.container_id, "sleep 3600");
    const lane = new JsonLines((await dtma.client.openLane("deaf")).stream);
    assert.equal((await processCountReaches(tool.container_id, "sleep 3600", 2)).length, 2);
    lane.close();
    await sleep(500); // long enough for a process that reads stdin to have seen its EOF
    assert.equal((await sleepers()).length, 2, "the lane's process is still there");
    await assert.rejects(dtma.client.openLane("deaf"), refusedWith(429, "lane_limit"));

    await dtma.client.restartTool("deaf");
    const again = await eventually(() => dtma.client.openLane("deaf"), transient);
    const now = await processCountReaches(tool.container_id, "sleep 3600", 2);
    assert.equal(now.length, 2, "the new main process and the new lane only");
    again.stream.destroy();
    await dtma.client.removeTool("deaf");
  });

  it("isolation and max_lanes: defaults, labels, part of the spec hash, each bad value a 400 naming the field", async () => {
    const call = api(dtma.url);
    const plain = await call("PUT", "/tools/spec", stdioTool());
    assert.equal(plain.status, 201, plain.text);
    assert.equal(plain.json.isolation, "shared");
    assert.equal(plain.json.max_lanes, 4);
    const per = await call(
      "PUT",
      "/tools/spec",
      stdioTool({ isolation: "per_session", max_lanes: 3 }),
    );
    assert.equal(per.status, 200, per.text);
    assert.equal(per.json.changed, true);
    assert.notEqual(per.json.spec_hash, plain.json.spec_hash);
    const labels = (await inspect(per.json.container_id)).Config.Labels;
    assert.equal(labels["agentopia.isolation"], "per_session");
    assert.equal(labels["agentopia.max-lanes"], "3");
    const same = await call(
      "PUT",
      "/tools/spec",
      stdioTool({ isolation: "per_session", max_lanes: 3 }),
    );
    assert.equal(same.json.changed, false);
    const more = await call(
      "PUT",
      "/tools/spec",
      stdioTool({ isolation: "per_session", max_lanes: 5 }),
    );
    assert.equal(more.json.changed, true);
    assert.equal((await dtma.client.getTool("spec")).max_lanes, 5);

    const bad: [Record<string, unknown>, string, RegExp?][] = [
      [{ isolation: "per_token" }, "isolation"],
      [{ isolation: 1 }, "isolation"],
      [{ max_lanes: 0 }, "max_lanes"],
      [{ max_lanes: 2.5 }, "max_lanes"],
      [{ max_lanes: "4" }, "max_lanes"],
      [{ max_lanes: 9 }, "max_lanes", /cap \(8\)/],
      [{ max_lanes: 33 }, "max_lanes", /cap \(8\)/],
    ];
    for (const [extra, field, message] of bad) {
      const res = await call(
        "PUT",
        "/tools/spec",
        stdioTool({ isolation: "per_session", ...extra }),
      );
      assert.equal(res.status, 400, `${JSON.stringify(extra)}: ${res.text}`);
      assert.equal(res.json.field, field);
      if (message) assert.match(res.json.message, message);
    }
  });
});
