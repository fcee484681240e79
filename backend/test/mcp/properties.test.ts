/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-argument -- tests read JSON loosely */
// Generated requests — malformed bodies, headers, methods and paths, and near-valid JSON-RPC of
// both eras — against a real gateway: never a 5xx, never a hang, and the gateway keeps serving.
import assert from "node:assert/strict";
import http from "node:http";
import fc from "fast-check";
import type { TestGateway } from "./helpers";
import { modern, modernHeaders, raw, rawInitialize, startGateway, TOKENS } from "./helpers";

/** Longest a request may take before the property calls it a hang (well above the timeouts). */
const HANG_MS = 15_000;

interface Outcome {
  status: number;
  contentType: string;
  text: string;
}

/** One request; an SSE answer counts once its head is there (then it is closed). */
function send(
  base: string,
  method: string,
  path: string,
  headers: Record<string, string>,
  body: string | undefined,
): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    let req: http.ClientRequest;
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`no answer within ${HANG_MS} ms: ${method} ${path} ${body?.slice(0, 200)}`));
    }, HANG_MS);
    try {
      req = http.request(new URL(path, base), { method, headers, agent: false }, (res) => {
        const contentType = String(res.headers["content-type"] ?? "");
        if (contentType.startsWith("text/event-stream")) {
          clearTimeout(timer);
          res.destroy();
          return resolve({ status: res.statusCode ?? 0, contentType, text: "" });
        }
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          clearTimeout(timer);
          resolve({
            status: res.statusCode ?? 0,
            contentType,
            text: Buffer.concat(chunks).toString("utf8"),
          });
        });
        res.on("error", (err) => {
          clearTimeout(timer);
          reject(err);
        });
      });
    } catch (err) {
      // The client library refused the header itself: not a request the gateway saw.
      clearTimeout(timer);
      return resolve({ status: 0, contentType: "", text: String(err) });
    }
    req.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.end(body);
  });
}

const headerText = fc.stringMatching(/^[\x20-\x7e\xa0-\xff]{0,40}$/);

const METHODS = [
  "initialize",
  "ping",
  "tools/list",
  "tools/call",
  "prompts/list",
  "prompts/get",
  "resources/read",
  "resources/subscribe",
  "resources/unsubscribe",
  "logging/setLevel",
  "server/discover",
  "subscriptions/listen",
  "notifications/initialized",
  "notifications/cancelled",
  "completion/complete",
];

const meta = fc.record(
  {
    "io.modelcontextprotocol/protocolVersion": fc.oneof(
      fc.constantFrom("2026-07-28", "2025-11-25", "1999-01-01"),
      fc.anything(),
    ),
    "io.modelcontextprotocol/clientCapabilities": fc.oneof(fc.constant({}), fc.anything()),
    "io.modelcontextprotocol/clientInfo": fc.anything(),
    progressToken: fc.oneof(fc.string(), fc.integer(), fc.anything()),
  },
  { requiredKeys: [] },
);

const params = fc.oneof(
  fc.constant(undefined),
  fc.anything(),
  fc.record(
    {
      name: fc.oneof(
        fc.constantFrom("echo", "add", "whoami", "tools__echo", "x__", "__"),
        fc.string(),
      ),
      uri: fc.string(),
      arguments: fc.oneof(
        fc.record({ text: fc.string(), a: fc.integer(), b: fc.integer() }, { requiredKeys: [] }),
        fc.anything(),
      ),
      protocolVersion: fc.oneof(fc.constantFrom("2025-11-25", "2024-11-05"), fc.anything()),
      level: fc.oneof(fc.constantFrom("debug", "info"), fc.string()),
      requestId: fc.oneof(fc.integer(), fc.string(), fc.anything()),
      cursor: fc.anything(),
      notifications: fc.oneof(
        fc.record(
          {
            toolsListChanged: fc.anything(),
            resourceSubscriptions: fc.oneof(fc.array(fc.string()), fc.anything()),
          },
          { requiredKeys: [] },
        ),
        fc.anything(),
      ),
      _meta: fc.oneof(meta, fc.anything()),
    },
    { requiredKeys: [] },
  ),
);

const message = fc.record(
  {
    jsonrpc: fc.oneof(fc.constant("2.0"), fc.anything()),
    id: fc.oneof(fc.integer(), fc.string(), fc.constant(null), fc.anything()),
    method: fc.oneof(fc.constantFrom(...METHODS), fc.string(), fc.anything()),
    params,
    result: fc.anything(),
    error: fc.anything(),
  },
  { requiredKeys: [] },
);

