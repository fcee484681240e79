/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-argument, @typescript-eslint/no-unsafe-return -- tests read JSON loosely */
// Limits and failures: rate, sessions, calls in flight, idle expiry, keep-alives, stopped and
// crashing servers, and isolation per session, each on a gateway of its own.
import assert from "node:assert/strict";
import { createStdioLane, createSupervisor } from "../../src/upstream";
import { spawn } from "node:child_process";
import { Duplex } from "node:stream";
import type { TestGateway, TestServer } from "./helpers";
import {
  auth,
  modern,
  modernHeaders,
  openSse,
  raw,
  rawInitialize,
  sessionHeaders,
  startGateway,
  startServer,
  TOKENS,
  until,
} from "./helpers";

const CALL = (id: number | string, name: string, args: object = {}) => ({
  jsonrpc: "2.0",
  id,
  method: "tools/call",
  params: { name, arguments: args },
});
const text = (res: any): string => res.json.result.content[0].text;

describe("MCP edge limits and failures", function () {
  this.timeout(60_000);
  const gateways: TestGateway[] = [];
  async function gateway(opts: Parameters<typeof startGateway>[0]): Promise<TestGateway> {
    const g = await startGateway(opts);
    gateways.push(g);
    return g;
  }
  afterEach(async () => {
    await Promise.all(gateways.splice(0).map((g) => g.stop()));
  });

  it("429 with Retry-After above the principal's rate; other principals are not affected", async () => {
    const t = 1_000_000;
    const gw = await gateway({
      servers: [{ name: "tools", kind: "stdio" }],
      limits: { ratePerMinute: 60, rateBurst: 2 },
      now: () => t,
    });
    const body = modern(1, "server/discover");
    const send = (token: string) =>
      raw(gw.base, "POST", "/mcp/tools", { headers: modernHeaders(body, token), body });
    assert.equal((await send(TOKENS.all)).status, 200);
    assert.equal((await send(TOKENS.all)).status, 200);
    const limited = await send(TOKENS.all);
    assert.equal(limited.status, 429);
    assert.equal(limited.headers["retry-after"], "1");
    assert.match(limited.json.error.message, /rate limit/);
    assert.equal((await send(TOKENS.other)).status, 200);
    assert.equal(gw.metrics.rateLimitedCount, 1);
  });

  it("at most maxSessionsPerServer sessions per server: the next initialize gets 503", async () => {
    const gw = await gateway({
      servers: [{ name: "tools", kind: "stdio" }],
      limits: { maxSessionsPerServer: 2 },
    });
    const a = await rawInitialize(gw.base, "/mcp/tools");
    await rawInitialize(gw.base, "/mcp/tools");
    const third = await raw(gw.base, "POST", "/mcp/tools", {
      headers: auth(),
      body: {
        jsonrpc: "2.0",
        id: 1,
        method: "initialize",
        params: {
          protocolVersion: "2025-11-25",
          capabilities: {},
          clientInfo: { name: "x", version: "0" },
        },
      },
    });
    assert.equal(third.status, 503);
    assert.match(third.json.error.message, /maxSessionsPerServer/);
    // /mcp has its own count.
    await rawInitialize(gw.base, "/mcp");
    await raw(gw.base, "DELETE", "/mcp/tools", { headers: sessionHeaders(a.sessionId) });
    await rawInitialize(gw.base, "/mcp/tools");
    assert.deepEqual(gw.gw.stats().sessions, { tools: 2, "*": 1 });
  });

  it("calls in flight per server are capped: 503 with Retry-After", async () => {
    const gw = await gateway({
      servers: [{ name: "tools", kind: "stdio" }],
      limits: { maxInFlightPerServer: 1 },
    });
    const { sessionId } = await rawInitialize(gw.base, "/mcp/tools");
    const slow = raw(gw.base, "POST", "/mcp/tools", {
      headers: sessionHeaders(sessionId),
      body: CALL(1, "slow", { steps: 4, ms: 100 }),
    });
    await until(() => gw.gw.stats().inFlight.tools === 1);
    const refused = await raw(gw.base, "POST", "/mcp/tools", {
      headers: sessionHeaders(sessionId),
      body: CALL(2, "echo", { text: "x" }),
    });
    assert.equal(refused.status, 503);
    assert.equal(refused.headers["retry-after"], "1");
    assert.equal(refused.json.id, 2);
    assert.match(refused.json.error.message, /maxInFlightPerServer/);
    assert.equal(text(await slow), "done after 4 steps");
    assert.ok(gw.logs.audits().some((a) => a.outcome === "limited"));
  });

  it("a session unused for sessionIdleMs is ended: 404, and its state is freed", async () => {
    let t = 5_000_000;
    const gw = await gateway({
      servers: [{ name: "tools", kind: "stdio" }],
      limits: { sessionIdleMs: 1_000 },
      now: () => t,
    });
    const { sessionId } = await rawInitialize(gw.base, "/mcp/tools");
    const stream = await openSse(gw.base, "GET", "/mcp/tools", sessionHeaders(sessionId));
    t += 999;
    const used = await raw(gw.base, "POST", "/mcp/tools", {
      headers: sessionHeaders(sessionId),
      body: { jsonrpc: "2.0", id: 1, method: "ping" },
    });
    assert.equal(used.status, 200);
    t += 1_001;
    const expired = await raw(gw.base, "POST", "/mcp/tools", {
      headers: sessionHeaders(sessionId),
      body: { jsonrpc: "2.0", id: 2, method: "ping" },
    });
    assert.equal(expired.status, 404);
    // The sweeper frees it, stream included.
    await stream.ended;
    await until(() => gw.gw.stats().sessions.tools === undefined);
    assert.ok(gw.metrics.closed.some((c) => c.reason === "expired"));
  });

  it("SSE streams carry keep-alive comments every keepAliveMs", async () => {
    const gw = await gateway({
      servers: [{ name: "tools", kind: "stdio" }],
      limits: { keepAliveMs: 20 },
    });
    const { sessionId } = await rawInitialize(gw.base, "/mcp/tools");
    const stream = await openSse(gw.base, "GET", "/mcp/tools", sessionHeaders(sessionId));
    await until(() => stream.comments >= 2);
    stream.close();
    await until(() => gw.gw.stats().streams === 0);
  });

  it("a stopped server answers 503 at once, naming it", async () => {
    const gw = await gateway({ servers: [{ name: "tools", kind: "stdio" }] });
    gw.servers.get("tools")!.running = false;
    const body = modern(1, "tools/list");
    const res = await raw(gw.base, "POST", "/mcp/tools", { headers: modernHeaders(body), body });
    assert.equal(res.status, 503);
    assert.equal(res.json.error.code, -32000);
    assert.match(res.json.error.message, /"tools" is stopped/);
    // /mcp leaves it out instead of failing the list.
    const agg = await raw(gw.base, "POST", "/mcp", { headers: modernHeaders(body), body });
    assert.equal(agg.status, 200);
    assert.deepEqual(agg.json.result.tools, []);
  });

  it("a crash mid-call answers at once; the next call gets the restarted server; GET streams hear list_changed", async () => {
    const gw = await gateway({ servers: [{ name: "tools", kind: "stdio" }] });
    const { sessionId } = await rawInitialize(gw.base, "/mcp/tools");
    const stream = await openSse(gw.base, "GET", "/mcp/tools", sessionHeaders(sessionId));
    const slow = raw(gw.base, "POST", "/mcp/tools", {
      headers: sessionHeaders(sessionId),
      body: CALL(1, "slow", { steps: 100, ms: 100 }),
    });
    await until(() => gw.gw.stats().inFlight.tools === 1);
    const crash = await raw(gw.base, "POST", "/mcp/tools", {
      headers: sessionHeaders(sessionId),
      body: CALL(2, "crash"),
    });
    assert.equal(crash.json.error.code, -32603);
    assert.match(crash.json.error.message, /exited/);
    const slowAnswer = await slow;
    assert.equal(slowAnswer.json.error.code, -32603);
    // The supervisor restarts it; the session carries on with the new process.
    const again = await raw(gw.base, "POST", "/mcp/tools", {
      headers: sessionHeaders(sessionId),
      body: CALL(3, "echo", { text: "back" }),
    });
    assert.equal(text(again), "back");
    assert.equal(gw.servers.get("tools")!.pids.length, 2);
    const [changed] = await stream.next(1);
    assert.equal(changed.method, "notifications/tools/list_changed");
    stream.close();
  });

  it("a crash-looping server answers 503 at once", async () => {
    const server: TestServer = await startServer({ name: "tools", kind: "stdio" });
    server.supervisor.shutdown("replaced by a failing one");
    const failing = createSupervisor({
      server: "broken",
      connect: () => {
        const child = spawn(process.execPath, ["-e", "process.exit(7)"], {
          stdio: ["pipe", "pipe", "ignore"],
        });
        const stream = Duplex.from({ readable: child.stdout, writable: child.stdin });
        stream.on("error", () => undefined);
        return createStdioLane({
          server: "broken",
          stream,
          maxMessageBytes: 65536,
          initializeTimeoutMs: 5_000,
        });
      },
      backoff: { initialMs: 1, maxMs: 5 },
      crashLoopFailures: 3,
    });
    const gw = await gateway({ servers: [{ ...server, name: "broken", supervisor: failing }] });
    const body = modern(1, "tools/list");
    let res: any;
    await until(async () => {
      res = await raw(gw.base, "POST", "/mcp/broken", { headers: modernHeaders(body), body });
      return res.status === 503;
    });
    assert.equal(res.json.error.code, -32000);
    assert.match(res.json.error.message, /crash_loop/);
    assert.equal(res.json.error.data.state, "crash_loop");
  });

  it("isolation per_session: each session gets its own process, closed with the session; 2026-07-28 uses the shared one", async () => {
    const gw = await gateway({
      servers: [{ name: "iso", kind: "stdio", isolation: "per_session" }],
    });
    const iso = gw.servers.get("iso")!;
    const a = await rawInitialize(gw.base, "/mcp/iso");
    const b = await rawInitialize(gw.base, "/mcp/iso");
    const count = async (sid: string) =>
      text(
        await raw(gw.base, "POST", "/mcp/iso", {
          headers: sessionHeaders(sid),
          body: CALL(1, "counter"),
        }),
      );
    assert.equal(await count(a.sessionId), "1");
    assert.equal(await count(a.sessionId), "2");
    assert.equal(await count(b.sessionId), "1");
    const pid = async (headers: Record<string, string>, body: any, path = "/mcp/iso") =>
      JSON.parse((await raw(gw.base, "POST", path, { headers, body })).json.result.content[0].text)
        .pid;
    const pa = await pid(sessionHeaders(a.sessionId), CALL(2, "whoami"));
    const pb = await pid(sessionHeaders(b.sessionId), CALL(2, "whoami"));
    const m = modern(3, "tools/call", { name: "whoami", arguments: {} });
    const pm = await pid(modernHeaders(m), m);
    assert.equal(new Set([pa, pb, pm]).size, 3);
    assert.equal(iso.supervisor.view().sessionLanes, 2);
    await raw(gw.base, "DELETE", "/mcp/iso", { headers: sessionHeaders(a.sessionId) });
    await until(() => iso.supervisor.view().sessionLanes === 1);
    // /mcp opens one for its session on first use.
    const agg = await rawInitialize(gw.base, "/mcp");
    const pagg = await pid(sessionHeaders(agg.sessionId), { ...CALL(4, "iso__whoami") }, "/mcp");
    assert.ok(![pa, pb, pm].includes(pagg));
    assert.equal(iso.supervisor.view().sessionLanes, 2);
    await raw(gw.base, "DELETE", "/mcp", { headers: sessionHeaders(agg.sessionId) });
    await until(() => iso.supervisor.view().sessionLanes === 1);
  });

  it("isolation per_session: a session lane that cannot be had answers 503; one that ends ends the session (404)", async () => {
    const server = await startServer({ name: "iso", kind: "stdio" });
    // A supervisor that offers no per-session lanes stands for the DTMA refusing one.
    const gw = await gateway({
      servers: [Object.assign(server, { isolation: "per_session" as const })],
    });
    const res = await raw(gw.base, "POST", "/mcp/iso", {
      headers: auth(),
      body: {
        jsonrpc: "2.0",
        id: 1,
        method: "initialize",
        params: {
          protocolVersion: "2025-11-25",
          capabilities: {},
          clientInfo: { name: "x", version: "0" },
        },
      },
    });
    assert.equal(res.status, 503);
    assert.match(res.json.error.message, /no lane of its own/);
    assert.ok(res.headers["retry-after"]);

    const gw2 = await gateway({
      servers: [{ name: "iso2", kind: "stdio", isolation: "per_session" }],
    });
    const { sessionId } = await rawInitialize(gw2.base, "/mcp/iso2");
    const crash = await raw(gw2.base, "POST", "/mcp/iso2", {
      headers: sessionHeaders(sessionId),
      body: CALL(1, "crash"),
    });
    assert.equal(crash.json.error.code, -32603);
    await until(async () => {
      const r = await raw(gw2.base, "POST", "/mcp/iso2", {
        headers: sessionHeaders(sessionId),
        body: { jsonrpc: "2.0", id: 2, method: "ping" },
      });
      return r.status === 404;
    });
    assert.ok(gw2.metrics.closed.some((c) => c.reason === "lane_closed"));
  });

  it("closeAll ends sessions, streams and calls, and later requests get 503", async () => {
    const gw = await gateway({ servers: [{ name: "tools", kind: "stdio" }] });
    const { sessionId } = await rawInitialize(gw.base, "/mcp/tools");
    const stream = await openSse(gw.base, "GET", "/mcp/tools", sessionHeaders(sessionId));
    const listen = modern("l", "subscriptions/listen", {
      notifications: { toolsListChanged: true },
    });
    const sub = await openSse(gw.base, "POST", "/mcp/tools", modernHeaders(listen), listen);
    await sub.next(1);
    const slow = raw(gw.base, "POST", "/mcp/tools", {
      headers: sessionHeaders(sessionId),
      body: CALL(1, "slow", { steps: 100, ms: 100 }),
    });
    await until(() => gw.gw.stats().inFlight.tools === 1);
    gw.gw.closeAll();
    assert.equal((await slow).json.error.code, -32002);
    await stream.ended;
    await sub.ended;
    // The listen stream ended gracefully: a result tagged with its subscription id.
    const last = sub.messages.at(-1);
    assert.equal(last.id, "l");
    assert.equal(last.result._meta["io.modelcontextprotocol/subscriptionId"], "l");
    const after = await raw(gw.base, "POST", "/mcp/tools", {
      headers: modernHeaders(listen),
      body: listen,
    });
    assert.equal(after.status, 503);
    assert.deepEqual(gw.gw.stats(), { sessions: {}, listens: {}, inFlight: {}, streams: 0 });
  });
});
