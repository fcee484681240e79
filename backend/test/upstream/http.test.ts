/* eslint-disable @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-argument, @typescript-eslint/no-unsafe-return, @typescript-eslint/no-unsafe-call, @typescript-eslint/no-explicit-any -- tests read JSON loosely */
import assert from "node:assert/strict";
import http from "node:http";
import type net from "node:net";
import { createHttpLane } from "../../src/upstream/http";
import type { HttpLaneOptions } from "../../src/upstream/http";
import { createSupervisor } from "../../src/upstream/supervisor";
import type { CallOutcome, JsonObject, JsonRpcNotification } from "../../src/upstream/types";
import { ErrorCodes } from "../../src/upstream/types";
import type { HttpFixture, RecordingProxy } from "./helpers";
import {
  freePort,
  HTTP_FIXTURE,
  INIT_RESULT,
  recordingProxy,
  startHttpFixture,
  STATELESS_FIXTURE,
  textOf,
  until,
} from "./helpers";

const CAP = 64 * 1024;
const T = { timeoutMs: 20_000 };
const tool = (name: string, args: JsonObject = {}): JsonObject => ({ name, arguments: args });

function opts(url: string, extra: Partial<HttpLaneOptions> = {}): HttpLaneOptions {
  return {
    server: "mcp-tools-http",
    url,
    maxMessageBytes: CAP,
    initializeTimeoutMs: 10_000,
    clientVersion: "9.9.9-test",
    ...extra,
  };
}

function errorCode(outcome: CallOutcome): number | undefined {
  return "error" in outcome ? outcome.error.code : undefined;
}

describe("upstream http lane (sessionful mcp-tools http.mjs)", function () {
  this.timeout(60_000);
  let fixture: HttpFixture;
  let proxy: RecordingProxy;

  beforeEach(async () => {
    fixture = await startHttpFixture(HTTP_FIXTURE);
    proxy = await recordingProxy(fixture);
  });
  afterEach(async () => {
    await proxy.close();
    await fixture.stop();
  });

  it("initializes, then sends the session id and MCP-Protocol-Version on every later request", async () => {
    const lane = await createHttpLane(opts(proxy.url));
    assert.equal(lane.initialize.serverInfo.name, "mcp-tools");
    const who = JSON.parse(textOf(await lane.call("tools/call", tool("whoami"), T)));
    assert.deepEqual(who.clientInfo, { name: "agentopia-toolbox-gateway", version: "9.9.9-test" });
    assert.deepEqual(who.capabilities, {});
    await until(() => proxy.exchanges.some((e) => e.method === "GET"));
    const [init, ...later] = proxy.exchanges;
    assert.equal(init.body.method, "initialize");
    assert.equal(init.headers["mcp-session-id"], undefined);
    assert.equal(later[0].body.method, "notifications/initialized");
    assert.equal(later[0].status, 202);
    const sid = later[0].headers["mcp-session-id"];
    assert.match(String(sid), /^[0-9a-f-]{36}$/);
    for (const e of later) {
      assert.equal(e.headers["mcp-session-id"], sid);
      assert.equal(e.headers["mcp-protocol-version"], "2025-11-25");
      assert.match(String(e.headers.accept), /text\/event-stream/);
    }
    lane.close("done");
    await until(() => proxy.exchanges.some((e) => e.method === "DELETE"));
    const del = proxy.exchanges.find((e) => e.method === "DELETE")!;
    assert.equal(del.headers["mcp-session-id"], sid);
  });

  it("concurrent callers get their own answers and SSE progress with their tokens restored", async () => {
    const lane = await createHttpLane(opts(proxy.url));
    const runs = await Promise.all(
      Array.from({ length: 12 }, async (_, i) => {
        const token = i % 2 ? `caller-token-${i}` : i;
        const progress: JsonObject[] = [];
        const steps = 1 + (i % 3);
        const [slow, echo] = await Promise.all([
          lane.call("tools/call", tool("slow", { steps, ms: 10 }), {
            ...T,
            progressToken: token,
            onProgress: (p) => progress.push(p),
          }),
          lane.call("tools/call", tool("echo", { text: `c${i}` }), T),
        ]);
        return { i, token, steps, progress, slow, echo };
      }),
    );
    for (const r of runs) {
      assert.equal(textOf(r.echo), `c${r.i}`);
      assert.equal(textOf(r.slow), `done after ${r.steps} steps`);
      assert.deepEqual(
        r.progress.map((p) => [p.progressToken, p.progress]),
        Array.from({ length: r.steps }, (_, k) => [r.token, k + 1]),
      );
    }
    const calls = proxy.exchanges.filter((e) => e.body?.method === "tools/call");
    assert.equal(new Set(calls.map((e) => e.body.id)).size, 24);
    assert.ok(!JSON.stringify(proxy.exchanges.map((e) => e.body)).includes("caller-token"));
    lane.close("done");
  });

  it("abort and timeout answer at once, POST notifications/cancelled with the lane's id, and the lane stays usable", async () => {
    const lane = await createHttpLane(opts(proxy.url));
    const ac = new AbortController();
    const aborted = await lane.call("tools/call", tool("slow", { steps: 100, ms: 50 }), {
      ...T,
      signal: ac.signal,
      progressToken: 1,
      onProgress: () => ac.abort(),
    });
    assert.equal(errorCode(aborted), ErrorCodes.Cancelled);
    const timedOut = await lane.call("tools/call", tool("slow", { steps: 1, ms: 30_000 }), {
      timeoutMs: 150,
    });
    assert.equal(errorCode(timedOut), ErrorCodes.RequestTimeout);
    await until(
      () =>
        proxy.exchanges.filter(
          (e) => e.body?.method === "notifications/cancelled" && e.status !== undefined,
        ).length === 2,
    );
    const slowIds = proxy.exchanges
      .filter((e) => e.body?.params?.name === "slow")
      .map((e) => e.body.id);
    const cancels = proxy.exchanges.filter((e) => e.body?.method === "notifications/cancelled");
    assert.deepEqual(
      cancels.map((e) => [e.body.params.requestId, e.body.params.reason, e.status]),
      [
        [slowIds[0], "cancelled", 202],
        [slowIds[1], "timeout", 202],
      ],
    );
    assert.equal(textOf(await lane.call("tools/call", tool("add", { a: 1, b: 2 }), T)), "3");
    assert.equal(lane.inFlight, 0);
    lane.close("done");
  });

  it("list_changed arrives over the GET stream", async () => {
    const lane = await createHttpLane(opts(proxy.url));
    const got: JsonRpcNotification[] = [];
    lane.onNotification((n) => got.push(n));
    await until(() => proxy.exchanges.some((e) => e.method === "GET" && e.status === 200));
    assert.equal(textOf(await lane.call("tools/call", tool("add_tool"), T)), "extra_1");
    await until(() => got.length > 0);
    assert.deepEqual(got[0], { jsonrpc: "2.0", method: "notifications/tools/list_changed" });
    lane.close("done");
  });

  it("an answer over the cap is MessageTooLarge for that call; the next call is fine", async () => {
    const lane = await createHttpLane(opts(proxy.url));
    const big = await lane.call("tools/call", tool("big", { bytes: CAP * 2 }), T);
    assert.equal(errorCode(big), ErrorCodes.MessageTooLarge);
    assert.equal(lane.stats.oversized, 1);
    assert.equal(textOf(await lane.call("tools/call", tool("echo", { text: "ok" }), T)), "ok");
    lane.close("done");
  });
});

