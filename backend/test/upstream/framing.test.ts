/* eslint-disable @typescript-eslint/no-unsafe-return -- tests read JSON loosely */
import assert from "node:assert/strict";
import fc from "fast-check";
import { LineDecoder, OVERFLOW_EDGE_BYTES } from "../../src/upstream/framing";
import type { Overflow } from "../../src/upstream/framing";
import { classify, findResponseId } from "../../src/upstream/jsonrpc";
import { SseParser } from "../../src/upstream/sse";

type Item = { line: string } | { over: { head: string; tail: string; bytes: number } };

function decode(chunks: Buffer[], cap: number): Item[] {
  const out: Item[] = [];
  const d = new LineDecoder(cap, {
    line: (l) => out.push({ line: l.toString("utf8") }),
    overflow: (o: Overflow) =>
      out.push({
        over: { head: o.head.toString("latin1"), tail: o.tail.toString("latin1"), bytes: o.bytes },
      }),
  });
  for (const c of chunks) d.push(c);
  d.end();
  return out;
}

/** Cuts a buffer at the given (sorted, deduplicated) offsets. */
function split(buf: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let at = 0;
  for (const p of points) {
    out.push(buf.subarray(at, p));
    at = p;
  }
  out.push(buf.subarray(at));
  return out;
}

const message = fc.record({
  jsonrpc: fc.constant("2.0"),
  id: fc.integer({ min: 1, max: 2 ** 30 }),
  result: fc.dictionary(fc.string({ unit: "binary", maxLength: 8 }), fc.jsonValue({ maxDepth: 2 })),
});

describe("upstream framing: newline-delimited JSON with a line cap", () => {
  it("any split of a valid byte stream yields the same messages", () => {
    fc.assert(
      fc.property(
        fc.array(message, { minLength: 1, maxLength: 20 }),
        fc.array(fc.nat(), { maxLength: 30 }),
        fc.boolean(),
        (messages, cuts, crlf) => {
          const wire = Buffer.from(
            messages.map((m) => JSON.stringify(m) + (crlf ? "\r\n" : "\n")).join(""),
          );
          const items = decode(split(wire, cuts), 1 << 20);
          assert.deepEqual(
            items.map((i) => ("line" in i ? JSON.parse(i.line) : i)),
            messages.map((m) => JSON.parse(JSON.stringify(m))),
          );
        },
      ),
      { numRuns: 300 },
    );
  });

  it("over-long lines give the same overflow (edges, length) however the stream is split", () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.string({ unit: "binary", maxLength: 40 }), fc.nat({ max: 3000 })), {
          minLength: 1,
          maxLength: 12,
        }),
        fc.array(fc.nat(), { maxLength: 40 }),
        (spec, cuts) => {
          // A string is a short line (no newline in it); a number is a line of that many bytes.
          const lines = spec.map((s, i) =>
            typeof s === "number" ? `{"n":${i},"x":"${"y".repeat(s)}"}` : s.replace(/[\r\n]/g, " "),
          );
          const wire = Buffer.from(lines.map((l) => `${l}\n`).join(""));
          const cap = 300;
          const whole = decode([wire], cap);
          assert.deepEqual(decode(split(wire, cuts), cap), whole);
          // And each item is what the line was: kept whole under the cap, edges over it.
          assert.equal(whole.length, lines.length);
          whole.forEach((item, i) => {
            const bytes = Buffer.byteLength(lines[i]);
            if (bytes <= cap) assert.deepEqual(item, { line: lines[i] });
            else {
              const b = Buffer.from(lines[i]);
              assert.deepEqual(item, {
                over: {
                  head: b.subarray(0, OVERFLOW_EDGE_BYTES).toString("latin1"),
                  tail: b.subarray(b.length - OVERFLOW_EDGE_BYTES).toString("latin1"),
                  bytes,
                },
              });
            }
          });
        },
      ),
      { numRuns: 200 },
    );
  });

  it("never holds more than the cap of an over-long line", () => {
    const held: number[] = [];
    const d = new LineDecoder(1000, { line: () => undefined, overflow: () => undefined });
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    for (let i = 0; i < 64; i++) {
      d.push(chunk);
      held.push((d as unknown as { parts: Buffer[] }).parts.reduce((n, b) => n + b.length, 0));
    }
    assert.ok(Math.max(...held) <= 1000, `held ${Math.max(...held)} bytes`);
  });
});

