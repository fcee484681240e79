/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-call, @typescript-eslint/no-unsafe-argument, @typescript-eslint/no-unsafe-return -- tests read JSON loosely */
// The published @modelcontextprotocol/server-everything, unmodified, under `docker run -i`,
// behind the gateway: the official clients of both lines use a server the project did not
// write, and resource subscriptions reach only the sessions (or listen streams) that asked.
import assert from "node:assert/strict";
import { Client as ClientV1 } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport as TransportV1 } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import {
  Client as ClientV2,
  StreamableHTTPClientTransport as TransportV2,
} from "@modelcontextprotocol/client";
import type { TestGateway } from "./helpers";
import {
  dockerImageMissing,
  EVERYTHING_IMAGE,
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

const URI_A = "demo://resource/dynamic/text/1";
const URI_B = "demo://resource/dynamic/text/2";
const URI_C = "demo://resource/dynamic/text/3";

describe("MCP edge in front of server-everything (docker run -i)", function () {
  this.timeout(120_000);
  let gw: TestGateway;

  before(async function () {
    const missing = await dockerImageMissing(EVERYTHING_IMAGE);
    if (missing) {
      console.log(`      skipped: ${missing}`);
      this.skip();
    }
    gw = await startGateway({ servers: [{ name: "everything", kind: "everything" }] });
  });
  after(async () => gw?.stop());

  it("v1, v2 per request and v2 with sessions list and call its tools, with progress", async () => {
    const url = new URL("/mcp/everything", gw.base);
    const requestInit = { headers: { authorization: `Bearer ${TOKENS.all}` } };
    const v1 = new ClientV1({ name: "agent-v1", version: "1" });
    const t1 = new TransportV1(url, { requestInit });
    await v1.connect(t1);
    const modernClient = new ClientV2(
      { name: "agent-v2", version: "2" },
      { versionNegotiation: { mode: "auto" } },
    );
    await modernClient.connect(new TransportV2(url, { requestInit }));
    const legacyClient = new ClientV2({ name: "agent-v2", version: "2" });
    const t3 = new TransportV2(url, { requestInit });
    await legacyClient.connect(t3);
    try {
      assert.equal(modernClient.getProtocolEra(), "modern");
      assert.equal(legacyClient.getProtocolEra(), "legacy");
      for (const c of [v1, modernClient, legacyClient] as any[]) {
        const names = (await c.listTools()).tools.map((t: any) => t.name);
        assert.ok(names.includes("echo") && names.includes("get-sum"), names.join());
        const echo = await c.callTool({ name: "echo", arguments: { message: "hello" } });
        assert.match(echo.content[0].text, /hello/);
        const progress: any[] = [];
        const options = { onprogress: (p: any) => progress.push(p) };
        const params = {
          name: "trigger-long-running-operation",
          arguments: { duration: 0.2, steps: 2 },
        };
        await (c === v1 ? c.callTool(params, undefined, options) : c.callTool(params, options));
        assert.equal(progress.length, 2);
      }
    } finally {
      await t1.terminateSession();
      await t3.terminateSession();
      await Promise.all([v1.close(), modernClient.close(), legacyClient.close()]);
    }
  });

  it("resources/updated reaches only the sessions and listen streams subscribed to that URI", async () => {
    const a = await rawInitialize(gw.base, "/mcp/everything");
    const b = await rawInitialize(gw.base, "/mcp/everything");
    const streamA = await openSse(gw.base, "GET", "/mcp/everything", sessionHeaders(a.sessionId));
    const streamB = await openSse(gw.base, "GET", "/mcp/everything", sessionHeaders(b.sessionId));
    const subscribe = (sid: string, uri: string) =>
      raw(gw.base, "POST", "/mcp/everything", {
        headers: sessionHeaders(sid),
        body: { jsonrpc: "2.0", id: 1, method: "resources/subscribe", params: { uri } },
      });
    assert.deepEqual((await subscribe(a.sessionId, URI_A)).json.result, {});
    assert.deepEqual((await subscribe(b.sessionId, URI_B)).json.result, {});
    const listen = modern("l-1", "subscriptions/listen", {
      notifications: { resourceSubscriptions: [URI_C] },
    });
    const sub = await openSse(gw.base, "POST", "/mcp/everything", modernHeaders(listen), listen);
    const [ack] = await sub.next(1);
    assert.deepEqual(ack.params.notifications, { resourceSubscriptions: [URI_C] });
    // The server sends an update for every subscribed URI now, then every 5 s.
    const toggle = await raw(gw.base, "POST", "/mcp/everything", {
      headers: sessionHeaders(a.sessionId),
      body: {
        jsonrpc: "2.0",
        id: 2,
        method: "tools/call",
        params: { name: "toggle-subscriber-updates", arguments: {} },
      },
    });
    assert.ok(toggle.json.result);
    const uris = (s: typeof streamA) =>
      s.messages
        .filter((m) => m.method === "notifications/resources/updated")
        .map((m) => m.params.uri);
    // Two rounds each: a leak of round one would already sit before round two's own update.
    await until(
      () =>
        uris(streamA).filter((u) => u === URI_A).length >= 2 &&
        uris(streamB).filter((u) => u === URI_B).length >= 2 &&
        sub.messages.filter((m) => m.params?.uri === URI_C).length >= 2,
      50,
    );
    assert.ok(
      uris(streamA).every((u) => u === URI_A),
      uris(streamA).join(),
    );
    assert.ok(
      uris(streamB).every((u) => u === URI_B),
      uris(streamB).join(),
    );
    const tagged = sub.messages.slice(1);
    assert.ok(tagged.every((m) => m.params.uri === URI_C));
    assert.ok(
      tagged.every((m) => m.params._meta["io.modelcontextprotocol/subscriptionId"] === "l-1"),
    );
    // Shared lanes drop the server's log messages: nobody's stream carries them.
    assert.ok(
      ![...streamA.messages, ...streamB.messages].some((m) => m.method === "notifications/message"),
    );
    await raw(gw.base, "POST", "/mcp/everything", {
      headers: sessionHeaders(a.sessionId),
      body: {
        jsonrpc: "2.0",
        id: 3,
        method: "tools/call",
        params: { name: "toggle-subscriber-updates", arguments: {} },
      },
    });
    sub.close();
    streamA.close();
    streamB.close();
    for (const s of [a, b])
      await raw(gw.base, "DELETE", "/mcp/everything", { headers: sessionHeaders(s.sessionId) });
  });
});