interface Generated {
  method: string;
  path: string;
  body: string | undefined;
  headers: Record<string, string | undefined>;
}

/** Anything: methods, paths, bodies and headers mostly wrong. */
const noisy: fc.Arbitrary<Generated> = fc.record({
  method: fc.constantFrom("POST", "POST", "POST", "GET", "DELETE", "PUT", "OPTIONS"),
  path: fc.constantFrom(
    "/mcp",
    "/mcp/tools",
    "/mcp/nope",
    "/mcp/%zz",
    "/mcp/TOOLS",
    "/mcp?x=1",
    "/mcp/tools?y",
  ),
  body: fc.oneof(
    message.map((m) => JSON.stringify(m)),
    fc.jsonValue().map((v) => JSON.stringify(v)),
    fc.string(),
    fc.constant(undefined),
    fc.constant("x".repeat(20 * 1024)),
  ),
  headers: fc.record(
    {
      authorization: fc.oneof(
        {
          weight: 8,
          arbitrary: fc.constantFrom(`Bearer ${TOKENS.all}`, `Bearer ${TOKENS.toolsOnly}`),
        },
        { weight: 1, arbitrary: fc.constant("Bearer nope") },
        { weight: 1, arbitrary: headerText },
      ),
      origin: fc.oneof(
        fc.constantFrom("https://app.example.com", "https://evil.example"),
        headerText,
      ),
      "content-type": fc.oneof(fc.constantFrom("application/json", "text/plain"), headerText),
      accept: fc.oneof(
        fc.constantFrom(
          "application/json, text/event-stream",
          "text/event-stream",
          "application/json",
        ),
        headerText,
      ),
      "mcp-protocol-version": fc.oneof(
        fc.constantFrom("2026-07-28", "2025-11-25", "2025-03-26"),
        headerText,
      ),
      "mcp-session-id": fc.oneof(fc.constant("SESSION"), headerText),
      "mcp-method": fc.oneof(fc.constantFrom(...METHODS), headerText),
      "mcp-name": fc.oneof(
        fc.constantFrom("echo", "=?base64?ZWNobw==?=", "=?base64?@@?="),
        headerText,
      ),
    },
    { requiredKeys: ["authorization"] },
  ),
});

const LEGACY_BODIES = [
  { method: "ping" },
  { method: "tools/list" },
  { method: "tools/call", params: { name: "echo", arguments: { text: "hi" } } },
  { method: "tools/call", params: { name: "add", arguments: { a: 1, b: 2 } } },
  { method: "tools/call", params: { name: "tools__echo", arguments: { text: "hi" } } },
  {
    method: "tools/call",
    params: { name: "echo", arguments: { text: "p" }, _meta: { progressToken: 1 } },
  },
  { method: "logging/setLevel", params: { level: "info" } },
  { method: "resources/subscribe", params: { uri: "file:///x" } },
  { method: "resources/unsubscribe", params: { uri: "file:///x" } },
  { method: "prompts/list" },
  {
    method: "initialize",
    params: {
      protocolVersion: "2025-11-25",
      capabilities: {},
      clientInfo: { name: "p", version: "0" },
    },
  },
  { method: "notifications/initialized", notification: true },
  { method: "notifications/cancelled", params: { requestId: 1 }, notification: true },
];
const MODERN_BODIES = [
  { method: "server/discover" },
  { method: "tools/list" },
  { method: "tools/call", params: { name: "echo", arguments: { text: "hi" } } },
  { method: "tools/call", params: { name: "tools__add", arguments: { a: 1, b: 2 } } },
  {
    method: "tools/call",
    params: { name: "whoami", arguments: {}, _meta: { progressToken: "t" } },
  },
  { method: "subscriptions/listen", params: { notifications: { toolsListChanged: true } } },
  { method: "prompts/list" },
  { method: "resources/read", params: { uri: "file:///x" } },
];

