/* eslint-disable @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-argument, @typescript-eslint/no-unsafe-return, @typescript-eslint/no-unsafe-call, @typescript-eslint/no-explicit-any -- tests read JSON loosely */
import assert from "node:assert/strict";
import { Duplex, duplexPair } from "node:stream";
import fc from "fast-check";
import { createStdioConnector, createStdioLane } from "../../src/upstream/stdio";
import type { StdioLaneOptions } from "../../src/upstream/stdio";
import type { CallOutcome, JsonObject, JsonRpcNotification, Lane } from "../../src/upstream/types";
import { ErrorCodes } from "../../src/upstream/types";
import type { Proc } from "./helpers";
import {
  INIT_RESULT,
  killAll,
  scriptedServer,
  spawnFixture,
  spawnStdio,
  textOf,
  until,
} from "./helpers";

const CAP = 64 * 1024;

function laneOpts(stream: StdioLaneOptions["stream"], extra: Partial<StdioLaneOptions> = {}) {
  return {
    server: "mcp-tools",
    stream,
    maxMessageBytes: CAP,
    initializeTimeoutMs: 10_000,
    clientVersion: "9.9.9-test",
    ...extra,
  };
}

const tool = (name: string, args: JsonObject = {}): JsonObject => ({ name, arguments: args });
const T = { timeoutMs: 20_000 };

function errorCode(outcome: CallOutcome): number | undefined {
  return "error" in outcome ? outcome.error.code : undefined;
}

/** An attachment to a running process, as the DTMA gives one: letting go never ends its stdin. */
function attachTo(proc: Proc): { stream: Duplex; detach(): void } {
  const onData = (c: Buffer) => stream.push(c);
  const stream = new Duplex({
    read() {},
    write(chunk: Buffer, _enc, cb) {
      proc.stream.write(chunk, cb);
    },
    final(cb) {
      cb();
    },
  });
  proc.stream.on("data", onData);
  return {
    stream,
    detach: () => {
      proc.stream.off("data", onData);
      stream.push(null);
    },
  };
}

