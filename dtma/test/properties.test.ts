/* eslint-disable @typescript-eslint/no-unsafe-member-access -- tests read the JSON of Docker and of the API loosely */
import assert from "node:assert/strict";
import fc from "fast-check";
import type { Running } from "./helpers";
import { Readable } from "node:stream";
import { FrameFilter, STDERR, STDOUT } from "../src/docker/demux";
import { LogWindow } from "../src/tools/logs";
import { parseSpec, ValidationError } from "../src/tools/spec";
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
      isolation: fc.oneof(fc.constantFrom("per_token", "Shared", ""), fc.string(), fc.anything()),
      max_lanes: fc.oneof(
        fc.integer({ max: 0 }),
        fc.integer({ min: 9 }),
        fc.double({ noInteger: true }),
        fc.string(),
        fc.anything(),
      ),
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

describe("property: isolation and max_lanes", () => {
  const spec = { image: "acme/tool:1", transport: { type: "stdio" } };
  const caps = (lanes: number) => ({ memoryMb: 256, cpus: 1, pids: 256, lanes });

  it("any whole number from 1 to the cap (at most 32) is kept; the default is 4 within the cap", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 32 }),
        fc.integer({ min: 1, max: 32 }),
        fc.constantFrom("shared" as const, "per_session" as const, undefined),
        (cap, lanes, isolation) => {
          const body = { ...spec, ...(isolation ? { isolation } : {}) };
          const parsed = parseSpec(body, caps(cap));
          assert.equal(parsed.isolation, isolation ?? "shared");
          assert.equal(parsed.max_lanes, Math.min(4, cap));
          if (lanes <= cap)
            assert.equal(parseSpec({ ...body, max_lanes: lanes }, caps(cap)).max_lanes, lanes);
          else
            assert.throws(
              () => parseSpec({ ...body, max_lanes: lanes }, caps(cap)),
              (e: unknown) => e instanceof ValidationError && e.field === "max_lanes",
            );
        },
      ),
    );
  });

  it("anything else is a 400 naming max_lanes or isolation", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.record({ max_lanes: fc.oneof(fc.integer({ max: 0 }), fc.integer({ min: 33 })) }),
          fc.record({
            max_lanes: fc.oneof(
              fc.double({ noInteger: true }),
              fc.string(),
              fc.boolean(),
              fc.constant(null),
            ),
          }),
          fc.record({
            isolation: fc
              .anything()
              .filter((v) => v !== "shared" && v !== "per_session" && v !== undefined),
          }),
        ),
        (extra) => {
          assert.throws(
            () => parseSpec({ ...spec, ...extra }, caps(32)),
            (e: unknown) => e instanceof ValidationError && e.field === Object.keys(extra)[0],
          );
        },
      ),
    );
  });
});

/** Cuts a buffer at the given offsets (sorted, deduplicated). */
function cut(buf: Buffer, offsets: number[]): Buffer[] {
  const at = [...new Set(offsets.map((o) => o % (buf.length + 1)))].sort((a, b) => a - b);
  const parts: Buffer[] = [];
  let prev = 0;
  for (const o of [...at, buf.length]) {
    if (o > prev) parts.push(buf.subarray(prev, o));
    prev = Math.max(prev, o);
  }
  return parts;
}

async function collect(stream: Readable): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of stream) out.push(c as Buffer);
  return Buffer.concat(out);
}

describe("property: Docker's multiplexed stream, demultiplexed as it streams", () => {
  const frames = fc.array(
    fc.record({
      type: fc.constantFrom(0, STDOUT, STDERR),
      payload: fc.uint8Array({ maxLength: 300 }),
    }),
    { maxLength: 20 },
  );

  it("whatever the chunk boundaries, one stream's payload comes through whole and in order", async () => {
    await fc.assert(
      fc.asyncProperty(
        frames,
        fc.array(fc.nat(), { maxLength: 30 }),
        fc.constantFrom(STDOUT, STDERR),
        async (fs, offsets, keep) => {
          const wire = Buffer.concat(
            fs.flatMap(({ type, payload }) => {
              const header = Buffer.alloc(8);
              header[0] = type;
              header.writeUInt32BE(payload.length, 4);
              return [header, Buffer.from(payload)];
            }),
          );
          const out = await collect(Readable.from(cut(wire, offsets)).pipe(new FrameFilter(keep)));
          const expected = Buffer.concat(
            fs.filter((f) => f.type === keep).map((f) => Buffer.from(f.payload)),
          );
          assert.deepEqual(out, expected);
        },
      ),
    );
  });

  const frame = (type: number, payload: Buffer) => {
    const header = Buffer.alloc(8);
    header[0] = type;
    header.writeUInt32BE(payload.length, 4);
    return Buffer.concat([header, payload]);
  };

  it("the log window keeps the newest lines within tail, bytes and line length, however it is chunked", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            type: fc.constantFrom(STDOUT, STDERR),
            text: fc.string({ unit: "grapheme", maxLength: 60 }).map((l) => l.replaceAll("\n", "")),
          }),
          { maxLength: 40 },
        ),
        fc.array(fc.nat(), { maxLength: 20 }),
        fc.integer({ min: 1, max: 50 }),
        fc.integer({ min: 8, max: 80 }),
        fc.integer({ min: 64, max: 4096 }),
        fc.boolean(),
        (lines, offsets, tail, maxLineBytes, maxBytes, stderrOnly) => {
          const wire = Buffer.concat(lines.map((l) => frame(l.type, Buffer.from(`${l.text}\n`))));
          const window = new LogWindow(
            tail,
            { maxBytes, maxLineBytes },
            stderrOnly ? STDERR : undefined,
          );
          for (const piece of cut(wire, offsets)) window.write(piece);
          window.end();
          const got = window
            .serialized()
            .map((j) => JSON.parse(j) as { stream: string; text: string });
          // What a reader of the whole log would keep: each line cut on a character boundary.
          const expected = lines
            .filter((l) => !stderrOnly || l.type === STDERR)
            .map((l) => {
              let b = Buffer.from(l.text);
              if (b.length > maxLineBytes) {
                let end = maxLineBytes;
                while (end > 0 && (b[end] & 0xc0) === 0x80) end--;
                b = b.subarray(0, end);
              }
              return { stream: l.type === STDERR ? "stderr" : "stdout", text: b.toString("utf8") };
            });
          // The newest lines, as many as fit: a suffix of what was written.
          assert.deepEqual(got, expected.slice(expected.length - got.length));
          assert.ok(got.length <= tail);
          const bytes = window.serialized().reduce((n, j) => n + Buffer.byteLength(j) + 1, 0);
          assert.ok(bytes <= maxBytes, `${bytes} > ${maxBytes}`);
          // Nothing left out but for tail or the byte limit.
          const next = expected[expected.length - got.length - 1];
          if (next && got.length < tail) {
            const more = Buffer.byteLength(JSON.stringify(next)) + 1;
            assert.ok(bytes + more > maxBytes, "a line that fit was dropped");
          }
        },
      ),
    );
  });
});
