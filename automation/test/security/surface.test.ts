/* eslint-disable @typescript-eslint/no-unsafe-member-access -- JSON responses are checked by assertions */
import assert from "node:assert/strict";
import fc from "fast-check";
import { rawHttp, rawRequest } from "../../../servicekit/test/rawHttp";
import { loadSettings, SettingsError } from "../../src/config";
import { digitaloceanEnv } from "../fixtures/settingsEnv";
import { auth, newAccount, SERVICE_TOKEN } from "../helpers";
import { loggedService, troubling, type LoggedService } from "./kit";

// Issue 13, items 5 and 12 (the automation service's HTTP surface): nothing but health answers
// without a token, the token is checked before a body is read, every error is
// {error, message, field?}, raw request targets are a 4xx, and a DTMA on a droplet reaches the
// service over https only.

const service = `Authorization: Bearer ${SERVICE_TOKEN}`;

/** The error shape every refusal must have. */
function assertErrorShape(status: number, body: string, what: string): void {
  let parsed: { error?: unknown; message?: unknown; field?: unknown };
  try {
    parsed = JSON.parse(body) as typeof parsed;
  } catch {
    assert.fail(`${what} → ${status}: not JSON: ${JSON.stringify(body.slice(0, 200))}`);
  }
  assert.equal(typeof parsed.error, "string", `${what} → ${status} ${body}`);
  assert.equal(typeof parsed.message, "string", `${what} → ${status} ${body}`);
  if (parsed.field !== undefined) assert.equal(typeof parsed.field, "string");
  assert.deepEqual(
    Object.keys(parsed).filter((k) => !["error", "message", "field"].includes(k)),
    [],
    `${what} → ${status} ${body}: only error, message, field`,
  );
}