describe("upstream stdio lane (mcp-tools fixture processes)", function () {
  this.timeout(60_000);
  afterEach(killAll);

  it("initializes the server itself, with its own clientInfo and no client capabilities", async () => {
    const proc = spawnFixture();
    const lane = await createStdioLane(laneOpts(proc.stream));
    assert.equal(lane.server, "mcp-tools");
    assert.equal(lane.initialize.serverInfo.name, "mcp-tools");
    assert.equal(lane.initialize.protocolVersion, "2025-11-25");
    const who = JSON.parse(textOf(await lane.call("tools/call", tool("whoami"), T)));
    assert.deepEqual(who.clientInfo, { name: "agentopia-toolbox-gateway", version: "9.9.9-test" });
    assert.deepEqual(who.capabilities, {});
    const [init, initialized] = proc.stream.messages();
    assert.equal(init.method, "initialize");
    assert.deepEqual(init.params.capabilities, {});
    assert.deepEqual(initialized, { jsonrpc: "2.0", method: "notifications/initialized" });
    lane.close("test over");
    assert.equal(await lane.closed, "test over");
  });

  it("20 concurrent callers each get only their own answers and progress; the server never sees their tokens", async () => {
    const proc = spawnFixture();
    const lane = await createStdioLane(laneOpts(proc.stream));
    const callers = Array.from({ length: 20 }, (_, i) => i);
    const results = await Promise.all(
      callers.map(async (i) => {
        // Half use string tokens, half numbers; several callers reuse the same values on purpose.
        const token = i % 2 === 0 ? `agent-token-${i % 4}` : 1000 + (i % 3);
        const steps = 1 + (i % 4);
        const progress: JsonObject[] = [];
        const [slow, echo] = await Promise.all([
          lane.call("tools/call", tool("slow", { steps, ms: 5 + (i % 3) * 5 }), {
            ...T,
            progressToken: token,
            onProgress: (p) => progress.push(p),
          }),
          lane.call("tools/call", tool("echo", { text: `caller ${i}` }), T),
        ]);
        return { i, token, steps, progress, slow, echo };
      }),
    );
    for (const r of results) {
      assert.equal(textOf(r.echo), `caller ${r.i}`);
      assert.equal(textOf(r.slow), `done after ${r.steps} steps`);
      assert.deepEqual(
        r.progress.map((p) => [p.progressToken, p.progress, p.total]),
        Array.from({ length: r.steps }, (_, k) => [r.token, k + 1, r.steps]),
      );
    }
    // What reached the server: lane-minted integer ids, all distinct, and never a caller's token.
    const sent = proc.stream.messages().filter((m) => m.method === "tools/call");
    assert.equal(sent.length, 40);
    assert.ok(sent.every((m) => Number.isInteger(m.id)));
    assert.equal(new Set(sent.map((m) => m.id)).size, 40);
    for (const m of sent.filter((m) => m.params.name === "slow")) {
      assert.equal(m.params._meta.progressToken, m.id);
    }
    assert.ok(!proc.stream.text().includes("agent-token"));
    assert.equal(lane.inFlight, 0);
  });

  it("abort answers Cancelled at once, sends notifications/cancelled with the lane's id, and the lane stays usable", async () => {
    const proc = spawnFixture();
    const lane = await createStdioLane(laneOpts(proc.stream));
    const ac = new AbortController();
    let progressed = 0;
    const pending = lane.call("tools/call", tool("slow", { steps: 100, ms: 50 }), {
      ...T,
      signal: ac.signal,
      progressToken: "p",
      onProgress: () => {
        progressed++;
        ac.abort();
      },
    });
    const outcome = await pending;
    assert.equal(errorCode(outcome), ErrorCodes.Cancelled);
    assert.equal(progressed, 1);
    const call = proc.stream.messages().find((m) => m.params?.name === "slow");
    await until(() => proc.stream.messages().some((m) => m.method === "notifications/cancelled"));
    const cancel = proc.stream.messages().find((m) => m.method === "notifications/cancelled");
    assert.equal(cancel.params.requestId, call.id);
    assert.equal(
      textOf(await lane.call("tools/call", tool("echo", { text: "after" }), T)),
      "after",
    );
    // An already aborted signal: answered at once, nothing sent.
    const before = proc.stream.lines.length;
    const aborted = await lane.call("tools/call", tool("echo", { text: "x" }), {
      ...T,
      signal: AbortSignal.abort(),
    });
    assert.equal(errorCode(aborted), ErrorCodes.Cancelled);
    assert.equal(proc.stream.lines.length, before);
  });

  it("a timeout answers RequestTimeout, cancels upstream, and the lane stays usable", async () => {
    const proc = spawnFixture();
    const lane = await createStdioLane(laneOpts(proc.stream));
    const outcome = await lane.call("tools/call", tool("slow", { steps: 1, ms: 30_000 }), {
      timeoutMs: 100,
    });
    assert.equal(errorCode(outcome), ErrorCodes.RequestTimeout);
    const call = proc.stream.messages().find((m) => m.params?.name === "slow");
    const cancel = proc.stream.messages().find((m) => m.method === "notifications/cancelled");
    assert.deepEqual(cancel.params, { requestId: call.id, reason: "timeout" });
    assert.equal(textOf(await lane.call("tools/call", tool("add", { a: 2, b: 3 }), T)), "5");
    assert.equal(lane.inFlight, 0);
  });

  it("a crash mid-call answers every call in flight with InternalError at once, and closed resolves", async () => {
    const proc = spawnFixture();
    const lane = await createStdioLane(laneOpts(proc.stream));
    const slow = [1, 2, 3].map(() =>
      lane.call("tools/call", tool("slow", { steps: 1, ms: 30_000 }), T),
    );
    await until(() => proc.stream.messages().filter((m) => m.params?.name === "slow").length === 3);
    assert.equal(lane.inFlight, 3);
    const crash = lane.call("tools/call", tool("crash"), T);
    const outcomes = await Promise.all([...slow, crash]);
    for (const o of outcomes) {
      assert.equal(errorCode(o), ErrorCodes.InternalError);
      assert.match((o as any).error.message, /the server exited|the connection failed/);
    }
    assert.match(await lane.closed, /the server exited|the connection failed/);
    assert.equal(await proc.exited, 3);
    assert.equal(lane.inFlight, 0);
    // After the end: answered at once, never hangs.
    const after = await lane.call("tools/call", tool("echo", { text: "x" }), T);
    assert.equal(errorCode(after), ErrorCodes.Unavailable);
  });

  it("an answer over the line cap is MessageTooLarge for that call; the next call is fine", async () => {
    const proc = spawnFixture();
    const lane = await createStdioLane(laneOpts(proc.stream));
    const [big, echo] = await Promise.all([
      lane.call("tools/call", tool("big", { bytes: CAP * 3 }), T),
      lane.call("tools/call", tool("echo", { text: "concurrent" }), T),
    ]);
    assert.equal(errorCode(big), ErrorCodes.MessageTooLarge);
    assert.equal(textOf(echo), "concurrent");
    assert.equal(lane.stats.oversized, 1);
    const fits = await lane.call("tools/call", tool("big", { bytes: CAP / 2 }), T);
    assert.equal(textOf(fits).length, CAP / 2);
    assert.equal(textOf(await lane.call("tools/call", tool("echo", { text: "next" }), T)), "next");
  });

  it("list_changed reaches every listener until it unsubscribes", async () => {
    const proc = spawnFixture();
    const lane = await createStdioLane(laneOpts(proc.stream));
    const a: JsonRpcNotification[] = [];
    const b: JsonRpcNotification[] = [];
    lane.onNotification((n) => a.push(n));
    const offB = lane.onNotification((n) => b.push(n));
    assert.equal(textOf(await lane.call("tools/call", tool("add_tool"), T)), "extra_1");
    await until(() => a.length === 1 && b.length === 1);
    assert.deepEqual(a, [{ jsonrpc: "2.0", method: "notifications/tools/list_changed" }]);
    offB();
    await lane.call("tools/call", tool("add_tool"), T);
    await until(() => a.length === 2);
    assert.equal(b.length, 1);
    const list = await lane.call("tools/list", undefined, T);
    assert.ok((list as any).result.tools.some((t: any) => t.name === "extra_2"));
  });

  it("reuses the InitializeResult of an earlier lane on the same process (no second initialize)", async () => {
    const proc = spawnFixture();
    const a = attachTo(proc);
    const first = await createStdioLane(laneOpts(a.stream));
    const pid = JSON.parse(textOf(await first.call("tools/call", tool("whoami"), T))).pid;
    a.detach();
    await first.closed;
    const b = attachTo(proc);
    const second = await createStdioLane(laneOpts(b.stream, { reuse: first.initialize }));
    assert.equal(second.initialize, first.initialize);
    const who = JSON.parse(textOf(await second.call("tools/call", tool("whoami"), T)));
    assert.equal(who.pid, pid);
    assert.equal(proc.stream.messages().filter((m) => m.method === "initialize").length, 1);
    second.close("done");
  });

  it("createStdioConnector reuses the InitializeResult while startedAt is unchanged, and initializes a new process", async () => {
    let proc = spawnFixture();
    let startedAt = "2026-01-01T00:00:00Z";
    let current: ReturnType<typeof attachTo> | undefined;
    const connect = createStdioConnector({
      server: "mcp-tools",
      maxMessageBytes: CAP,
      initializeTimeoutMs: 10_000,
      attach: () => {
        current = attachTo(proc);
        return Promise.resolve({ stream: current.stream, startedAt });
      },
    });
    const inits = (p: Proc) => p.stream.messages().filter((m) => m.method === "initialize").length;
    const pidOf = async (l: Lane) =>
      JSON.parse(textOf(await l.call("tools/call", tool("whoami"), T))).pid;
    const first = await connect();
    const pid = await pidOf(first);
    current!.detach(); // the attachment drops; the process runs on
    await first.closed;
    const second = await connect();
    assert.equal(await pidOf(second), pid);
    assert.equal(inits(proc), 1);
    second.close("restart");
    const old = proc;
    proc = spawnFixture();
    startedAt = "2026-01-01T00:05:00Z";
    const third = await connect();
    assert.notEqual(await pidOf(third), pid);
    assert.equal(inits(proc), 1);
    assert.equal(inits(old), 1);
    third.close("done");
  });

  it("fails creation within the timeout when the server never answers initialize", async () => {
    const proc = spawnStdio(process.execPath, [
      "-e",
      "process.stdin.resume(); setInterval(() => {}, 1000)",
    ]);
    await assert.rejects(
      createStdioLane(laneOpts(proc.stream, { initializeTimeoutMs: 200 })),
      /did not answer initialize within 200 ms/,
    );
    // No cancellation of initialize (the specification forbids it).
    assert.ok(!proc.stream.messages().some((m) => m.method === "notifications/cancelled"));
  });

  it("fails creation at once when the command exits", async () => {
    const proc = spawnStdio(process.execPath, ["-e", "process.exit(1)"]);
    await assert.rejects(
      createStdioLane(laneOpts(proc.stream, { initializeTimeoutMs: 30_000 })),
      /the server exited before initializing/,
    );
  });
});

