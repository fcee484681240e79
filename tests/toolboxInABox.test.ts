/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-unsafe-argument, @typescript-eslint/no-unsafe-call, @typescript-eslint/no-unsafe-return, @typescript-eslint/no-explicit-any -- tests read JSON answers loosely */
/**
 * The droplet in a box: the DTMA and backend images started exactly as
 * `components/containerSpecs.ts` declares them on a real Docker daemon, real MCP servers deployed
 * through the backend's API, and agents using them through the gateway with the official MCP
 * clients of both SDK lines.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  Client as ClientV2,
  StreamableHTTPClientTransport as TransportV2,
} from "@modelcontextprotocol/client";
import { Client as ClientV1 } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport as TransportV1 } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { AgentTokens } from "../backend/src/auth/agentTokens";
import { Revocations } from "../backend/src/auth/revocations";
import { docker, DTMA_TEST_IMAGE } from "./harness/dockerCli";
import {
  BACKEND_TEST_IMAGE,
  imagePresent,
  startToolbox,
  waitHealthy,
  type Toolbox,
} from "./harness/toolbox";

const MCP_TOOLS = "agentopia-test/mcp-tools:latest";
const MCP_EVERYTHING = "agentopia-test/mcp-everything:latest";
const BUSYBOX = "agentopia-test/busybox:latest";

type Json = Record<string, any>;

describe("the droplet in a box: DTMA and backend from their specs, MCP servers through the gateway", function () {
  this.timeout(300_000);
  let box: Toolbox;
  const clients: { close(): Promise<void> }[] = [];

  const api = async (method: string, path: string, body?: unknown, token?: string) => {
    const res = await fetch(box.backendUrl + path, {
      method,
      headers: {
        authorization: `Bearer ${token ?? box.tokens.backendApi}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(120_000),
    });
    const text = await res.text();
    return {
      status: res.status,
      headers: res.headers,
      body: text ? (JSON.parse(text) as Json) : undefined,
    };
  };

  const v1 = async (path: string, token = box.tokens.agentGateway) => {
    const client = new ClientV1({ name: "box-test-v1", version: "1.0.0" });
    await client.connect(
      new TransportV1(new URL(box.backendUrl + path), {
        requestInit: { headers: { authorization: `Bearer ${token}` } },
      }),
    );
    clients.push(client);
    return client;
  };

  const v2 = async (path: string, modern: boolean, token = box.tokens.agentGateway) => {
    const client = new ClientV2(
      { name: "box-test-v2", version: "2.0.0" },
      modern ? { versionNegotiation: { mode: { pin: "2026-07-28" } } } : {},
    );
    await client.connect(
      new TransportV2(new URL(box.backendUrl + path), {
        requestInit: { headers: { authorization: `Bearer ${token}` } },
      }),
    );
    clients.push(client);
    return client;
  };

  const text = (result: any): string =>
    (result.content as { text: string }[]).map((c) => c.text).join("");
  const toolNames = (list: any): string[] =>
    (list.tools as { name: string }[]).map((t) => t.name).sort();

  const deploy = (name: string, spec: Json) => api("PUT", `/v1/servers/${name}`, spec);

  before(async function () {
    for (const image of [DTMA_TEST_IMAGE, BACKEND_TEST_IMAGE, MCP_TOOLS, MCP_EVERYTHING, BUSYBOX]) {
      assert.ok(imagePresent(image), `${image} is missing: run bash scripts/build-test-images.sh`);
    }
    box = await startToolbox({});
  });

  after(async () => {
    for (const c of clients) await c.close().catch(() => undefined);
    box?.remove();
  });

  it("starts the backend from its spec: healthy, non-root, read-only, no socket, on the control network", () => {
    const [c] = JSON.parse(docker(["inspect", box.specs.backend.name])) as Json[];
    assert.notEqual(c.Config.User, "");
    assert.equal(c.HostConfig.ReadonlyRootfs, true);
    assert.deepEqual(c.HostConfig.CapDrop, ["ALL"]);
    assert.ok(c.HostConfig.SecurityOpt.includes("no-new-privileges:true"));
    assert.equal(c.HostConfig.Memory, 192 * 1024 * 1024);
    assert.equal((c.Mounts as unknown[]).length, 0, "the backend never holds the Docker socket");
    assert.deepEqual(
      Object.keys(c.NetworkSettings.Networks).sort(),
      box.specs.networks.map((n) => n.name).sort(),
    );
    assert.equal(c.Config.Labels["agentopia.role"], "backend");
  });

  it("answers /health without a token and without a version; everything else needs the token", async () => {
    const health = await fetch(`${box.backendUrl}/health`);
    assert.equal(health.status, 200);
    assert.deepEqual(await health.json(), { status: "ok" });
    for (const [method, path] of [
      ["GET", "/status"],
      ["GET", "/metrics"],
      ["GET", "/openapi.json"],
      ["GET", "/v1/servers"],
      ["PUT", "/v1/servers/x"],
      ["POST", "/v1/agent-tokens"],
      ["GET", "/v1/nothing-here"],
      ["POST", "/mcp/x"],
      ["POST", "/mcp"],
    ]) {
      const res = await fetch(box.backendUrl + path, { method });
      assert.equal(res.status, 401, `${method} ${path}`);
    }
    // The agents' token is not the control plane's, and the control plane's is not an agent's.
    assert.equal((await api("GET", "/status", undefined, box.tokens.agentGateway)).status, 401);
    const status = await api("GET", "/status");
    assert.equal(status.status, 200);
    assert.equal(status.body!.service, "backend");
    assert.equal(status.body!.dtma.service, "DTMA", "the DTMA's /status comes with one call");
  });

  it("every route the OpenAPI document lists needs the token, but /health", async () => {
    const doc = await api("GET", "/openapi.json");
    const routes = Object.entries(
      doc.body!.paths as Record<string, Record<string, unknown>>,
    ).flatMap(([p, methods]) =>
      Object.keys(methods).map((m) => [m.toUpperCase(), p.replace(/\{[a-z_]+\}/g, "x")]),
    );
    assert.ok(routes.length >= 20, `${routes.length} routes documented`);
    for (const [method, path] of routes) {
      const res = await fetch(box.backendUrl + path, { method });
      assert.equal(res.status, path === "/health" ? 200 : 401, `${method} ${path}`);
    }
  });

  it("property: malformed input to the control-plane API gets a 4xx naming the field, never a 5xx", async () => {
    const name = fc.oneof(
      fc.constantFrom("ok-name", "UPPER", "a..b", "-x", "x".repeat(70), "%2e%2e"),
      fc.string(),
    );
    const body = fc.oneof(
      fc.jsonValue(),
      fc.record(
        {
          // Never a reference the daemon could pull: the test may reach only its own containers.
          // Either the local busybox image (present: never pulled) or text Docker's grammar refuses.
          image: fc.oneof(
            fc.constantFrom("", "UPPER/x", "a..b/x", "host:99999999999/x", BUSYBOX),
            fc.string().map((s) => `${s} NOT-A-REFERENCE`),
          ),
          transport: fc.oneof(
            fc.constantFrom({ type: "stdio" }, { type: "http" }, { type: "http", port: 0 }),
            fc.jsonValue(),
          ),
          network: fc.constantFrom("none", "egress", "bridge", "host"),
          timeout_seconds: fc.oneof(fc.constantFrom(0, 1, 100000, -1, 1.5), fc.jsonValue()),
          isolation: fc.constantFrom("shared", "per_session", "weird"),
          max_lanes: fc.oneof(fc.integer(), fc.jsonValue()),
          privileged: fc.boolean(),
        },
        { requiredKeys: [] },
      ),
    );
    const tokenBody = fc.record(
      {
        agent_id: fc.oneof(fc.constantFrom("agent-1", "", "x".repeat(200)), fc.jsonValue()),
        servers: fc.oneof(fc.constantFrom("*", ["web"], ["BAD NAME"], []), fc.jsonValue()),
        expires_in_seconds: fc.oneof(fc.integer(), fc.jsonValue()),
        token_id: fc.oneof(fc.uuid(), fc.string()),
        issued_before: fc.oneof(
          fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
          fc.string(),
        ),
        revocations: fc.oneof(fc.array(fc.jsonValue(), { maxLength: 3 }), fc.jsonValue()),
      },
      { requiredKeys: [] },
    );
    const check = (res: { status: number; body?: Json }, what: string) => {
      assert.ok(res.status < 500, `${what}: ${res.status} ${JSON.stringify(res.body)}`);
      if (res.status >= 400) assert.equal(typeof res.body?.error, "string", what);
    };
    await fc.assert(
      fc.asyncProperty(name, body, async (n, b) => {
        const res = await api("PUT", `/v1/servers/${encodeURIComponent(n)}`, b);
        check(res, `PUT ${n} ${JSON.stringify(b)}`);
        if (res.status < 300) await api("DELETE", `/v1/servers/${encodeURIComponent(n)}`);
      }),
      { numRuns: 150 },
    );
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom("/v1/agent-tokens", "/v1/agent-tokens/revoke"),
        tokenBody,
        async (path, b) => {
          check(await api("POST", path, b), `POST ${path} ${JSON.stringify(b)}`);
        },
      ),
      { numRuns: 150 },
    );
    await fc.assert(
      fc.asyncProperty(tokenBody, async (b) =>
        check(await api("PUT", "/v1/agent-tokens/revocations", b), "PUT revocations"),
      ),
      { numRuns: 50 },
    );
    await fc.assert(
      fc.asyncProperty(name, fc.string(), fc.string(), async (n, tail, since) => {
        const q = new URLSearchParams({ tail, since });
        check(
          await api("GET", `/v1/servers/${encodeURIComponent(n)}/logs?${q.toString()}`),
          `logs ${n}`,
        );
      }),
      { numRuns: 100 },
    );
    // What the properties may have left behind is gone again (no revocation held).
    assert.equal(
      (await api("PUT", "/v1/agent-tokens/revocations", { revocations: [] })).status,
      200,
    );
  });

  it("deploys a stdio, an http and a published stdio server, each ready once it completed an MCP initialize", async () => {
    const tools = await deploy("tools", { image: MCP_TOOLS, transport: { type: "stdio" } });
    assert.equal(tools.status, 201, JSON.stringify(tools.body));
    assert.ok(toolNames(tools.body).includes("slow"));
    assert.equal(tools.body!.gateway.lane, "ready");

    const web = await deploy("web", {
      image: MCP_TOOLS,
      command: ["node", "http.mjs"],
      env: { PORT: "8080", MCP_PATH: "/mcp" },
      transport: { type: "http", port: 8080, path: "/mcp" },
    });
    assert.equal(web.status, 201, JSON.stringify(web.body));
    assert.ok(toolNames(web.body).includes("echo"));

    const everything = await deploy("everything", {
      image: MCP_EVERYTHING,
      transport: { type: "stdio" },
      resources: { memory_mb: 256 },
    });
    assert.equal(everything.status, 201, JSON.stringify(everything.body));
    assert.ok(toolNames(everything.body).includes("echo"));

    const again = await deploy("tools", { image: MCP_TOOLS, transport: { type: "stdio" } });
    assert.equal(again.status, 200);
    assert.equal(again.body!.changed, false);

    const list = await api("GET", "/v1/servers");
    assert.deepEqual((list.body!.servers as Json[]).map((s) => s.name).sort(), [
      "everything",
      "tools",
      "web",
    ]);
  });

  it("an agent uses each through /mcp/:server with the 1.x client: list, call, progress", async () => {
    for (const server of ["tools", "web"]) {
      const client = await v1(`/mcp/${server}`);
      assert.equal(client.getServerVersion()?.name, "mcp-tools");
      assert.ok(toolNames(await client.listTools()).includes("add"));
      assert.equal(text(await client.callTool({ name: "add", arguments: { a: 2, b: 40 } })), "42");
      const progress: number[] = [];
      const done = await client.callTool(
        { name: "slow", arguments: { steps: 3, ms: 20 } },
        undefined,
        {
          onprogress: (p) => progress.push(p.progress),
        },
      );
      assert.equal(text(done), "done after 3 steps");
      assert.deepEqual(progress, [1, 2, 3], server);
    }
    const everything = await v1("/mcp/everything");
    assert.equal(
      text(await everything.callTool({ name: "echo", arguments: { message: "hi" } })),
      "Echo: hi",
    );
    const steps: number[] = [];
    await everything.callTool(
      { name: "trigger-long-running-operation", arguments: { duration: 1, steps: 3 } },
      undefined,
      { onprogress: (p) => steps.push(p.progress) },
    );
    assert.equal(steps.length, 3);
  });

  it("the 2.x client works in the 2026-07-28 era and in its sessionful fallback", async () => {
    for (const modern of [true, false]) {
      const client = await v2("/mcp/tools", modern);
      assert.ok(toolNames(await client.listTools()).includes("echo"), `modern=${modern}`);
      assert.equal(
        text(await client.callTool({ name: "echo", arguments: { text: `v2-${modern}` } })),
        `v2-${modern}`,
      );
      const progress: number[] = [];
      await client.callTool(
        { name: "slow", arguments: { steps: 2, ms: 10 } },
        { onprogress: (p: { progress: number }) => progress.push(p.progress) },
      );
      assert.deepEqual(progress, [1, 2], `modern=${modern}`);
    }
  });

  it("/mcp aggregates every server the caller may use, tool names namespaced by server", async () => {
    const client = await v1("/mcp");
    const names = toolNames(await client.listTools());
    for (const n of ["tools__echo", "web__add", "everything__echo"])
      assert.ok(names.includes(n), n);
    assert.equal(text(await client.callTool({ name: "web__add", arguments: { a: 1, b: 2 } })), "3");
    assert.equal(
      text(await client.callTool({ name: "tools__echo", arguments: { text: "agg" } })),
      "agg",
    );
  });

  it("2, then 20 concurrent sessions on one stdio server each get only their own answers and progress", async () => {
    for (const n of [2, 20]) {
      const sessions = await Promise.all(Array.from({ length: n }, () => v1("/mcp/tools")));
      await Promise.all(
        sessions.map(async (client, i) => {
          const progress: { progress: number; message?: string }[] = [];
          const [slow, echo] = await Promise.all([
            client.callTool({ name: "slow", arguments: { steps: 3, ms: 5 + i } }, undefined, {
              onprogress: (p) => progress.push(p),
            }),
            client.callTool({ name: "echo", arguments: { text: `session-${n}-${i}` } }),
          ]);
          assert.equal(text(echo), `session-${n}-${i}`);
          assert.equal(text(slow), "done after 3 steps");
          assert.deepEqual(
            progress.map((p) => p.progress),
            [1, 2, 3],
          );
        }),
      );
      await Promise.all(sessions.map((c) => c.close()));
    }
    // One process served them all, initialized once by the gateway: no agent's identity reached it.
    const probe = await v1("/mcp/tools");
    const seen = JSON.parse(text(await probe.callTool({ name: "whoami", arguments: {} })));
    assert.equal(seen.clientInfo.name, "agentopia-toolbox-gateway");
    assert.deepEqual(seen.capabilities, {});
  });

  it("isolation per_session gives each session a process of its own inside the same container", async () => {
    const deployed = await deploy("private", {
      image: MCP_TOOLS,
      transport: { type: "stdio" },
      isolation: "per_session",
      max_lanes: 2,
    });
    assert.equal(deployed.status, 201, JSON.stringify(deployed.body));
    assert.equal(deployed.body!.isolation, "per_session");
    const [a, b] = [await v1("/mcp/private"), await v1("/mcp/private")];
    const who = async (c: ClientV1) =>
      JSON.parse(text(await c.callTool({ name: "whoami", arguments: {} })));
    assert.equal(text(await a.callTool({ name: "counter", arguments: {} })), "1");
    assert.equal(text(await a.callTool({ name: "counter", arguments: {} })), "2");
    assert.equal(
      text(await b.callTool({ name: "counter", arguments: {} })),
      "1",
      "b has its own state",
    );
    assert.notEqual((await who(a)).pid, (await who(b)).pid);
    // The container's lane cap (max_lanes 2) refuses a third session at initialize.
    await assert.rejects(() => v1("/mcp/private"), /503|unavailable|lane/i);
    // A session ended by DELETE (what a client does on close) frees its process and its place.
    await (a.transport as TransportV1).terminateSession();
    await a.close();
    let c: ClientV1 | undefined;
    for (let i = 0; i < 20 && !c; i++) {
      c = await v1("/mcp/private").catch(async () => {
        await new Promise((r) => setTimeout(r, 250));
        return undefined;
      });
    }
    assert.ok(c, "a new session got a lane once one was freed");
    assert.equal(text(await c.callTool({ name: "counter", arguments: {} })), "1");
    assert.equal((await api("DELETE", "/v1/servers/private")).status, 204);
  });

  it("a per-agent token sees and calls only its servers; an expired or revoked token gets 401", async () => {
    const minted = await api("POST", "/v1/agent-tokens", {
      agent_id: "agent-1",
      servers: ["web"],
      expires_in_seconds: 600,
    });
    assert.equal(minted.status, 201, JSON.stringify(minted.body));
    const token = minted.body!.token as string;
    const agg = await v1("/mcp", token);
    const names = toolNames(await agg.listTools());
    assert.ok(names.length > 0 && names.every((n) => n.startsWith("web__")), names.join(","));
    const own = await v1("/mcp/web", token);
    assert.equal(text(await own.callTool({ name: "echo", arguments: { text: "mine" } })), "mine");
    const other = await fetch(`${box.backendUrl}/mcp/tools`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${token}`,
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
      },
      body: JSON.stringify({
        jsonrpc: "2.0",
        id: 1,
        method: "initialize",
        params: {
          protocolVersion: "2025-11-25",
          capabilities: {},
          clientInfo: { name: "x", version: "1" },
        },
      }),
    });
    assert.equal(other.status, 403);
    // A token signed with this toolbox's key but already expired (minted with a clock an hour
    // behind) is refused like an unknown one.
    const earlier = new AgentTokens(
      box.tokens.backendApi,
      new Revocations(),
      () => Date.now() - 3_600_000,
    );
    const expired = await earlier.mint({
      agentId: "agent-1",
      servers: ["web"],
      expiresInSeconds: 600,
    });
    await assert.rejects(() => v1("/mcp/web", expired.token), /401|Unauthorized/i);
    const revoked = await api("POST", "/v1/agent-tokens/revoke", {
      token_id: minted.body!.token_id,
    });
    assert.equal(revoked.status, 200);
    await assert.rejects(() => v1("/mcp/web", token), /401|Unauthorized/i);
  });

  it("a server that crashes mid-call answers every call in flight at once, and is back for the next one", async () => {
    const client = await v1("/mcp/tools");
    const slow = client.callTool({ name: "slow", arguments: { steps: 1, ms: 30_000 } }).then(
      () => "answered",
      (err: Error) => err.message,
    );
    await new Promise((r) => setTimeout(r, 200));
    const started = Date.now();
    const crash = await client.callTool({ name: "crash", arguments: {} }).then(
      () => "answered",
      (err: Error) => err.message,
    );
    assert.match(crash, /exited|crash|closed/i);
    assert.match(await slow, /exited|crash|closed/i);
    assert.ok(Date.now() - started < 25_000, "the slow call did not wait for its own end");
    // Docker restarts it (restart policy); the gateway reconnects for the next call.
    let answer = "";
    for (let i = 0; i < 40 && answer !== "back"; i++) {
      answer = await client
        .callTool({ name: "echo", arguments: { text: "back" } })
        .then(text, async (err: Error) => {
          await new Promise((r) => setTimeout(r, 500));
          return err.message;
        });
    }
    assert.equal(answer, "back");
  });

  it("a server that never initializes fails its deploy with its last log lines", async () => {
    const res = await deploy("silent", {
      image: BUSYBOX,
      command: ["sh", "-c", "echo 'fatal: no API key configured' >&2; sleep 3600"],
      transport: { type: "stdio" },
      timeout_seconds: 5,
    });
    assert.equal(res.status, 422, JSON.stringify(res.body));
    assert.equal(res.body!.error, "server_not_ready");
    assert.ok(
      (res.body!.logs as string[]).some((l) => l.includes("fatal: no API key configured")),
      JSON.stringify(res.body),
    );
    assert.equal((await api("DELETE", "/v1/servers/silent")).status, 204);
  });

  it("the DTMA stopped: 503 dtma_unavailable with a reason at once; the gateway recovers when it is back", async () => {
    docker(["stop", "-t", "2", box.specs.dtma.name]);
    try {
      const started = Date.now();
      const res = await api("GET", "/v1/servers");
      assert.equal(res.status, 503);
      assert.equal(res.body!.error, "dtma_unavailable");
      assert.ok((res.body!.message as string).length > "the DTMA is unavailable: ".length);
      assert.ok(Date.now() - started < 30_000);
      const status = await api("GET", "/status");
      assert.equal(status.body!.status, "degraded");
      assert.equal(status.body!.dtma.reachable, false);
    } finally {
      docker(["start", box.specs.dtma.name]);
      await waitHealthy(box.specs.dtma.name);
    }
    const client = await v1("/mcp/tools");
    let answer = "";
    for (let i = 0; i < 40 && answer !== "after"; i++) {
      answer = await client
        .callTool({ name: "echo", arguments: { text: "after" } })
        .then(text, async (e: Error) => {
          await new Promise((r) => setTimeout(r, 500));
          return e.message;
        });
    }
    assert.equal(answer, "after");
  });

  it("the backend restarted: servers still there, per-agent tokens still valid, agents reconnect", async () => {
    const minted = await api("POST", "/v1/agent-tokens", {
      agent_id: "agent-2",
      servers: "*",
      expires_in_seconds: 600,
    });
    const before = await api("GET", "/status");
    await box.restartBackend();
    const after = await api("GET", "/status");
    assert.notEqual(after.body!.boot_id, before.body!.boot_id);
    const servers = await api("GET", "/v1/servers");
    assert.deepEqual((servers.body!.servers as Json[]).map((s) => s.name).sort(), [
      "everything",
      "tools",
      "web",
    ]);
    const client = await v1("/mcp/everything", minted.body!.token as string);
    assert.equal(
      text(await client.callTool({ name: "echo", arguments: { message: "again" } })),
      "Echo: again",
    );
  });

  it("nothing the backend logged carries a secret or a tool's arguments", () => {
    const logs = docker(["logs", box.specs.backend.name]) + docker(["logs", box.specs.dtma.name]);
    for (const secret of Object.values(box.tokens)) assert.ok(!logs.includes(secret));
    for (const argument of ["session-20-7", "v2-true", "mine", "agg"]) {
      assert.ok(!logs.includes(argument), `argument '${argument}' was logged`);
    }
    assert.match(logs, /"tool":"echo"/, "tool calls are audited (metadata only)");
  });
});