describe("security (issue 13, items 5 and 12): the HTTP surface", function () {
  this.timeout(120_000);
  let svc: LoggedService;
  before(async () => (svc = await loggedService()));
  after(() => svc.stop());

  it("/openapi.json needs a token like everything but health", async () => {
    const anonymous = await svc.app.inject({ url: "/openapi.json" });
    assert.equal(anonymous.statusCode, 401);
    assertErrorShape(anonymous.statusCode, anonymous.body, "GET /openapi.json");
    const served = await svc.app.inject({ url: "/openapi.json", headers: auth });
    assert.equal(served.statusCode, 200);
    assert.equal(served.json().openapi, "3.1.0");
    for (const url of ["/healthz", "/readyz"]) {
      assert.equal((await svc.app.inject({ url })).statusCode, 200, url);
      assert.equal((await svc.app.inject({ method: "HEAD", url })).statusCode, 200, `HEAD ${url}`);
    }
    const unknown = await svc.app.inject({ url: "/v2/anything" });
    assert.equal(unknown.statusCode, 401, "an unknown route needs the token too");
    assert.equal((await svc.app.inject({ url: "/v2/anything", headers: auth })).statusCode, 404);
    assert.equal(
      (await svc.app.inject({ method: "HEAD", url: `/v1/toolboxes/${newAccount()}` })).statusCode,
      401,
    );
  });

  it("the token is checked before the body is read: no token is a 401 whatever the body", async () => {
    const bodies: [string, string][] = [
      ["application/json", "{"],
      ["application/json", JSON.stringify({ pad: "x".repeat(70 * 1024) })],
      ["text/plain", "hello"],
      ["application/json", '{"__proto__":{"x":1}}'],
    ];
    for (const url of ["/v1/toolboxes", "/v1/heartbeat", `/v1/toolboxes/${newAccount()}/refresh`]) {
      for (const [type, payload] of bodies) {
        for (const headers of [{}, { authorization: "Bearer junk" }]) {
          const res = await svc.app.inject({
            method: "POST",
            url,
            headers: { "content-type": type, ...headers },
            payload,
          });
          assert.equal(res.statusCode, 401, `${url} ${type} ${payload.slice(0, 20)}: ${res.body}`);
          assertErrorShape(res.statusCode, res.body, `POST ${url}`);
        }
      }
    }
    // With the token, the body's own problems are named.
    const cases: [string, string, number, string][] = [
      ["application/json", "{", 400, "body"],
      ["application/json", JSON.stringify({ pad: "x".repeat(70 * 1024) }), 413, "body"],
      ["text/plain", "hello", 415, "content-type"],
    ];
    for (const [type, payload, status, field] of cases) {
      const res = await svc.app.inject({
        method: "POST",
        url: "/v1/toolboxes",
        headers: { ...auth, "content-type": type },
        payload,
      });
      assert.equal(res.statusCode, status, res.body);
      assertErrorShape(res.statusCode, res.body, `POST /v1/toolboxes ${type}`);
      assert.equal(res.json().field, field);
    }
  });

  it("a bad URL, a bad request target and oversized headers are answered {error, message, field}", async () => {
    const cases: [string, string[], number, string][] = [
      ["/v1/toolboxes/%", [service], 400, "path"],
      ["/v1/toolboxes/%zz/tokens", [], 400, "path"],
      ["http://x:99999/v1/toolboxes", [service], 400, "target"],
      ["*", [], 400, "target"],
      ["v1/toolboxes", [service], 400, "target"],
      ["http://", [], 400, "target"],
      ["/healthz", ["X-Padding: " + "a".repeat(20_000)], 431, "headers"],
    ];
    for (const [target, extra, status, field] of cases) {
      const res = await rawHttp(svc.port, rawRequest("GET", target, extra));
      assert.equal(res.status, status, `GET ${target}: ${res.status} ${res.body}`);
      assertErrorShape(res.status, res.body, `GET ${target}`);
      assert.equal(JSON.parse(res.body).field, field, `GET ${target}`);
    }
    // An absolute-form target is routed by its path, with that route's auth.
    assert.equal((await rawHttp(svc.port, rawRequest("GET", "http://x/healthz"))).status, 200);
    assert.equal((await rawHttp(svc.port, rawRequest("GET", "http://x/openapi.json"))).status, 401);
    assert.deepEqual(troubling(svc.lines), []);
  });

  it("a prototype-poisoning key is refused with the field that holds it, not as invalid JSON", async () => {
    const cases: [string, string][] = [
      [`{"account_id": "${newAccount()}", "region": {"__proto__": {}}}`, "region"],
      [`{"__proto__": {"admin": true}}`, "body"],
      [`{"a": [{"constructor": {"prototype": {}}}]}`, "a.0"],
    ];
    for (const [body, field] of cases) {
      const res = await svc.app.inject({
        method: "POST",
        url: "/v1/toolboxes",
        headers: { ...auth, "content-type": "application/json" },
        payload: body,
      });
      assert.equal(res.statusCode, 400, body);
      assertErrorShape(res.statusCode, res.body, body);
      assert.equal(res.json().field, field, res.body);
      assert.equal(res.json().error, "invalid_request", res.body);
    }
    assert.equal(({} as Record<string, unknown>).admin, undefined, "nothing polluted");
  });

  it("property: no raw request target, with or without a token, is a 5xx, an answer outside the error shape or a logged stack trace", async () => {
    const unit = fc.constantFrom(..."/:?#%@[]!$&'()*+,;=.-_~av1toolbxesX019".split(""));
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom("GET", "POST", "DELETE", "HEAD"),
        fc.oneof(
          fc.string({ unit, maxLength: 40 }),
          fc.string({ unit, maxLength: 30 }).map((s) => `http://${s}`),
          fc.string({ unit, maxLength: 40 }).map((s) => `/v1/toolboxes/${s}`),
          fc.string({ unit, maxLength: 40 }).map((s) => `/v1/operations/${s}/events`),
        ),
        fc.boolean(),
        async (method, target, withToken) => {
          const res = await rawHttp(
            svc.port,
            rawRequest(method, target, withToken ? [service, "Content-Length: 0"] : []),
          );
          const what = `${method} ${target}${withToken ? " (service token)" : ""}`;
          assert.ok(res.status === 0 || res.status < 500, `${what}: ${res.status} ${res.body}`);
          if (res.status >= 400 && method !== "HEAD") assertErrorShape(res.status, res.body, what);
        },
      ),
      { numRuns: 300 },
    );
    assert.deepEqual(troubling(svc.lines), []);
  });

  it("PUBLIC_BASE_URL must be https for the digitalocean target (DTMAs send their token to it)", () => {
    const env = digitaloceanEnv;
    assert.throws(
      () => loadSettings({ ...env, PUBLIC_BASE_URL: "http://automation.example" }),
      (err: unknown) =>
        err instanceof SettingsError &&
        err.lines.length === 1 &&
        /^PUBLIC_BASE_URL: .*https/.test(err.lines[0]),
    );
    assert.equal(
      loadSettings({ ...env, PUBLIC_BASE_URL: "https://automation.example" }).publicBaseUrl,
      "https://automation.example",
    );
    // Locally the DTMA reaches the service on this machine's bridge: http stays allowed there.
    assert.equal(
      loadSettings({ PUBLIC_BASE_URL: "http://host.docker.internal:8080" }).publicBaseUrl,
      "http://host.docker.internal:8080",
    );
  });
});