describe("upstream stdio lane (scripted servers)", function () {
  this.timeout(20_000);

  it("answers ping with {} and every other server request with -32601, at once", async () => {
    let pendingCall: unknown;
    const s = scriptedServer((m, srv) => {
      if (m.method === "tools/call") {
        srv.send({ jsonrpc: "2.0", id: "s-1", method: "sampling/createMessage", params: {} });
        srv.send({ jsonrpc: "2.0", id: 7, method: "elicitation/create", params: {} });
        srv.send({ jsonrpc: "2.0", id: 8, method: "roots/list" });
        srv.send({ jsonrpc: "2.0", id: 9, method: "ping" });
        pendingCall = m.id;
      }
      if (m.id === 9 && "result" in m) {
        srv.send({ jsonrpc: "2.0", id: pendingCall, result: { content: [] } });
      }
    });
    const lane = await createStdioLane(laneOpts(s.stream));
    const outcome = await lane.call("tools/call", tool("provoke"), T);
    assert.deepEqual(outcome, { result: { content: [] } });
    const answers = s.received.filter((m) => !("method" in m));
    assert.deepEqual(answers, [
      { jsonrpc: "2.0", id: "s-1", error: { code: -32601, message: "Method not found" } },
      { jsonrpc: "2.0", id: 7, error: { code: -32601, message: "Method not found" } },
      { jsonrpc: "2.0", id: 8, error: { code: -32601, message: "Method not found" } },
      { jsonrpc: "2.0", id: 9, result: {} },
    ]);
    assert.equal(lane.stats.serverRequests, 4);
    // ping from the edge never reaches the server.
    assert.deepEqual(await lane.call("ping", undefined, T), { result: {} });
    assert.ok(!s.received.some((m) => m.method === "ping"));
  });

  it("drops and counts lines that are not JSON or not JSON-RPC, and late answers; never fatal", async () => {
    const s = scriptedServer((m, srv) => {
      if (m.method === "tools/call" && m.params.name === "late") {
        setTimeout(
          () =>
            srv.send({
              jsonrpc: "2.0",
              id: m.id,
              result: { content: [{ type: "text", text: "late" }] },
            }),
          150,
        );
      } else if (m.method === "tools/call") {
        srv.write("not json at all\n");
        srv.write('{"jsonrpc":"2.0","weird":true}\n');
        srv.write("[1,2]\n\n\r\n");
        srv.write('{"jsonrpc":"2.0","id":424242,"result":{}}\n');
        srv.write(`{"result":{"ok":1},"jsonrpc":"2.0","id":${m.id}}`);
        srv.write("\n");
      }
    });
    const lane = await createStdioLane(laneOpts(s.stream));
    assert.deepEqual(await lane.call("tools/call", tool("x"), T), { result: { ok: 1 } });
    assert.equal(lane.stats.invalid, 3);
    const timedOut = await lane.call("tools/call", tool("late"), { timeoutMs: 50 });
    assert.equal(errorCode(timedOut), ErrorCodes.RequestTimeout);
    await until(() => lane.stats.unmatched === 2);
    assert.deepEqual(await lane.call("tools/call", tool("x"), T), { result: { ok: 1 } });
  });

  it("passes logs to listeners only with forwardLogs; other notifications only as listed", async () => {
    for (const forwardLogs of [false, true]) {
      const s = scriptedServer((m, srv) => {
        if (m.method !== "tools/call") return;
        srv.send({
          jsonrpc: "2.0",
          method: "notifications/message",
          params: { level: "info", data: "hi" },
        });
        srv.send({
          jsonrpc: "2.0",
          method: "notifications/resources/updated",
          params: { uri: "a://b" },
        });
        srv.send({ jsonrpc: "2.0", method: "notifications/prompts/list_changed" });
        srv.send({ jsonrpc: "2.0", method: "notifications/something_else" });
        srv.send({
          jsonrpc: "2.0",
          method: "notifications/progress",
          params: { progressToken: 1, progress: 1 },
        });
        srv.send({ jsonrpc: "2.0", id: m.id, result: {} });
      });
      const lane = await createStdioLane(laneOpts(s.stream, { forwardLogs }));
      const got: string[] = [];
      lane.onNotification((n) => got.push(n.method));
      await lane.call("tools/call", tool("x"), T);
      assert.deepEqual(got, [
        ...(forwardLogs ? ["notifications/message"] : []),
        "notifications/resources/updated",
        "notifications/prompts/list_changed",
      ]);
    }
  });

  it("ref-counts subscriptions per URI: only the first subscribe and the last unsubscribe reach the server", async () => {
    const s = scriptedServer((m, srv) => {
      if (m.method === "resources/subscribe" || m.method === "resources/unsubscribe") {
        setTimeout(() => srv.send({ jsonrpc: "2.0", id: m.id, result: {} }), 20);
      }
    });
    const lane = await createStdioLane(laneOpts(s.stream));
    const upstream = (method: string) => s.received.filter((m) => m.method === method).length;
    // Two at once share the one upstream subscribe; a third joins after.
    const [a, b] = await Promise.all([
      lane.subscribe("file:///x", T),
      lane.subscribe("file:///x", T),
    ]);
    assert.deepEqual([a, b], [{ result: {} }, { result: {} }]);
    assert.deepEqual(await lane.subscribe("file:///x", T), { result: {} });
    assert.deepEqual(await lane.subscribe("file:///y", T), { result: {} });
    assert.equal(upstream("resources/subscribe"), 2);
    await lane.unsubscribe("file:///x", T);
    await lane.unsubscribe("file:///x", T);
    assert.equal(upstream("resources/unsubscribe"), 0);
    await lane.unsubscribe("file:///x", T);
    assert.equal(upstream("resources/unsubscribe"), 1);
    // Unsubscribing what nobody holds never reaches the server.
    assert.deepEqual(await lane.unsubscribe("file:///x", T), { result: {} });
    assert.equal(upstream("resources/unsubscribe"), 1);
    const subs = s.received.filter((m) => m.method === "resources/subscribe");
    assert.deepEqual(
      subs.map((m) => m.params.uri),
      ["file:///x", "file:///y"],
    );
  });

  it("a subscriber that gives up while the subscribe is in flight does not keep it held", async () => {
    const s = scriptedServer((m, srv) => {
      if (m.method === "resources/subscribe") {
        setTimeout(() => srv.send({ jsonrpc: "2.0", id: m.id, result: {} }), 100);
      }
      if (m.method === "resources/unsubscribe") srv.send({ jsonrpc: "2.0", id: m.id, result: {} });
    });
    const lane = await createStdioLane(laneOpts(s.stream));
    const ac = new AbortController();
    const p = lane.subscribe("file:///z", { ...T, signal: ac.signal });
    ac.abort();
    assert.equal(errorCode(await p), ErrorCodes.Cancelled);
    await until(() => s.received.some((m) => m.method === "resources/unsubscribe"));
    assert.equal((lane as any).subscribers("file:///z"), 0);
  });

  it("restores every caller's progress token, whatever its type (property)", async () => {
    const s = scriptedServer((m, srv) => {
      if (m.method !== "tools/call") return;
      const token = m.params._meta?.progressToken;
      for (let k = 1; k <= m.params.arguments.n; k++) {
        srv.send({
          jsonrpc: "2.0",
          method: "notifications/progress",
          params: { progressToken: token, progress: k },
        });
      }
      srv.send({ jsonrpc: "2.0", id: m.id, result: { token } });
    });
    const lane = await createStdioLane(laneOpts(s.stream));
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            token: fc.oneof(
              fc.string({ unit: "binary" }),
              fc.integer(),
              fc.double({ noNaN: true, noDefaultInfinity: true }),
            ),
            n: fc.integer({ min: 0, max: 4 }),
            viaMeta: fc.boolean(),
          }),
          { minLength: 1, maxLength: 8 },
        ),
        async (callers) => {
          const before = s.received.length;
          const runs = await Promise.all(
            callers.map(async (c) => {
              const got: unknown[] = [];
              const params = tool("p", { n: c.n });
              const opts = { ...T, onProgress: (p: JsonObject) => got.push(p.progressToken) };
              const outcome = c.viaMeta
                ? await lane.call(
                    "tools/call",
                    { ...params, _meta: { progressToken: c.token, other: 1 } },
                    opts,
                  )
                : await lane.call("tools/call", params, { ...opts, progressToken: c.token });
              return { c, got, outcome };
            }),
          );
          for (const r of runs) {
            assert.deepEqual(
              r.got,
              Array.from({ length: r.c.n }, () => r.c.token),
            );
            assert.ok("result" in r.outcome && Number.isInteger(r.outcome.result.token));
          }
          const sent = s.received.slice(before).filter((m) => m.method === "tools/call");
          for (const m of sent) {
            assert.equal(m.params._meta.progressToken, m.id);
            if (m.params._meta.other !== undefined) assert.equal(m.params._meta.other, 1);
          }
        },
      ),
      { numRuns: 50 },
    );
  });

  it("respects backpressure: writes wait for drain, a full queue answers Unavailable, a cancelled queued call is never sent", async () => {
    const [laneSide, server] = duplexPair({ highWaterMark: 1024 });
    const received: any[] = [];
    let buf = "";
    server.on("data", (chunk: Buffer) => {
      buf += chunk.toString("utf8");
      let nl: number;
      while ((nl = buf.indexOf("\n")) !== -1) {
        const m = JSON.parse(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
        received.push(m);
        if (m.method === "initialize") {
          server.write(`${JSON.stringify({ jsonrpc: "2.0", id: m.id, result: INIT_RESULT })}\n`);
        } else if (m.method === "tools/call") {
          const text = String(m.params.arguments.text).length;
          server.write(`${JSON.stringify({ jsonrpc: "2.0", id: m.id, result: { text } })}\n`);
        }
      }
    });
    const lane = await createStdioLane(laneOpts(laneSide, { maxQueuedBytes: 64 * 1024 }));
    await until(() => received.length === 2); // initialize, initialized
    server.pause(); // the server stops reading its input
    const text = "q".repeat(4096);
    const call = (signal?: AbortSignal) =>
      lane.call("tools/call", tool("echo", { text }), { timeoutMs: 60_000, signal });
    const first = call();
    const ac = new AbortController();
    const queued = call(ac.signal);
    ac.abort();
    assert.equal(errorCode(await queued), ErrorCodes.Cancelled);
    const rest = Array.from({ length: 40 }, () => call());
    const outcomes = await Promise.all(
      rest.map((p) => Promise.race([p, new Promise<null>((r) => setTimeout(() => r(null), 300))])),
    );
    const refused = outcomes.filter((o) => o !== null && errorCode(o) === ErrorCodes.Unavailable);
    assert.ok(refused.length > 0 && refused.length < 40, `${refused.length} refused`);
    assert.match((refused[0] as any).error.message, /not reading its input/);
    server.resume();
    const answered = [await first, ...(await Promise.all(rest))].filter((o) => "result" in o);
    assert.equal(answered.length, 41 - refused.length);
    assert.ok(answered.every((o) => (o as any).result.text === 4096));
    // The cancelled call never left the queue: the server got neither it nor a cancellation.
    assert.equal(received.filter((m) => m.method === "tools/call").length, answered.length);
    assert.ok(!received.some((m) => m.method === "notifications/cancelled"));
    lane.close("done");
  });

  it("the lane ends when the server's side ends, answering what is in flight", async () => {
    const s = scriptedServer(() => undefined);
    const lane = await createStdioLane(laneOpts(s.stream));
    const p = lane.call("tools/call", tool("never"), T);
    s.end();
    assert.deepEqual(await p, {
      error: { code: ErrorCodes.InternalError, message: "the server exited" },
    });
    assert.equal(await lane.closed, "the server exited");
  });
});
