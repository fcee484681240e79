/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-call, @typescript-eslint/no-unsafe-argument, @typescript-eslint/no-unsafe-return -- tests read JSON loosely */
// The official clients of both lines against the gateway: @modelcontextprotocol/sdk 1.x (the
// sessionful era) and @modelcontextprotocol/client 2.x (2026-07-28 per request, and its sessionful
// mode), over real supervisors and lanes to the mcp-tools fixture (stdio and http).
import assert from "node:assert/strict";
import { Client as ClientV1 } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport as TransportV1 } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { ToolListChangedNotificationSchema } from "@modelcontextprotocol/sdk/types.js";
import {
  Client as ClientV2,
  StreamableHTTPClientTransport as TransportV2,
} from "@modelcontextprotocol/client";
import type { TestGateway } from "./helpers";
import { startGateway, TOKENS, until } from "./helpers";

type Era = "v1" | "v2-modern" | "v2-legacy";

const text = (r: any): string => r.content[0].text;

async function connect(gw: TestGateway, path: string, era: Era, token: string = TOKENS.all) {
  const url = new URL(path, gw.base);
  const requestInit = { headers: { authorization: `Bearer ${token}` } };
  if (era === "v1") {
    const client = new ClientV1({ name: "agent-v1", version: "1.0.0" }, { capabilities: {} });
    const transport = new TransportV1(url, { requestInit });
    await client.connect(transport);
    return { client: client as any, transport: transport as any, era };
  }
  const client = new ClientV2(
    { name: "agent-v2", version: "2.0.0" },
    {
      capabilities: { sampling: {}, elicitation: {}, roots: {} },
      ...(era === "v2-modern" ? { versionNegotiation: { mode: "auto" as const } } : {}),
    },
  );
  const transport = new TransportV2(url, { requestInit });
  await client.connect(transport);
  return { client: client as any, transport: transport as any, era };
}

/** tools/call with request options: v1 takes (params, resultSchema, options), v2 (params, options). */
function callTool(
  c: Awaited<ReturnType<typeof connect>>,
  params: any,
  options?: any,
): Promise<any> {
  return c.era === "v1"
    ? c.client.callTool(params, undefined, options)
    : c.client.callTool(params, options);
}

async function onListChanged(c: Awaited<ReturnType<typeof connect>>): Promise<() => number> {
  let seen = 0;
  if (c.era === "v1")
    c.client.setNotificationHandler(ToolListChangedNotificationSchema, () => void seen++);
  else c.client.setNotificationHandler("notifications/tools/list_changed", () => void seen++);
  // 2026-07-28 has no GET stream: the client listens for changes with subscriptions/listen.
  if (c.era === "v2-modern") await c.client.listen({ toolsListChanged: true });
  return () => seen;
}