describe("upstream http lane: the upstream session ends", function () {
  this.timeout(60_000);
  let fixture: HttpFixture | undefined;
  afterEach(async () => fixture?.stop());

  it("a restarted server answers 404 for the session: the lane closes, and the supervisor builds a new one", async () => {
    const port = await freePort();
    fixture = await startHttpFixture(HTTP_FIXTURE, port);
    const url = fixture.url;
    const lanes: Array<Awaited<ReturnType<typeof createHttpLane>>> = [];
    const sup = createSupervisor({
      server: "mcp-tools-http",
      // A slow GET reconnect: the 404 comes from the next call, not from the GET stream.
      connect: async () => {
        const l = await createHttpLane(
          opts(url, { getStreamBackoff: { initialMs: 60_000, maxMs: 60_000 } }),
        );
        lanes.push(l);
        return l;
      },
      backoff: { initialMs: 20, maxMs: 100 },
    });
    const first = await sup.lane(10_000);
    assert.equal(textOf(await first.call("tools/call", tool("counter"), T)), "1");
    await fixture.stop();
    fixture = await startHttpFixture(HTTP_FIXTURE, port);
    const outcome = await first.call("tools/call", tool("counter"), T);
    assert.deepEqual(outcome, {
      error: { code: ErrorCodes.InternalError, message: "the upstream session ended" },
    });
    assert.equal(await first.closed, "the upstream session ended");
    const second = await sup.lane(10_000);
    assert.notEqual(second, first);
    assert.equal(textOf(await second.call("tools/call", tool("counter"), T)), "1");
    assert.equal(lanes.length, 2);
    assert.equal(sup.view().state, "ready");
    sup.shutdown("done");
  });

  it("a server that is gone: the call answers Unavailable at once and the lane closes", async () => {
    fixture = await startHttpFixture(HTTP_FIXTURE);
    const lane = await createHttpLane(
      opts(fixture.url, { getStreamBackoff: { initialMs: 60_000, maxMs: 60_000 } }),
    );
    await fixture.stop();
    const outcome = await lane.call("tools/call", tool("echo", { text: "x" }), T);
    assert.equal(errorCode(outcome), ErrorCodes.Unavailable);
    // Refused by the dead port, or already closed by the GET stream's reset: Unavailable either way.
    assert.match((outcome as any).error.message, /unreachable \((ECONNREFUSED|ECONNRESET)\)/);
    assert.match(await lane.closed, /unreachable/);
  });

  it("a server in flight when it dies: the call answers InternalError, not a hang", async () => {
    fixture = await startHttpFixture(HTTP_FIXTURE);
    const lane = await createHttpLane(opts(fixture.url));
    const p = lane.call("tools/call", tool("slow", { steps: 1, ms: 30_000 }), T);
    await until(() => lane.inFlight === 1);
    await new Promise((r) => setTimeout(r, 100));
    await fixture.stop();
    const outcome = await p;
    assert.equal(errorCode(outcome), ErrorCodes.InternalError);
    lane.close("done");
  });
});