describe("upstream framing: the id of an over-long answer", () => {
  const big = "x".repeat(5000);
  const cases: Array<[string, number | undefined]> = [
    // The TypeScript SDK: id last.
    [`{"result":{"content":[{"type":"text","text":"${big}"}]},"jsonrpc":"2.0","id":5}`, 5],
    [`{"error":{"code":-1,"message":"${big}"},"jsonrpc":"2.0","id":77}`, 77],
    // Python and Go: id first.
    [`{"jsonrpc":"2.0","id":12,"result":{"t":"${big}","id":3}}`, 12],
    [`{"id":9,"jsonrpc":"2.0","error":{"code":1,"message":"${big}"}}`, 9],
    // A nested id at the end is not the message's.
    [`{"jsonrpc":"2.0","result":{"x":{"id":3}},"pad":"${big}"}`, undefined],
    // Requests and notifications are never taken for answers.
    [
      `{"method":"sampling/createMessage","params":{"t":"${big}"},"jsonrpc":"2.0","id":4}`,
      undefined,
    ],
    [`{"jsonrpc":"2.0","id":4,"method":"x","params":{"t":"${big}"}}`, undefined],
    [`{"method":"notifications/message","params":{"data":"${big}"},"jsonrpc":"2.0"}`, undefined],
  ];
  for (const [line, id] of cases) {
    it(`${line.slice(0, 40)}… → ${String(id)}`, () => {
      const items = decode([Buffer.from(`${line}\n`)], 1024);
      assert.equal(items.length, 1);
      const item = items[0];
      assert.ok("over" in item);
      assert.equal(findResponseId(item.over.head, item.over.tail), id);
    });
  }
});

describe("upstream message guards", () => {
  it("sorts requests, notifications and responses, and rejects the rest", () => {
    assert.equal(classify({ jsonrpc: "2.0", id: 1, method: "ping" }).kind, "request");
    assert.equal(classify({ jsonrpc: "2.0", method: "n" }).kind, "notification");
    assert.equal(classify({ jsonrpc: "2.0", id: 1, result: {} }).kind, "response");
    assert.equal(classify({ jsonrpc: "2.0", id: null, error: { code: 1 } }).kind, "response");
    for (const bad of [
      null,
      [],
      [{ jsonrpc: "2.0", id: 1, result: {} }],
      "x",
      { id: 1, result: {} },
      { jsonrpc: "1.0", id: 1, result: {} },
      { jsonrpc: "2.0", id: 1 },
      { jsonrpc: "2.0", id: 1, result: {}, error: {} },
      { jsonrpc: "2.0", id: {}, result: {} },
      { jsonrpc: "2.0", method: 3 },
      { jsonrpc: "2.0", method: "m", params: [1] },
      { jsonrpc: "2.0", method: "m", id: true },
    ]) {
      assert.equal(classify(bad).kind, "invalid", JSON.stringify(bad));
    }
  });
});

describe("upstream SSE parser", () => {
  function parse(chunks: Buffer[], cap: number): Array<string | { oversized: number | undefined }> {
    const out: Array<string | { oversized: number | undefined }> = [];
    const p = new SseParser(cap, {
      event: (d) => out.push(d),
      oversized: (id) => out.push({ oversized: id }),
    });
    for (const c of chunks) p.push(c);
    p.end();
    return out;
  }

  it("any split of a stream yields the same events", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.array(fc.string({ unit: "binary", maxLength: 30 }), { minLength: 1, maxLength: 3 }),
          {
            minLength: 1,
            maxLength: 10,
          },
        ),
        fc.array(fc.nat(), { maxLength: 30 }),
        fc.boolean(),
        (events, cuts, crlf) => {
          const nl = crlf ? "\r\n" : "\n";
          const clean = events.map((lines) => lines.map((l) => l.replace(/[\r\n]/g, "")));
          const wire = Buffer.from(
            ": comment" +
              nl +
              clean
                .map(
                  (lines) =>
                    `event: message${nl}id: 1${nl}${lines.map((l) => `data: ${l}${nl}`).join("")}${nl}`,
                )
                .join(""),
          );
          const got = parse(split(wire, cuts), 1 << 16);
          assert.deepEqual(
            got,
            clean.map((lines) => lines.join("\n")),
          );
        },
      ),
      { numRuns: 300 },
    );
  });

  it("drops an event over the cap, reporting the answer's id, and goes on", () => {
    const big = `{"result":{"t":"${"z".repeat(10_000)}"},"jsonrpc":"2.0","id":42}`;
    const wire = Buffer.from(
      `data: {"jsonrpc":"2.0","method":"notifications/progress"}\n\n` +
        `event: message\ndata: ${big}\n\n` +
        `data: {"a":1}\n\n` +
        `event: other\ndata: ignored\n\n` +
        `data: unfinished`,
    );
    const expected = [
      `{"jsonrpc":"2.0","method":"notifications/progress"}`,
      { oversized: 42 },
      `{"a":1}`,
    ];
    assert.deepEqual(parse([wire], 1000), expected);
    assert.deepEqual(parse(split(wire, [7, 100, 5000, 10_030]), 1000), expected);
  });

  it("counts an event over the cap across several data lines", () => {
    const lines = Array.from({ length: 20 }, () => `data: ${"q".repeat(100)}`).join("\n");
    assert.deepEqual(parse([Buffer.from(`${lines}\n\ndata: ok\n\n`)], 1000), [
      { oversized: undefined },
      "ok",
    ]);
  });
});
