/* eslint-disable @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-call, @typescript-eslint/no-unsafe-argument, @typescript-eslint/no-unsafe-return -- tests read JSON loosely */
// Every status rule of the edge, over raw HTTP (no client library in between), against real
// supervisors and lanes to the mcp-tools fixture.
import assert from "node:assert/strict";
import type { TestGateway } from "./helpers";
import {
  auth,
  modern,
  modernHeaders,
  openSse,
  raw,
  rawInitialize,
  sessionHeaders,
  startGateway,
  TOKENS,
  until,
} from "./helpers";

const CALL = (id: number | string, name: string, args: object = {}, meta?: object) => ({
  jsonrpc: "2.0",
  id,
  method: "tools/call",
  params: { name, arguments: args, ...(meta ? { _meta: meta } : {}) },
});

describe("MCP edge over raw HTTP", function () {
  this.timeout(60_000);
  let gw: TestGateway;

  before(async () => {
    gw = await startGateway({
      servers: [
        { name: "tools", kind: "stdio" },
        { name: "web", kind: "http" },
      ],
    });
  });
  after(async () => gw?.stop());

  describe("auth, origin, server access", () => {
    it("401 with WWW-Authenticate: Bearer without a valid token; the reason is logged, never the token", async () => {
      for (const [headers, reason] of [
        [{}, "missing"],
        [{ authorization: "Basic abc" }, "malformed"],
        [{ authorization: "Bearer not-a-known-token-SECRET" }, "invalid"],
      ] as const) {
        for (const path of ["/mcp", "/mcp/tools"]) {
          const res = await raw(gw.base, "POST", path, {
            headers,
            body: modern(1, "server/discover"),
          });
          assert.equal(res.status, 401, `${path} ${reason}`);
          assert.equal(res.headers["www-authenticate"], "Bearer");
          assert.equal(res.json.jsonrpc, "2.0");
          assert.match(res.json.error.message, new RegExp(reason));
        }
        assert.ok(gw.metrics.authFailures.includes(reason));
      }
      for (const m of ["GET", "DELETE"]) {
        const res = await raw(gw.base, m, "/mcp/tools");
        assert.equal(res.status, 401);
      }
      assert.ok(gw.logs.lines.some((l) => l.msg === "auth failed" && l.reason === "invalid"));
      assert.ok(!gw.logs.text().includes("not-a-known-token-SECRET"));
    });

    it("403 for an Origin not on the list (a JSON-RPC error without id); a listed Origin passes", async () => {
      const bad = await raw(gw.base, "POST", "/mcp/tools", {
        headers: { ...modernHeaders(modern(1, "server/discover")), origin: "https://evil.example" },
        body: modern(1, "server/discover"),
      });
      assert.equal(bad.status, 403);
      assert.ok(!("id" in bad.json), JSON.stringify(bad.json));
      assert.match(bad.json.error.message, /Origin/);
      const good = await raw(gw.base, "POST", "/mcp/tools", {
        headers: {
          ...modernHeaders(modern(1, "server/discover")),
          origin: "https://app.example.com",
        },
        body: modern(1, "server/discover"),
      });
      assert.equal(good.status, 200);
    });

    it("a principal gets 403 for a server it may not use (existing or not); 404 for a server that is not there", async () => {
      const body = modern(1, "server/discover");
      for (const path of ["/mcp/web", "/mcp/nope"]) {
        const res = await raw(gw.base, "POST", path, {
          headers: modernHeaders(body, TOKENS.toolsOnly),
          body,
        });
        assert.equal(res.status, 403, path);
        assert.match(res.json.error.message, /may not use/);
      }
      const missing = await raw(gw.base, "POST", "/mcp/nope", {
        headers: modernHeaders(body),
        body,
      });
      assert.equal(missing.status, 404);
      assert.match(missing.json.error.message, /no server "nope"/);
    });
  });

  describe("bodies", () => {
    it("413 above the body cap, 415 when not JSON, 400 Parse error, batches and non-messages 400/-32600", async () => {
      const headers = { ...auth(), accept: "application/json, text/event-stream" };
      const big = await raw(gw.base, "POST", "/mcp/tools", {
        headers,
        body: CALL(1, "echo", { text: "x".repeat(300 * 1024) }),
      });
      assert.equal(big.status, 413);
      assert.equal(big.json.error.code, -32600);
      const text = await raw(gw.base, "POST", "/mcp/tools", {
        headers: { ...headers, "content-type": "text/plain" },
        rawBody: "{}",
      });
      assert.equal(text.status, 415);
      const broken = await raw(gw.base, "POST", "/mcp/tools", { headers, rawBody: "{not json" });
      assert.equal(broken.status, 400);
      assert.equal(broken.json.error.code, -32700);
      const batch = await raw(gw.base, "POST", "/mcp/tools", {
        headers,
        body: [CALL(1, "echo", { text: "a" })],
      });
      assert.equal(batch.status, 400);
      assert.equal(batch.json.error.code, -32600);
      assert.match(batch.json.error.message, /batch/);
      for (const [body, why] of [
        [{ id: 1, method: "tools/list" }, /jsonrpc/],
        [{ jsonrpc: "2.0", id: null, method: "tools/list" }, /id must be/],
        [{ jsonrpc: "2.0", id: 1, method: 5 }, /method/],
        [{ jsonrpc: "2.0", id: 1, method: "tools/list", params: [1] }, /params/],
        [42, /object/],
      ] as const) {
        const res = await raw(gw.base, "POST", "/mcp/tools", { headers, body });
        assert.equal(res.status, 400, JSON.stringify(body));
        assert.equal(res.json.error.code, -32600);
        assert.match(res.json.error.message, why);
      }
    });
  });

  describe("sessionful era", () => {
    it("initialize answers from the cache with the negotiated version and a session id bound to the principal", async () => {
      for (const [asked, answered] of [
        ["2025-11-25", "2025-11-25"],
        ["2025-06-18", "2025-06-18"],
        ["2025-03-26", "2025-03-26"],
        ["2024-11-05", "2024-11-05"],
        ["2023-01-01", "2025-11-25"],
      ]) {
        const { sessionId, result } = await rawInitialize(gw.base, "/mcp/tools", TOKENS.all, asked);
        assert.equal(result.protocolVersion, answered);
        assert.equal(result.serverInfo.name, "mcp-tools");
        assert.match(sessionId, /^[\x21-\x7e]{32,}$/);
      }
      const a = await rawInitialize(gw.base, "/mcp/tools", TOKENS.all);
      const b = await rawInitialize(gw.base, "/mcp/tools", TOKENS.all);
      assert.notEqual(a.sessionId, b.sessionId);
      // Another principal presenting the id: as unknown as a made-up one.
      const stolen = await raw(gw.base, "POST", "/mcp/tools", {
        headers: sessionHeaders(a.sessionId, TOKENS.other),
        body: { jsonrpc: "2.0", id: 1, method: "tools/list" },
      });
      assert.equal(stolen.status, 404);
      // A session of one endpoint is unknown on another.
      const elsewhere = await raw(gw.base, "POST", "/mcp/web", {
        headers: sessionHeaders(a.sessionId),
        body: { jsonrpc: "2.0", id: 1, method: "tools/list" },
      });
      assert.equal(elsewhere.status, 404);
      const own = await raw(gw.base, "POST", "/mcp/tools", {
        headers: sessionHeaders(a.sessionId),
        body: { jsonrpc: "2.0", id: 1, method: "tools/list" },
      });
      assert.equal(own.status, 200);
      assert.ok(own.json.result.tools.length > 0);
      const bad = await raw(gw.base, "POST", "/mcp/tools", {
        headers: auth(),
        body: { jsonrpc: "2.0", id: 1, method: "initialize", params: {} },
      });
      assert.equal(bad.status, 200);
      assert.equal(bad.json.error.code, -32602);
      assert.match(bad.json.error.message, /protocolVersion/);
    });

    it("400 without a session id, 404 for an unknown one, 400 for an unsupported MCP-Protocol-Version, absent = 2025-03-26", async () => {
      const list = { jsonrpc: "2.0", id: 7, method: "tools/list" };
      const none = await raw(gw.base, "POST", "/mcp/tools", { headers: auth(), body: list });
      assert.equal(none.status, 400);
      assert.equal(none.json.id, 7);
      assert.match(none.json.error.message, /Mcp-Session-Id/);
      const unknown = await raw(gw.base, "POST", "/mcp/tools", {
        headers: { ...auth(), "mcp-session-id": "no-such-session" },
        body: list,
      });
      assert.equal(unknown.status, 404);
      const { sessionId } = await rawInitialize(gw.base, "/mcp/tools");
      const badVersion = await raw(gw.base, "POST", "/mcp/tools", {
        headers: { ...sessionHeaders(sessionId), "mcp-protocol-version": "1999-01-01" },
        body: list,
      });
      assert.equal(badVersion.status, 400);
      assert.equal(badVersion.json.error.code, -32022);
      assert.ok(badVersion.json.error.data.supported.includes("2025-11-25"));
      const modernHeader = await raw(gw.base, "POST", "/mcp/tools", {
        headers: { ...sessionHeaders(sessionId), "mcp-protocol-version": "2026-07-28" },
        body: list,
      });
      assert.equal(modernHeader.status, 400);
      assert.equal(modernHeader.json.error.code, -32020);
      const noVersion = sessionHeaders(sessionId);
      delete noVersion["mcp-protocol-version"];
      const absent = await raw(gw.base, "POST", "/mcp/tools", { headers: noVersion, body: list });
      assert.equal(absent.status, 200);
    });

    it("notifications and client responses are swallowed (202); ping and logging/setLevel are the gateway's", async () => {
      const { sessionId } = await rawInitialize(gw.base, "/mcp/tools");
      const h = sessionHeaders(sessionId);
      const sentBefore = gw.servers.get("tools")!.sent.length;
      for (const body of [
        { jsonrpc: "2.0", method: "notifications/initialized" },
        { jsonrpc: "2.0", method: "notifications/roots/list_changed" },
        { jsonrpc: "2.0", method: "notifications/whatever", params: { x: 1 } },
        { jsonrpc: "2.0", id: 99, result: {} },
        { jsonrpc: "2.0", id: 98, error: { code: -1, message: "no" } },
      ]) {
        const res = await raw(gw.base, "POST", "/mcp/tools", { headers: h, body });
        assert.equal(res.status, 202, JSON.stringify(body));
        assert.equal(res.text, "");
      }
      const ping = await raw(gw.base, "POST", "/mcp/tools", {
        headers: h,
        body: { jsonrpc: "2.0", id: "p", method: "ping" },
      });
      assert.deepEqual(ping.json, { jsonrpc: "2.0", id: "p", result: {} });
      const level = await raw(gw.base, "POST", "/mcp/tools", {
        headers: h,
        body: { jsonrpc: "2.0", id: 2, method: "logging/setLevel", params: { level: "debug" } },
      });
      assert.deepEqual(level.json.result, {});
      const badLevel = await raw(gw.base, "POST", "/mcp/tools", {
        headers: h,
        body: { jsonrpc: "2.0", id: 3, method: "logging/setLevel", params: { level: "loud" } },
      });
      assert.equal(badLevel.json.error.code, -32602);
      // None of it reached the server.
      assert.equal(gw.servers.get("tools")!.sent.length, sentBefore);
    });

    it("a request with a progress token and Accept SSE is answered as SSE: progress first, then the answer", async () => {
      const { sessionId } = await rawInitialize(gw.base, "/mcp/tools");
      const sse = await openSse(
        gw.base,
        "POST",
        "/mcp/tools",
        sessionHeaders(sessionId),
        CALL(5, "slow", { steps: 3, ms: 5 }, { progressToken: "pt-1" }),
      );
      assert.equal(sse.status, 200);
      assert.match(String(sse.headers["content-type"]), /text\/event-stream/);
      await sse.ended;
      assert.deepEqual(
        sse.messages.map((m) => m.method ?? "answer"),
        ["notifications/progress", "notifications/progress", "notifications/progress", "answer"],
      );
      assert.ok(sse.messages.slice(0, 3).every((m) => m.params.progressToken === "pt-1"));
      assert.equal(sse.messages[3].id, 5);
      assert.equal(sse.messages[3].result.content[0].text, "done after 3 steps");
      // Without SSE in Accept: one JSON answer, no progress.
      const json = await raw(gw.base, "POST", "/mcp/tools", {
        headers: { ...sessionHeaders(sessionId), accept: "application/json" },
        body: CALL(6, "slow", { steps: 2, ms: 5 }, { progressToken: "pt-2" }),
      });
      assert.match(String(json.headers["content-type"]), /application\/json/);
      assert.equal(json.json.result.content[0].text, "done after 2 steps");
      // The server never saw the client's token.
      assert.ok(
        !gw.servers.get("tools")!.sent.some((l) => l.includes("pt-1") || l.includes("pt-2")),
      );
    });

    it("a large answer arrives whole, as JSON and as SSE", async () => {
      const { sessionId } = await rawInitialize(gw.base, "/mcp/tools");
      const bytes = 2_500_000;
      const json = await raw(gw.base, "POST", "/mcp/tools", {
        headers: sessionHeaders(sessionId),
        body: CALL(1, "big", { bytes }),
      });
      assert.equal(json.json.result.content[0].text.length, bytes);
      const sse = await openSse(
        gw.base,
        "POST",
        "/mcp/tools",
        sessionHeaders(sessionId),
        CALL(2, "big", { bytes }, { progressToken: "big" }),
      );
      await sse.ended;
      assert.equal(sse.messages.at(-1).result.content[0].text.length, bytes);
    });

    it("notifications/cancelled reaches only the session's own call, cancelling it upstream", async () => {
      const a = await rawInitialize(gw.base, "/mcp/tools");
      const b = await rawInitialize(gw.base, "/mcp/tools");
      const callA = raw(gw.base, "POST", "/mcp/tools", {
        headers: sessionHeaders(a.sessionId),
        body: CALL(41, "slow", { steps: 3, ms: 150 }),
      });
      const callB = raw(gw.base, "POST", "/mcp/tools", {
        headers: sessionHeaders(b.sessionId),
        body: CALL(41, "slow", { steps: 50, ms: 100 }),
      });
      await until(() => gw.gw.stats().inFlight.tools === 2);
      // B cancels "its" 41: A's call with the same id is not B's to cancel.
      const cancel = await raw(gw.base, "POST", "/mcp/tools", {
        headers: sessionHeaders(b.sessionId),
        body: { jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: 41 } },
      });
      assert.equal(cancel.status, 202);
      const rb = await callB;
      assert.equal(rb.json.id, 41);
      assert.equal(rb.json.error.code, -32002);
      const ra = await callA;
      assert.equal(ra.json.result.content[0].text, "done after 3 steps");
      await until(() =>
        gw.servers.get("tools")!.sent.some((l) => l.includes("notifications/cancelled")),
      );
    });

    it("a duplicate request id in flight in one session is refused", async () => {
      const { sessionId } = await rawInitialize(gw.base, "/mcp/tools");
      const first = raw(gw.base, "POST", "/mcp/tools", {
        headers: sessionHeaders(sessionId),
        body: CALL("dup", "slow", { steps: 2, ms: 100 }),
      });
      await until(() => (gw.gw.stats().inFlight.tools ?? 0) >= 1);
      const second = await raw(gw.base, "POST", "/mcp/tools", {
        headers: sessionHeaders(sessionId),
        body: CALL("dup", "echo", { text: "x" }),
      });
      assert.equal(second.status, 400);
      assert.match(second.json.error.message, /already in flight/);
      assert.ok((await first).json.result);
    });

    it("GET opens the session's stream; a new GET replaces the old; list_changed arrives; 405 without a session", async () => {
      const { sessionId } = await rawInitialize(gw.base, "/mcp/tools");
      const first = await openSse(gw.base, "GET", "/mcp/tools", sessionHeaders(sessionId));
      assert.equal(first.status, 200);
      const second = await openSse(gw.base, "GET", "/mcp/tools", sessionHeaders(sessionId));
      await first.ended;
      await raw(gw.base, "POST", "/mcp/tools", {
        headers: sessionHeaders(sessionId),
        body: CALL(1, "add_tool"),
      });
      const [n] = await second.next(1);
      assert.equal(n.method, "notifications/tools/list_changed");
      assert.equal(first.messages.length, 0);
      second.close();
      for (const m of ["GET", "DELETE"]) {
        const res = await raw(gw.base, m, "/mcp/tools", { headers: auth() });
        assert.equal(res.status, 405, m);
        assert.equal(res.headers.allow, "POST");
        const unknown = await raw(gw.base, m, "/mcp/tools", {
          headers: { ...auth(), "mcp-session-id": "nope" },
        });
        assert.equal(unknown.status, 404, m);
      }
    });

    it("DELETE ends the session (204), cancels its calls upstream and ends its stream; later requests get 404", async () => {
      const { sessionId } = await rawInitialize(gw.base, "/mcp/tools");
      const stream = await openSse(gw.base, "GET", "/mcp/tools", sessionHeaders(sessionId));
      const call = raw(gw.base, "POST", "/mcp/tools", {
        headers: sessionHeaders(sessionId),
        body: CALL(3, "slow", { steps: 100, ms: 100 }),
      });
      await until(() => (gw.gw.stats().inFlight.tools ?? 0) >= 1);
      const cancelsBefore = gw.servers
        .get("tools")!
        .sent.filter((l) => l.includes("notifications/cancelled")).length;
      const del = await raw(gw.base, "DELETE", "/mcp/tools", {
        headers: sessionHeaders(sessionId),
      });
      assert.equal(del.status, 204);
      const answered = await call;
      assert.equal(answered.json.error.code, -32002);
      await stream.ended;
      await until(
        () =>
          gw.servers.get("tools")!.sent.filter((l) => l.includes("notifications/cancelled"))
            .length > cancelsBefore,
      );
      const after = await raw(gw.base, "POST", "/mcp/tools", {
        headers: sessionHeaders(sessionId),
        body: { jsonrpc: "2.0", id: 1, method: "tools/list" },
      });
      assert.equal(after.status, 404);
      assert.ok(gw.metrics.closed.some((c) => c.reason === "deleted"));
    });

    it("a client that disconnects cancels its call upstream", async () => {
      const { sessionId } = await rawInitialize(gw.base, "/mcp/tools");
      const before = gw.servers
        .get("tools")!
        .sent.filter((l) => l.includes("notifications/cancelled")).length;
      const sse = await openSse(
        gw.base,
        "POST",
        "/mcp/tools",
        sessionHeaders(sessionId),
        CALL(8, "slow", { steps: 100, ms: 50 }, { progressToken: 1 }),
      );
      await sse.next(1);
      sse.close();
      await until(
        () =>
          gw.servers.get("tools")!.sent.filter((l) => l.includes("notifications/cancelled"))
            .length > before,
      );
      await until(() => (gw.gw.stats().inFlight.tools ?? 0) === 0);
    });
  });

  describe("2026-07-28 era", () => {
    it("server/discover is built from the cached initialize", async () => {
      const body = modern("d", "server/discover");
      const res = await raw(gw.base, "POST", "/mcp/tools", { headers: modernHeaders(body), body });
      assert.equal(res.status, 200);
      const r = res.json.result;
      assert.equal(r.resultType, "complete");
      assert.ok(r.supportedVersions.includes("2026-07-28"));
      assert.deepEqual(r.capabilities.tools, { listChanged: true });
      assert.equal(r._meta["io.modelcontextprotocol/serverInfo"].name, "mcp-tools");
      assert.equal(r.cacheScope, "private");
      assert.ok(Number.isInteger(r.ttlMs) && r.ttlMs >= 0);
      assert.equal(res.headers["mcp-session-id"], undefined);
      const agg = await raw(gw.base, "POST", "/mcp", { headers: modernHeaders(body), body });
      assert.equal(
        agg.json.result._meta["io.modelcontextprotocol/serverInfo"].name,
        "agentopia-toolbox-gateway",
      );
      assert.deepEqual(agg.json.result.capabilities, { tools: { listChanged: true } });
    });

    it("results carry resultType, list results ttlMs and cacheScope; the client's _meta never reaches the server", async () => {
      const list = modern(1, "tools/list");
      const l = await raw(gw.base, "POST", "/mcp/tools", {
        headers: modernHeaders(list),
        body: list,
      });
      assert.equal(l.json.result.resultType, "complete");
      assert.equal(l.json.result.cacheScope, "private");
      assert.ok(Number.isInteger(l.json.result.ttlMs));
      const call = modern(2, "tools/call", { name: "echo", arguments: { text: "m" } });
      const c = await raw(gw.base, "POST", "/mcp/tools", {
        headers: modernHeaders(call),
        body: call,
      });
      assert.equal(c.json.result.resultType, "complete");
      assert.equal(c.json.result.content[0].text, "m");
      assert.ok(!("ttlMs" in c.json.result));
      const sent = gw.servers.get("tools")!.sent;
      assert.ok(sent.length > 0);
      assert.ok(
        !sent.some((line) => line.includes("io.modelcontextprotocol/")),
        "modern _meta stripped",
      );
      assert.ok(
        !sent.some((line) => line.includes("raw-test")),
        "the client's info stays at the edge",
      );
      assert.ok(
        !sent.some((line) => line.includes(TOKENS.all)),
        "the agent's token never reaches a server",
      );
    });

    it("header rules: HeaderMismatch (-32020) for a missing or different MCP-Protocol-Version, Mcp-Method or Mcp-Name", async () => {
      const call = modern(3, "tools/call", { name: "echo", arguments: { text: "h" } });
      const h = modernHeaders(call);
      const cases: [Record<string, string | undefined>, RegExp][] = [
        [{ "mcp-protocol-version": undefined }, /MCP-Protocol-Version header is required/],
        [{ "mcp-protocol-version": "2025-11-25" }, /does not match/],
        [{ "mcp-method": undefined }, /Mcp-Method header is required/],
        [{ "mcp-method": "tools/list" }, /Mcp-Method "tools\/list" does not match/],
        [{ "mcp-name": undefined }, /Mcp-Name header is required/],
        [{ "mcp-name": "add" }, /Mcp-Name "add" does not match/],
        [{ "mcp-name": "=?base64?!!!?=" }, /sentinel/],
        [{ "mcp-name": `=?base64?${Buffer.from("add").toString("base64")}?=` }, /does not match/],
      ];
      for (const [change, why] of cases) {
        const headers: Record<string, string> = { ...h };
        for (const [k, v] of Object.entries(change)) {
          if (v === undefined) delete headers[k];
          else headers[k] = v;
        }
        const res = await raw(gw.base, "POST", "/mcp/tools", { headers, body: call });
        assert.equal(res.status, 400, JSON.stringify(change));
        assert.equal(res.json.error.code, -32020, JSON.stringify(change));
        assert.equal(res.json.id, 3);
        assert.match(res.json.error.message, why);
      }
      // The Base64 sentinel of the right name is the name.
      const encoded = await raw(gw.base, "POST", "/mcp/tools", {
        headers: { ...h, "mcp-name": `=?base64?${Buffer.from("echo").toString("base64")}?=` },
        body: call,
      });
      assert.equal(encoded.status, 200);
      assert.equal(encoded.json.result.content[0].text, "h");
    });

    it("an unsupported version is 400 UnsupportedProtocolVersion with data.supported; an unknown method 404 -32601", async () => {
      const body = modern(4, "tools/list", {
        _meta: { "io.modelcontextprotocol/protocolVersion": "2099-01-01" },
      });
      const res = await raw(gw.base, "POST", "/mcp/tools", {
        headers: { ...modernHeaders(body), "mcp-protocol-version": "2099-01-01" },
        body,
      });
      assert.equal(res.status, 400);
      assert.equal(res.json.error.code, -32022);
      assert.ok(res.json.error.data.supported.includes("2026-07-28"));
      assert.equal(res.json.error.data.requested, "2099-01-01");
      for (const method of [
        "no/such",
        "ping",
        "initialize",
        "logging/setLevel",
        "resources/subscribe",
      ]) {
        const b = modern(5, method);
        const r = await raw(gw.base, "POST", "/mcp/tools", { headers: modernHeaders(b), body: b });
        assert.equal(r.status, 404, method);
        assert.equal(r.json.error.code, -32601, method);
      }
      // The server does not offer prompts: its -32601 is a 404 too.
      const prompts = modern(6, "prompts/list");
      const p = await raw(gw.base, "POST", "/mcp/tools", {
        headers: modernHeaders(prompts),
        body: prompts,
      });
      assert.equal(p.status, 404);
      assert.equal(p.json.error.code, -32601);
      const noCaps = {
        jsonrpc: "2.0",
        id: 7,
        method: "tools/list",
        params: { _meta: { "io.modelcontextprotocol/protocolVersion": "2026-07-28" } },
      };
      const nc = await raw(gw.base, "POST", "/mcp/tools", {
        headers: modernHeaders(noCaps),
        body: noCaps,
      });
      assert.equal(nc.status, 400);
      assert.match(nc.json.error.message, /clientCapabilities/);
    });

    it("subscriptions/listen: the acknowledgement first, then only the opted-in notifications, tagged", async () => {
      const body = modern("sub-1", "subscriptions/listen", {
        notifications: { toolsListChanged: true, promptsListChanged: true },
      });
      const sse = await openSse(gw.base, "POST", "/mcp/tools", modernHeaders(body), body);
      assert.equal(sse.status, 200);
      const [ack] = await sse.next(1);
      assert.equal(ack.method, "notifications/subscriptions/acknowledged");
      assert.equal(ack.params._meta["io.modelcontextprotocol/subscriptionId"], "sub-1");
      // The fixture has no prompts: only the tool list is honoured.
      assert.deepEqual(ack.params.notifications, { toolsListChanged: true });
      const call = modern(9, "tools/call", { name: "add_tool", arguments: {} });
      await raw(gw.base, "POST", "/mcp/tools", { headers: modernHeaders(call), body: call });
      const [, changed] = await sse.next(2);
      assert.equal(changed.method, "notifications/tools/list_changed");
      assert.equal(changed.params._meta["io.modelcontextprotocol/subscriptionId"], "sub-1");
      assert.equal(gw.gw.stats().listens.tools, 1);
      sse.close();
      await until(() => (gw.gw.stats().listens.tools ?? 0) === 0);
      const bad = modern("sub-2", "subscriptions/listen", {
        notifications: { toolsListChanged: "yes" },
      });
      const r = await raw(gw.base, "POST", "/mcp/tools", {
        headers: modernHeaders(bad),
        body: bad,
      });
      assert.equal(r.status, 400);
      assert.match(r.json.error.message, /toolsListChanged/);
    });

    it("closing a streamed answer cancels the call upstream", async () => {
      const before = gw.servers
        .get("tools")!
        .sent.filter((l) => l.includes("notifications/cancelled")).length;
      const body = modern(10, "tools/call", {
        name: "slow",
        arguments: { steps: 100, ms: 50 },
        _meta: { progressToken: "m" },
      });
      const sse = await openSse(gw.base, "POST", "/mcp/tools", modernHeaders(body), body);
      const [p] = await sse.next(1);
      assert.equal(p.method, "notifications/progress");
      sse.close();
      await until(
        () =>
          gw.servers.get("tools")!.sent.filter((l) => l.includes("notifications/cancelled"))
            .length > before,
      );
    });
  });

  describe("audit", () => {
    it("one audit line per tools/call: who, which session (hashed), server, tool, ms, outcome, bytes; never arguments or results", async () => {
      const { sessionId } = await rawInitialize(gw.base, "/mcp/tools", TOKENS.other);
      const before = gw.logs.audits().length;
      await raw(gw.base, "POST", "/mcp/tools", {
        headers: sessionHeaders(sessionId, TOKENS.other),
        body: CALL(1, "echo", { text: "ARGUMENT-SHOULD-NOT-BE-LOGGED" }),
      });
      const call = modern(2, "tools/call", { name: "tools__add", arguments: { a: 40, b: 2 } });
      await raw(gw.base, "POST", "/mcp", {
        headers: modernHeaders(call, TOKENS.other),
        body: call,
      });
      await raw(gw.base, "POST", "/mcp/tools", {
        headers: sessionHeaders(sessionId, TOKENS.other),
        body: CALL(3, "no-such-tool"),
      });
      const lines = gw.logs.audits().slice(before);
      assert.equal(lines.length, 3);
      const [legacy, agg, unknown] = lines;
      assert.equal(legacy.principal, "agent-other");
      assert.equal(legacy.tokenId, "jti-other");
      assert.match(legacy.session, /^[0-9a-f]{12}$/);
      assert.ok(!sessionId.includes(legacy.session));
      assert.equal(legacy.server, "tools");
      assert.equal(legacy.tool, "echo");
      assert.equal(legacy.outcome, "ok");
      assert.ok(legacy.bytes > 0 && Number.isInteger(legacy.ms));
      assert.equal(agg.tool, "add");
      assert.equal(agg.session, undefined);
      assert.equal(agg.era, "modern");
      assert.equal(unknown.tool, "no-such-tool");
      assert.notEqual(unknown.outcome, "ok");
      const text = gw.logs.text();
      assert.ok(!text.includes("ARGUMENT-SHOULD-NOT-BE-LOGGED"));
      assert.ok(!text.includes(sessionId));
      for (const t of Object.values(TOKENS)) assert.ok(!text.includes(t));
    });
  });
});
