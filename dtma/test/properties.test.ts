/* eslint-disable @typescript-eslint/no-unsafe-member-access -- tests read the JSON of Docker and of the API loosely */
import assert from "node:assert/strict";
import fc from "fast-check";
import type { Running } from "./helpers";
import { BUSYBOX, api, cleanup, requireImages, startDtma } from "./helpers";

// Malformed names and bodies, generated: the answer is always a 4xx with an error code (and a
// field for bad input), never a 5xx, and the server keeps serving.

const notSpec = fc.oneof(
  fc.anything(),
  fc.record(
    {
      image: fc.oneof(fc.string(), fc.constantFrom("--privileged", "-v", "UPPER/Case", "a b", "")),
      command: fc.oneof(fc.array(fc.string()), fc.string(), fc.integer()),
      env: fc.oneof(fc.dictionary(fc.string(), fc.anything()), fc.string()),
      transport: fc.oneof(
        fc.record({ type: fc.string(), port: fc.oneof(fc.integer(), fc.string()) }),
        fc.anything(),
      ),
      resources: fc.record({ memory_mb: fc.double(), cpus: fc.anything(), pids: fc.integer() }),
      network: fc.oneof(fc.constantFrom("host", "bridge", "container:x"), fc.string()),
      privileged: fc.boolean(),
    },
    { requiredKeys: [] },
  ),
);

describe("property: malformed input never yields a 5xx", function () {
  this.timeout(120_000);
  let dtma: Running;
  let call: ReturnType<typeof api>;
  before(async function () {
    await requireImages(this, BUSYBOX);
    dtma = await startDtma();
    call = api(dtma.url);
  });
  after(async () => {
    await dtma?.stop();
    await cleanup();
  });

  it("PUT /tools/:name with malformed bodies answers 4xx naming a field", async () => {
    await fc.assert(
      fc.asyncProperty(notSpec, async (body) => {
        const res = await call("PUT", "/tools/prop", JSON.stringify(body ?? null));
        assert.ok(res.status >= 400 && res.status < 500, `${res.status} ${res.text}`);
        assert.equal(typeof res.json.error, "string");
        assert.equal(typeof res.json.field, "string");
      }),
      { numRuns: 150 },
    );
  });

  it("any name on every tool route answers 4xx or a tool, never a 5xx", async () => {
    const routes: [string, string][] = [
      ["GET", ""],
      ["DELETE", ""],
      ["POST", "/start"],
      ["POST", "/stop"],
      ["POST", "/restart"],
      ["GET", "/logs"],
      ["GET", "/wait?timeout=0"],
      ["PUT", ""],
    ];
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.string(),
          fc.string({ unit: "grapheme" }),
          fc.stringMatching(/^[A-Z _.%-]{1,70}$/),
        ),
        fc.constantFrom(...routes),
        async (name, [method, suffix]) => {
          const res = await call(
            method,
            `/tools/${encodeURIComponent(name)}${suffix}`,
            method === "PUT" ? {} : undefined,
          );
          assert.ok(
            res.status < 500,
            `${method} ${JSON.stringify(name)}${suffix}: ${res.status} ${res.text}`,
          );
        },
      ),
      { numRuns: 200 },
    );
    // Raw, badly encoded paths too.
    for (const raw of ["/tools/%", "/tools/%E0%A4%A", "/tools/a/b/c", "/tools//start"]) {
      const res = await call("GET", raw);
      assert.ok(res.status >= 400 && res.status < 500, `${raw}: ${res.status}`);
    }
    assert.equal((await call("GET", "/health")).status, 200);
    assert.deepEqual(await dtma.client.listTools(), []);
  });

  it("malformed query parameters answer 400 naming them", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.string(),
        fc.constantFrom("tail", "since", "timeout", "state"),
        async (value, key) => {
          const path = key === "timeout" || key === "state" ? "wait" : "logs";
          const res = await call(
            "GET",
            `/tools/absent/${path}?${key}=${encodeURIComponent(value)}`,
          );
          assert.ok(
            [400, 404].includes(res.status),
            `${key}=${JSON.stringify(value)}: ${res.status} ${res.text}`,
          );
        },
      ),
      { numRuns: 100 },
    );
  });
});