/** A valid request of one era, then perhaps one header dropped or replaced and one field changed. */
function nearValid(era: "legacy" | "modern"): fc.Arbitrary<Generated> {
  const bodies = era === "legacy" ? LEGACY_BODIES : MODERN_BODIES;
  return fc
    .record({
      path: fc.constantFrom("/mcp/tools", "/mcp"),
      which: fc.nat({ max: bodies.length - 1 }),
      id: fc.oneof(fc.integer(), fc.string({ maxLength: 8 })),
      token: fc.constantFrom(TOKENS.all, TOKENS.toolsOnly),
      drop: fc.option(
        fc.constantFrom(
          "mcp-protocol-version",
          "mcp-method",
          "mcp-name",
          "mcp-session-id",
          "accept",
        ),
        { nil: undefined },
      ),
      replace: fc.option(
        fc.tuple(
          fc.constantFrom(
            "mcp-protocol-version",
            "mcp-method",
            "mcp-name",
            "mcp-session-id",
            "accept",
          ),
          headerText,
        ),
        { nil: undefined },
      ),
      patch: fc.option(
        fc.tuple(
          fc.constantFrom("jsonrpc", "id", "method", "params", "name", "_meta", "arguments"),
          fc.anything(),
        ),
        { nil: undefined },
      ),
    })
    .map((g) => {
      const b = bodies[g.which] as { method: string; params?: any; notification?: boolean };
      const body: any =
        era === "modern"
          ? modern(g.id, b.method, b.params ?? {})
          : {
              jsonrpc: "2.0",
              id: g.id,
              method: b.method,
              ...(b.params ? { params: b.params } : {}),
            };
      if (b.notification) delete body.id;
      const headers: Record<string, string | undefined> =
        era === "modern"
          ? modernHeaders(body, g.token)
          : {
              authorization: `Bearer ${g.token}`,
              accept: "application/json, text/event-stream",
              "mcp-protocol-version": "2025-11-25",
              "mcp-session-id": "SESSION",
            };
      headers["content-type"] = "application/json";
      if (g.drop) delete headers[g.drop];
      if (g.replace) headers[g.replace[0]] = g.replace[1];
      if (g.patch) {
        const [field, value] = g.patch;
        if (field === "name" || field === "_meta" || field === "arguments")
          body.params = { ...(body.params ?? {}), [field]: value };
        else body[field] = value;
      }
      let text: string;
      try {
        text = JSON.stringify(body);
      } catch {
        text = "{}";
      }
      return { method: "POST", path: g.path, body: text, headers };
    });
}

describe("property: generated requests never get a 5xx and never hang", function () {
  this.timeout(300_000);
  let gw: TestGateway;
  let sessionId: string;

  before(async () => {
    gw = await startGateway({
      servers: [{ name: "tools", kind: "stdio" }],
      limits: {
        requestTimeoutMs: 3_000,
        maxSessionsPerServer: 100_000,
        maxBodyBytes: 16 * 1024,
      },
    });
    sessionId = (await rawInitialize(gw.base, "/mcp/tools")).sessionId;
  });
  after(async () => gw?.stop());

  it("holds for bodies, headers, methods and paths", async () => {
    const statuses = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(fc.oneof(noisy, nearValid("legacy"), nearValid("modern")), async (r) => {
        const h: Record<string, string> = {};
        for (const [k, v] of Object.entries(r.headers))
          if (v !== undefined) h[k] = k === "mcp-session-id" && v === "SESSION" ? sessionId : v;
        const out = await send(gw.base, r.method, r.path, h, r.body);
        if (out.status === 0) return; // refused by the client library, never sent
        statuses.set(out.status, (statuses.get(out.status) ?? 0) + 1);
        assert.ok(
          out.status < 500,
          `${out.status} for ${r.method} ${r.path} ${JSON.stringify(h)} ${r.body?.slice(0, 300)}: ${out.text}`,
        );
        if (out.contentType.startsWith("application/json")) JSON.parse(out.text);
      }),
      { numRuns: 600 },
    );
    // The runs reached the deep paths: answers of the methods, not only early refusals.
    const count = (pred: (s: number) => boolean) =>
      [...statuses].filter(([s]) => pred(s)).reduce((n, [, c]) => n + c, 0);
    assert.ok(count((s) => s === 200 || s === 202) >= 20, JSON.stringify([...statuses]));
    assert.ok(count((s) => s === 400) >= 20, JSON.stringify([...statuses]));
    // Still serving, and nothing failed inside.
    const body = modern(1, "tools/call", { name: "echo", arguments: { text: "still here" } });
    const res = await raw(gw.base, "POST", "/mcp/tools", { headers: modernHeaders(body), body });
    assert.equal(res.json.result.content[0].text, "still here");
    assert.ok(!gw.logs.lines.some((l) => l.msg === "mcp request failed"));
  });
});