describe("MCP edge with the official clients", function () {
  this.timeout(120_000);
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

  for (const era of ["v1", "v2-modern", "v2-legacy"] as const) {
    for (const server of ["tools", "web"]) {
      it(`${era} on /mcp/${server}: initialize or discover, list, call, progress, list_changed`, async () => {
        const c = await connect(gw, `/mcp/${server}`, era);
        try {
          if (era === "v2-modern") {
            assert.equal(c.client.getProtocolEra(), "modern");
            assert.equal(c.transport.sessionId, undefined, "no session in 2026-07-28");
          } else {
            assert.ok(c.transport.sessionId, "a session id");
            if (era === "v2-legacy") assert.equal(c.client.getProtocolEra(), "legacy");
          }
          assert.equal(c.client.getServerVersion().name, "mcp-tools");
          const tools = await c.client.listTools();
          const names = tools.tools.map((t: any) => t.name);
          for (const n of ["echo", "add", "slow", "whoami", "add_tool"])
            assert.ok(names.includes(n), n);
          assert.equal(
            text(await c.client.callTool({ name: "echo", arguments: { text: "hé" } })),
            "hé",
          );
          // The server was initialized by the gateway: the agent's identity never reached it.
          const who = JSON.parse(text(await c.client.callTool({ name: "whoami", arguments: {} })));
          assert.equal(who.clientInfo.name, "agentopia-toolbox-gateway");
          assert.deepEqual(who.capabilities, {});
          const progress: any[] = [];
          const slow = await callTool(
            c,
            { name: "slow", arguments: { steps: 3, ms: 20 } },
            {
              onprogress: (p: any) => progress.push(p),
            },
          );
          assert.equal(text(slow), "done after 3 steps");
          assert.deepEqual(
            progress.map((p) => p.progress),
            [1, 2, 3],
          );
          const seen = await onListChanged(c);
          // Sessionful clients open their GET stream after initialized, in the background: a
          // change announced before it is up is not theirs to hear, so change again until heard.
          await until(async () => {
            if (seen() > 0) return true;
            await c.client.callTool({ name: "add_tool", arguments: {} });
            return false;
          }, 50);
        } finally {
          await c.transport.terminateSession?.().catch(() => undefined);
          await c.client.close();
        }
      });
    }
  }

  it("v1 and v2 on /mcp: the tools of every server, namespaced; calls routed by the prefix", async () => {
    for (const era of ["v1", "v2-modern", "v2-legacy"] as const) {
      const c = await connect(gw, "/mcp", era);
      try {
        assert.equal(c.client.getServerVersion().name, "agentopia-toolbox-gateway");
        const names = (await c.client.listTools()).tools.map((t: any) => t.name);
        assert.ok(names.includes("tools__echo") && names.includes("web__echo"), names.join());
        assert.ok(!names.includes("echo"));
        const r = await c.client.callTool({ name: "web__add", arguments: { a: 2, b: 3 } });
        assert.equal(text(r), "5");
        const progress: any[] = [];
        await callTool(
          c,
          { name: "tools__slow", arguments: { steps: 2, ms: 10 } },
          {
            onprogress: (p: any) => progress.push(p),
          },
        );
        assert.equal(progress.length, 2);
        // A tool list change of any allowed server is announced on /mcp.
        const seen = await onListChanged(c);
        await until(async () => {
          if (seen() > 0) return true;
          await callTool(c, { name: "web__add_tool", arguments: {} });
          return false;
        }, 50);
      } finally {
        await c.transport.terminateSession?.().catch(() => undefined);
        await c.client.close();
      }
    }
  });

  it("a principal restricted to one server sees only it on /mcp and gets 403 elsewhere", async () => {
    for (const era of ["v1", "v2-modern"] as const) {
      const c = await connect(gw, "/mcp", era, TOKENS.toolsOnly);
      try {
        const names: string[] = (await c.client.listTools()).tools.map((t: any) => t.name);
        assert.ok(names.length > 0);
        assert.ok(
          names.every((n) => n.startsWith("tools__")),
          names.join(),
        );
        await assert.rejects(() =>
          c.client.callTool({ name: "web__echo", arguments: { text: "x" } }),
        );
      } finally {
        await c.transport.terminateSession?.().catch(() => undefined);
        await c.client.close();
      }
      await assert.rejects(
        () => connect(gw, "/mcp/web", era, TOKENS.toolsOnly),
        (err: any) =>
          /403/.test(String(err?.message ?? err)) || err?.code === 403 || err?.data?.status === 403,
      );
    }
  });

  for (const n of [2, 20]) {
    it(`${n} concurrent sessions on one stdio server each get only their own answers and progress`, async () => {
      const eras: Era[] = ["v1", "v2-modern", "v2-legacy"];
      const clients = await Promise.all(
        Array.from({ length: n }, (_, i) => connect(gw, "/mcp/tools", eras[i % eras.length])),
      );
      try {
        const runs = await Promise.all(
          clients.map(async (c, i) => {
            const progress: any[] = [];
            const [slow, echo] = await Promise.all([
              callTool(
                c,
                { name: "slow", arguments: { steps: 3, ms: 15 } },
                {
                  onprogress: (p: any) => progress.push(p),
                },
              ),
              c.client.callTool({ name: "echo", arguments: { text: `client-${i}` } }),
            ]);
            return { i, progress, slow: text(slow), echo: text(echo) };
          }),
        );
        for (const r of runs) {
          assert.equal(r.echo, `client-${r.i}`);
          assert.equal(r.slow, "done after 3 steps");
          assert.deepEqual(
            r.progress.map((p) => p.progress),
            [1, 2, 3],
          );
        }
        // One process served them all.
        assert.equal(gw.servers.get("tools")!.supervisor.view().state, "ready");
      } finally {
        await Promise.all(
          clients.map(async (c) => {
            await c.transport.terminateSession?.().catch(() => undefined);
            await c.client.close();
          }),
        );
      }
    });
  }
});
