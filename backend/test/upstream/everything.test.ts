/* eslint-disable @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-argument, @typescript-eslint/no-unsafe-call, @typescript-eslint/no-explicit-any -- tests read JSON loosely */
// The published @modelcontextprotocol/server-everything, unmodified, under `docker run -i`: the
// lane against a server the project did not write.
import assert from "node:assert/strict";
import { createStdioLane } from "../../src/upstream/stdio";
import type { JsonObject, JsonRpcNotification } from "../../src/upstream/types";
import { ErrorCodes } from "../../src/upstream/types";
import { dockerImageMissing, dockerStdio, EVERYTHING_IMAGE, killAll, until } from "./helpers";

const T = { timeoutMs: 30_000 };

describe("upstream stdio lane (server-everything under docker run -i)", function () {
  this.timeout(90_000);

  before(async function () {
    const missing = await dockerImageMissing(EVERYTHING_IMAGE);
    if (missing) {
      console.log(`      skipped: ${missing}`);
      this.skip();
    }
  });
  afterEach(killAll);

  async function lane(forwardLogs = false) {
    const proc = dockerStdio(EVERYTHING_IMAGE);
    const l = await createStdioLane({
      server: "everything",
      stream: proc.stream,
      maxMessageBytes: 1024 * 1024,
      initializeTimeoutMs: 30_000,
      forwardLogs,
    });
    return { proc, lane: l };
  }

  it("initializes, and routes trigger-long-running-operation's progress to its caller only", async () => {
    const { proc, lane: l } = await lane();
    assert.equal(l.initialize.serverInfo.name, "mcp-servers/everything");
    const runs = await Promise.all(
      ["first", 2].map(async (token) => {
        const progress: JsonObject[] = [];
        const outcome = await l.call(
          "tools/call",
          { name: "trigger-long-running-operation", arguments: { duration: 0.3, steps: 3 } },
          { ...T, progressToken: token, onProgress: (p) => progress.push(p) },
        );
        return { token, progress, outcome };
      }),
    );
    for (const r of runs) {
      assert.ok("result" in r.outcome, JSON.stringify(r.outcome));
      assert.deepEqual(
        r.progress.map((p) => [p.progressToken, p.progress, p.total]),
        [
          [r.token, 1, 3],
          [r.token, 2, 3],
          [r.token, 3, 3],
        ],
      );
    }
    assert.ok(!proc.stream.text().includes('"first"'));
    // The server cannot ask the gateway for sampling: it was told of no such capability.
    const tools = await l.call("tools/list", undefined, T);
    assert.ok(
      !(tools as any).result.tools.some((t: any) => /sampling|elicitation|roots/.test(t.name)),
    );
  });

  it("cancels upstream with the lane's id and stays usable", async () => {
    const { proc, lane: l } = await lane();
    const ac = new AbortController();
    const p = l.call(
      "tools/call",
      { name: "trigger-long-running-operation", arguments: { duration: 30, steps: 30 } },
      { ...T, signal: ac.signal, progressToken: "t", onProgress: () => ac.abort() },
    );
    assert.equal(((await p) as any).error.code, ErrorCodes.Cancelled);
    const call = proc.stream
      .messages()
      .find((m) => m.params?.name === "trigger-long-running-operation");
    const cancel = proc.stream.messages().find((m) => m.method === "notifications/cancelled");
    assert.equal(cancel.params.requestId, call.id);
    const sum = await l.call("tools/call", { name: "get-sum", arguments: { a: 2, b: 40 } }, T);
    assert.match(JSON.stringify(sum), /42/);
  });

  it("one upstream subscribe for two subscribers; resources/updated reaches listeners", async () => {
    const { proc, lane: l } = await lane();
    const got: JsonRpcNotification[] = [];
    l.onNotification((n) => got.push(n));
    const uri = "demo://resource/static/document/architecture.md";
    assert.deepEqual(await l.subscribe(uri, T), { result: {} });
    assert.deepEqual(await l.subscribe(uri, T), { result: {} });
    assert.equal(
      proc.stream.messages().filter((m) => m.method === "resources/subscribe").length,
      1,
    );
    await l.call("tools/call", { name: "toggle-subscriber-updates", arguments: {} }, T);
    await until(() => got.some((n) => n.method === "notifications/resources/updated"));
    assert.deepEqual(got.find((n) => n.method === "notifications/resources/updated")!.params, {
      uri,
    });
    await l.unsubscribe(uri, T);
    assert.equal(
      proc.stream.messages().filter((m) => m.method === "resources/unsubscribe").length,
      0,
    );
    await l.unsubscribe(uri, T);
    assert.equal(
      proc.stream.messages().filter((m) => m.method === "resources/unsubscribe").length,
      1,
    );
  });

  it("drops the server's log messages on a shared lane and forwards them on a per-session one", async () => {
    for (const forwardLogs of [false, true]) {
      const { lane: l } = await lane(forwardLogs);
      const logs: JsonRpcNotification[] = [];
      l.onNotification((n) => n.method === "notifications/message" && logs.push(n));
      // server-everything logs each subscribe before answering it, on the same pipe.
      await l.subscribe("demo://x", T);
      if (forwardLogs) {
        assert.equal(logs.length, 1);
        assert.match(String(logs[0].params?.data), /Subscribe/);
      } else {
        assert.equal(logs.length, 0);
        assert.ok(l.stats.droppedNotifications >= 1);
      }
    }
  });
});
