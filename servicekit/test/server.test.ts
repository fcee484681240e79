import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import type http from "node:http";
import type { AddressInfo } from "node:net";
import { Writable } from "node:stream";
import fc from "fast-check";
import { createLogger } from "../src/log";
import { createHttpServer } from "../src/http/server";
import { HttpError } from "../src/http/errors";
import { Router } from "../src/http/router";
import { TokenVerifier } from "../src/http/auth";
import { rawHttp, rawRequest } from "./rawHttp";

// The shared node:http layer as both services use it, spoken to with raw HTTP/1.1 so that any
// request target (origin-form, absolute-form, asterisk, garbage) reaches the server as sent.

const TOKEN = randomBytes(32).toString("base64url");

const raw = rawHttp;
const request = rawRequest;
const bearer = `Authorization: Bearer ${TOKEN}`;

describe("servicekit HTTP server", () => {
  let server: http.Server;
  let port: number;
  const lines: { level: number; msg: string; err?: unknown }[] = [];

  before(async () => {
    const destination = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const l of chunk.toString("utf8").split("\n"))
          if (l) lines.push(JSON.parse(l) as (typeof lines)[number]);
        done();
      },
    });
    const log = createLogger("test", "info", { destination });
    const router = new Router().add(
      {
        method: "GET",
        path: "/health",
        auth: "none",
        handler: () => ({ status: 200, body: { status: "ok" } }),
      },
      { method: "GET", path: "/things", handler: () => ({ status: 200, body: { things: [] } }) },
      { method: "PUT", path: "/things/:id", body: true, handler: () => ({ status: 204 }) },
      {
        method: "GET",
        path: "/things/:id",
        handler: ({ params }) => ({ status: 200, body: { id: params.id } }),
      },
      {
        method: "GET",
        path: "/mine",
        auth: "handler",
        handler: () => {
          throw new HttpError(401, "unauthorized", "no");
        },
      },
      {
        method: "POST",
        path: "/things/:id/attach",
        protocol: "mcp-stdio",
        upgrade: ({ socket }) => void socket.end("HTTP/1.1 101 Switching Protocols\r\n\r\n"),
      },
    );
    server = createHttpServer({
      router,
      verifier: new TokenVerifier({ current: TOKEN }),
      log,
      metrics: { recordRequest: () => undefined, authFailure: () => undefined },
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    port = (server.address() as AddressInfo).port;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));
  beforeEach(() => (lines.length = 0));

  const errorsLogged = () => lines.filter((l) => l.level >= 50);

  it("answers raw request targets it cannot route with a 4xx, before auth, and logs no error", async () => {
    for (const target of [
      "//",
      "///",
      "//x/things",
      "http://x:99999/tools",
      "http://[::1",
      "http://",
      "*",
      "things",
      "/things/%zz",
      "http://x/things/%",
    ]) {
      for (const auth of [[], [bearer]]) {
        const res = await raw(port, request("GET", target, auth));
        assert.ok(res.status >= 400 && res.status < 500, `GET ${target}: ${res.status}`);
      }
    }
    assert.deepEqual(errorsLogged(), []);
  });

  it("routes an absolute-form target by its path, and an origin-form path never as a host", async () => {
    const ok = await raw(port, request("GET", "http://127.0.0.1/things", [bearer]));
    assert.equal(ok.status, 200);
    // `//x/things` is the path "//x/things", not the host x and the path /things.
    const slashes = await raw(port, request("GET", "//x/things", [bearer]));
    assert.equal(slashes.status, 404);
    const invalid = await raw(port, request("GET", "http://x:99999/tools", [bearer]));
    assert.equal(invalid.status, 400);
    assert.equal((JSON.parse(invalid.body) as { field: string }).field, "target");
  });

  it("never answers 5xx nor logs an error for any request target (fast-check)", async () => {
    const chars = fc.constantFrom(..."/:?#%@[]!$&'()*+,;=.-_~abcXYZ019 \t\\\"<>^`{|}".split(""));
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.string({ unit: chars, maxLength: 40 }),
          fc.webUrl({ withQueryParameters: true, withFragments: true }),
          fc.string({ unit: chars, maxLength: 30 }).map((s) => `http://${s}`),
          fc.string({ unit: chars, maxLength: 30 }).map((s) => `/${s}`),
        ),
        fc.boolean(),
        async (target, withToken) => {
          const res = await raw(port, request("GET", target, withToken ? [bearer] : []));
          assert.ok(res.status === 0 || res.status < 500, `GET ${target}: ${res.status}`);
        },
      ),
      { numRuns: 300 },
    );
    assert.deepEqual(errorsLogged(), []);
  });

  it("answers HEAD like GET without the body: /health without a token, other routes with one", async () => {
    const health = await raw(port, request("HEAD", "/health"));
    assert.equal(health.status, 200);
    assert.equal(health.body, "");
    assert.equal(health.headers["content-type"], "application/json; charset=utf-8");
    const anon = await raw(port, request("HEAD", "/things"));
    assert.equal(anon.status, 401);
    const authed = await raw(port, request("HEAD", "/things/a", [bearer]));
    assert.equal(authed.status, 200);
    assert.equal(authed.body, "");
  });

  it("405 names the allowed methods in Allow", async () => {
    const res = await raw(port, request("DELETE", "/health"));
    assert.equal(res.status, 405);
    assert.equal(res.headers.allow, "GET, HEAD");
    const things = await raw(port, request("POST", "/things/a", [bearer]));
    assert.equal(things.status, 405);
    assert.equal(things.headers.allow, "PUT, GET, HEAD");
    // A route that authenticates in its handler is not answered for HEAD by servicekit.
    const mine = await raw(port, request("HEAD", "/mine", [bearer]));
    assert.equal(mine.status, 405);
    assert.equal(mine.headers.allow, "GET");
  });

  it("426 for an upgrade route asked without the upgrade carries the protocol in Upgrade", async () => {
    const res = await raw(port, request("POST", "/things/a/attach", [bearer]));
    assert.equal(res.status, 426);
    assert.equal(res.headers.upgrade, "mcp-stdio");
    assert.equal(res.headers.connection?.toLowerCase().includes("upgrade"), true);
  });
});
