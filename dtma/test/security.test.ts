import assert from "node:assert/strict";
import { Writable } from "node:stream";
import fc from "fast-check";
import { rawHttp, rawRequest } from "../../servicekit/test/rawHttp";
import { createLogger } from "../src/log";
import type { Running } from "./helpers";
import { startDtma, TOKEN } from "./helpers";

// Issue 13, replayed against the DTMA: each case as the attacker or the misbehaving tool sent
// it, with the answer it must get now.

/** A DTMA whose log lines the test reads. */
async function loggedDtma(
  overrides: Parameters<typeof startDtma>[0] = {},
): Promise<{ dtma: Running; lines: { level: number; msg: string }[] }> {
  const lines: { level: number; msg: string }[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString("utf8").split("\n"))
        if (l) lines.push(JSON.parse(l) as (typeof lines)[number]);
      done();
    },
  });
  const dtma = await startDtma(
    { logLevel: "info", ...overrides },
    { log: createLogger("info", destination) },
  );
  return { dtma, lines };
}

const bearer = (scheme = "Bearer") => `Authorization: ${scheme} ${TOKEN}`;

describe("security: issue 13 replayed against the DTMA", function () {
  this.timeout(120_000);

  describe("the HTTP surface (items 5 and 12)", () => {
    let dtma: Running;
    let lines: { level: number; msg: string }[];
    let port: number;

    before(async () => {
      ({ dtma, lines } = await loggedDtma());
      port = Number(new URL(dtma.url).port);
    });
    after(() => dtma?.stop());

    it("raw request targets like `GET //` or `GET http://x:99999/tools` get a 4xx before auth, and no error is logged", async () => {
      for (const target of ["//", "http://x:99999/tools", "//x/tools", "http://", "*", "tools"]) {
        for (const auth of [[], [bearer()]]) {
          const res = await rawHttp(port, rawRequest("GET", target, auth));
          assert.ok(res.status >= 400 && res.status < 500, `GET ${target}: ${res.status}`);
        }
      }
      assert.deepEqual(
        lines.filter((l) => l.level >= 50),
        [],
      );
    });

    it("no anonymous request target gives a 5xx or logs an error (fast-check)", async () => {
      const unit = fc.constantFrom(..."/:?#%@[]!$&'()*+,;=.-_~atoolsX019".split(""));
      await fc.assert(
        fc.asyncProperty(
          fc.oneof(
            fc.string({ unit, maxLength: 40 }),
            fc.string({ unit, maxLength: 30 }).map((s) => `http://${s}`),
            fc.string({ unit, maxLength: 30 }).map((s) => `/tools/${s}`),
          ),
          async (target) => {
            const res = await rawHttp(port, rawRequest("GET", target));
            assert.ok(res.status === 0 || res.status < 500, `GET ${target}: ${res.status}`);
          },
        ),
        { numRuns: 200 },
      );
      assert.deepEqual(
        lines.filter((l) => l.level >= 50),
        [],
      );
    });

    it("HEAD /health is answered like GET, without a token and without a body", async () => {
      const res = await rawHttp(port, rawRequest("HEAD", "/health"));
      assert.equal(res.status, 200);
      assert.equal(res.body, "");
      assert.equal(res.headers["content-length"], String('{"status":"ok"}'.length));
      // Every other route still wants the token for HEAD too.
      assert.equal((await rawHttp(port, rawRequest("HEAD", "/tools"))).status, 401);
    });

    it("405 names the allowed methods in Allow", async () => {
      const health = await rawHttp(port, rawRequest("POST", "/health"));
      assert.equal(health.status, 405);
      assert.equal(health.headers.allow, "GET, HEAD");
      const tool = await rawHttp(port, rawRequest("POST", "/tools/x", [bearer()]));
      assert.equal(tool.status, 405);
      assert.equal(tool.headers.allow, "PUT, GET, HEAD, DELETE");
    });

    it("426 carries `Upgrade: mcp-stdio`, with no upgrade or with another protocol", async () => {
      for (const extra of [[], ["Connection: Upgrade", "Upgrade: websocket"]]) {
        const res = await rawHttp(
          port,
          rawRequest("POST", "/tools/x/attach", [bearer(), "Content-Length: 0", ...extra]),
        );
        assert.equal(res.status, 426, extra.join(" "));
        assert.equal(res.headers.upgrade, "mcp-stdio");
      }
    });

    it("bearer schemes are case-insensitive (RFC 9110)", async () => {
      for (const scheme of ["Bearer", "bearer", "BEARER", "bEaReR"]) {
        const res = await rawHttp(port, rawRequest("GET", "/metrics", [bearer(scheme)]));
        assert.equal(res.status, 200, scheme);
      }
    });
  });
});