describe("upstream http lane (stateless mcp-echo)", function () {
  this.timeout(60_000);
  let fixture: HttpFixture;
  let proxy: RecordingProxy;
  before(async () => {
    fixture = await startHttpFixture(STATELESS_FIXTURE);
    proxy = await recordingProxy(fixture);
  });
  after(async () => {
    await proxy.close();
    await fixture.stop();
  });

  it("works without a session id: no GET stream after 405, no DELETE", async () => {
    const lane = await createHttpLane(
      opts(proxy.url, { getStreamBackoff: { initialMs: 1, maxMs: 1 } }),
    );
    assert.equal(lane.initialize.serverInfo.name, "mcp-echo");
    const answers = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        lane.call("tools/call", tool("add", { a: i, b: 100 }), T),
      ),
    );
    assert.deepEqual(
      answers.map(textOf),
      Array.from({ length: 10 }, (_, i) => String(i + 100)),
    );
    await new Promise((r) => setTimeout(r, 100));
    const gets = proxy.exchanges.filter((e) => e.method === "GET");
    assert.deepEqual(
      gets.map((e) => e.status),
      [405],
    );
    assert.ok(proxy.exchanges.every((e) => e.headers["mcp-session-id"] === undefined));
    lane.close("done");
    await new Promise((r) => setTimeout(r, 100));
    assert.ok(!proxy.exchanges.some((e) => e.method === "DELETE"));
  });
});

