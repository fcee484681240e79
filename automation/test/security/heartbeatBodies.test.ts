/* eslint-disable @typescript-eslint/no-unsafe-member-access -- JSON responses are checked by assertions */
import assert from "node:assert/strict";
import fc from "fast-check";
import { loggedService, provisioned, troubling, type LoggedService } from "./kit";

// Issue 13, item 5 (the automation half): a heartbeat body with \u0000, a lone surrogate or
// 20,000 levels of nesting gave 500 with any token: validation ran after parsing and the body
// reached jsonb unchecked. Now the token is checked before the body is read, and a body jsonb
// cannot hold is a 400 naming the field before anything is written.

const deep = (levels: number) => "[".repeat(levels) + "]".repeat(levels);

/** Bodies Postgres's jsonb refuses (or chokes on), and the field the 400 must name. */
const hostile: [string, string, string][] = [
  ["\\u0000 in a value", '{"dtma_version":"1.0\\u0000"}', "dtma_version"],
  ["\\u0000 in a key", '{"system_status":{"a\\u0000b":1}}', "system_status"],
  [
    "\\u0000 in a tool status",
    '{"tool_statuses":[{"account_tool_instance_id":"x","name":"\\u0000"}]}',
    "tool_statuses.0.name",
  ],
  ["a lone high surrogate", '{"dtma_version":"\\ud800"}', "dtma_version"],
  ["a lone low surrogate in a key", '{"system_status":{"\\udc00":true}}', "system_status"],
  ["20,000 levels of nesting", `{"system_status":{"load":${deep(20_000)}}}`, "body"],
  ["20,000 levels of nesting, bare", deep(20_000), "body"],
];

describe("security (issue 13, item 5): heartbeat bodies jsonb cannot hold are a 4xx, never a 500", function () {
  this.timeout(120_000);
  let svc: LoggedService;
  let toolbox: { account: string; dtmaToken: string };
  before(async () => {
    svc = await loggedService();
    toolbox = await provisioned(svc);
  });
  after(() => svc.stop());

  const beat = (payload: string, token?: string) =>
    svc.app.inject({
      method: "POST",
      url: "/v1/heartbeat",
      headers: {
        "content-type": "application/json",
        ...(token ? { authorization: `Bearer ${token}` } : {}),
      },
      payload,
    });
  const details = async () =>
    (
      await svc.pool.query<{ d: unknown }>(
        "select dtma_health_details_json as d from account_tool_environments where account_id = $1",
        [toolbox.account],
      )
    ).rows[0].d;

  for (const [what, payload, field] of hostile) {
    it(`${what}: 401 without a valid token, 400 naming ${field} with one; nothing written`, async () => {
      const before = await details();
      for (const token of [undefined, "not-a-dtma-token"]) {
        const res = await beat(payload, token);
        assert.equal(res.statusCode, 401, `${token ?? "no token"}: ${res.body}`);
      }
      const res = await beat(payload, toolbox.dtmaToken);
      assert.equal(res.statusCode, 400, res.body);
      assert.equal(res.json().field, field, res.body);
      assert.equal(typeof res.json().message, "string");
      assert.deepEqual(await details(), before, "nothing was written");
      assert.deepEqual(troubling(svc.lines), []);
    });
  }

  it("property: any body, with any token, is a 204 or a 4xx, and no anonymous one logs a stack trace", async () => {
    const hostileString = fc.string({ unit: "binary", maxLength: 12 });
    const value = fc.letrec((tie) => ({
      v: fc.oneof(
        { depthSize: "small" },
        fc.jsonValue(),
        hostileString,
        fc.array(tie("v"), { maxLength: 3 }),
        fc.dictionary(hostileString, tie("v"), { maxKeys: 3 }),
      ),
    })).v;
    const body = fc.oneof(
      fc
        .record(
          {
            dtma_version: fc.oneof(hostileString, fc.jsonValue()),
            system_status: value,
            tool_statuses: fc.array(
              fc.record(
                {
                  account_tool_instance_id: fc.oneof(fc.uuid(), hostileString),
                  name: hostileString,
                  status: fc.oneof(fc.constantFrom("running", "stopped"), hostileString),
                  state: fc.oneof(fc.constantFrom("running", "exited"), hostileString),
                  extra: value,
                },
                { requiredKeys: [] },
              ),
              { maxLength: 3 },
            ),
          },
          { requiredKeys: [] },
        )
        .map((b) => JSON.stringify(b)),
      value.map((v) => JSON.stringify(v) ?? "null"),
      fc.integer({ min: 1, max: 30_000 }).map(deep),
      fc.string({ unit: "binary", maxLength: 60 }),
    );
    const token = fc.constantFrom(undefined, "junk", toolbox.dtmaToken);
    await fc.assert(
      fc.asyncProperty(body, token, async (payload, t) => {
        const res = await beat(payload, t);
        assert.ok(
          res.statusCode === 204 || (res.statusCode >= 400 && res.statusCode < 500),
          `${t === toolbox.dtmaToken ? "DTMA token" : String(t)}: ${payload.slice(0, 200)} → ${res.statusCode} ${res.body}`,
        );
        if (res.statusCode !== 204) {
          assert.equal(typeof res.json().error, "string");
          assert.equal(typeof res.json().message, "string");
        }
        if (t !== toolbox.dtmaToken) assert.notEqual(res.statusCode, 204);
      }),
      { numRuns: 300 },
    );
    assert.deepEqual(troubling(svc.lines), []);
  });
});