/** A hand-written streamable HTTP server, to show what the fixtures never send. */
async function handServer(
  handle: (req: http.IncomingMessage, body: any, res: http.ServerResponse) => void,
): Promise<{ url: string; received: any[]; close(): Promise<void> }> {
  const received: any[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const raw = Buffer.concat(chunks).toString("utf8");
      const body = raw ? JSON.parse(raw) : undefined;
      received.push({ method: req.method, headers: req.headers, body });
      if (req.method === "DELETE") return res.writeHead(200).end();
      handle(req, body, res);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    received,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

describe("upstream http lane (hand-written servers)", function () {
  this.timeout(30_000);

  it("answers the server's requests on the GET stream by POST: ping {}, the rest -32601", async () => {
    const srv = await handServer((req, body, res) => {
      if (req.method === "GET") {
        res.writeHead(200, { "content-type": "text/event-stream" });
        res.write(`data: ${JSON.stringify({ jsonrpc: "2.0", id: 1, method: "ping" })}\n\n`);
        res.write(
          `event: message\ndata: ${JSON.stringify({ jsonrpc: "2.0", id: "s", method: "sampling/createMessage", params: {} })}\n\n`,
        );
        res.write(
          `data: ${JSON.stringify({ jsonrpc: "2.0", method: "notifications/resources/list_changed" })}\n\n`,
        );
        return;
      }
      if (body?.method === "initialize") {
        res.writeHead(200, { "content-type": "application/json", "mcp-session-id": "sess-1" });
        return res.end(JSON.stringify({ jsonrpc: "2.0", id: body.id, result: INIT_RESULT }));
      }
      if (body && !("method" in body)) return res.writeHead(202).end();
      if (body?.method?.startsWith("notifications/")) return res.writeHead(202).end();
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ jsonrpc: "2.0", id: body.id, result: { plain: true } }));
    });
    const lane = await createHttpLane(opts(srv.url));
    const got: JsonRpcNotification[] = [];
    lane.onNotification((n) => got.push(n));
    await until(() => srv.received.filter((r) => r.body && !("method" in r.body)).length === 2);
    const answers = srv.received.filter((r) => r.body && !("method" in r.body));
    assert.deepEqual(
      answers.map((r) => r.body),
      [
        { jsonrpc: "2.0", id: 1, result: {} },
        { jsonrpc: "2.0", id: "s", error: { code: -32601, message: "Method not found" } },
      ],
    );
    assert.ok(answers.every((r) => r.headers["mcp-session-id"] === "sess-1"));
    await until(() => got.length === 1);
    assert.equal(got[0].method, "notifications/resources/list_changed");
    // A JSON (not SSE) answer.
    assert.deepEqual(await lane.call("tools/list", undefined, T), { result: { plain: true } });
    lane.close("done");
    await srv.close();
  });

  it("reconnects the GET stream with backoff when it ends (409 and a closed stream included)", async () => {
    let gets = 0;
    const srv = await handServer((req, body, res) => {
      if (req.method === "GET") {
        gets++;
        if (gets === 2) return res.writeHead(409).end(); // "only one stream": try again later
        res.writeHead(200, { "content-type": "text/event-stream" });
        const n = { jsonrpc: "2.0", method: "notifications/tools/list_changed", params: { gets } };
        return res.end(`data: ${JSON.stringify(n)}\n\n`);
      }
      if (body?.method === "initialize") {
        res.writeHead(200, { "content-type": "application/json", "mcp-session-id": "s" });
        return res.end(JSON.stringify({ jsonrpc: "2.0", id: body.id, result: INIT_RESULT }));
      }
      res.writeHead(202).end();
    });
    const lane = await createHttpLane(
      opts(srv.url, { getStreamBackoff: { initialMs: 5, maxMs: 20 } }),
    );
    const got: JsonRpcNotification[] = [];
    lane.onNotification((n) => got.push(n));
    await until(() => got.length >= 2);
    assert.deepEqual(
      got.slice(0, 2).map((n) => n.params?.gets),
      [1, 3],
    );
    lane.close("done");
    // A GET already on the wire may still arrive; after that, none is started again.
    await new Promise((r) => setTimeout(r, 50));
    const after = gets;
    await new Promise((r) => setTimeout(r, 150));
    assert.equal(gets, after, "no GET after close");
    await srv.close();
  });

  it("a JSON body over the cap is MessageTooLarge; HTTP errors are answers, never hangs", async () => {
    const srv = await handServer((req, body, res) => {
      if (req.method === "GET") return res.writeHead(405).end();
      if (body?.method === "initialize") {
        res.writeHead(200, { "content-type": "application/json" });
        return res.end(JSON.stringify({ jsonrpc: "2.0", id: body.id, result: INIT_RESULT }));
      }
      if (body?.method?.startsWith("notifications/")) return res.writeHead(202).end();
      const name = body.params?.name;
      if (name === "big") {
        res.writeHead(200, { "content-type": "application/json" });
        return res.end(
          JSON.stringify({ jsonrpc: "2.0", id: body.id, result: { t: "b".repeat(CAP * 2) } }),
        );
      }
      if (name === "overloaded") {
        res.writeHead(503, { "content-type": "application/json" });
        return res.end(
          JSON.stringify({ jsonrpc: "2.0", id: null, error: { code: -32000, message: "busy" } }),
        );
      }
      if (name === "refused") {
        res.writeHead(400, { "content-type": "application/json" });
        return res.end(
          JSON.stringify({
            jsonrpc: "2.0",
            id: body.id,
            error: { code: -32602, message: "bad args" },
          }),
        );
      }
      if (name === "accepted") return res.writeHead(202).end();
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ jsonrpc: "2.0", id: body.id, result: { ok: name } }));
    });
    const lane = await createHttpLane(opts(srv.url));
    assert.equal(
      errorCode(await lane.call("tools/call", tool("big"), T)),
      ErrorCodes.MessageTooLarge,
    );
    assert.deepEqual(await lane.call("tools/call", tool("overloaded"), T), {
      error: { code: ErrorCodes.Unavailable, message: "the server answered HTTP 503: busy" },
    });
    assert.deepEqual(await lane.call("tools/call", tool("refused"), T), {
      error: { code: -32602, message: "bad args" },
    });
    assert.equal(
      errorCode(await lane.call("tools/call", tool("accepted"), T)),
      ErrorCodes.InternalError,
    );
    assert.deepEqual(await lane.call("tools/call", tool("fine"), T), { result: { ok: "fine" } });
    lane.close("done");
    await srv.close();
  });

  it("creation fails at once when nothing listens, and within the timeout when nothing answers", async () => {
    const port = await freePort();
    await assert.rejects(
      createHttpLane(opts(`http://127.0.0.1:${port}/mcp`)),
      /unreachable \(ECONNREFUSED\)/,
    );
    const silent = await handServer(() => undefined);
    await assert.rejects(
      createHttpLane(opts(silent.url, { initializeTimeoutMs: 200 })),
      /did not answer initialize within 200 ms/,
    );
    await silent.close();
  });
});
