import assert from "node:assert/strict";
import fc from "fast-check";
import { isUuid, uuid } from "../src/ids";

/** The pattern the routes, the sessions and the heartbeat each wrote before zod's guid served. */
const HAND_WRITTEN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

describe("ids (pure): one UUID rule", () => {
  it("property: accepts what the hand-written pattern accepted, and nothing else", () => {
    const hex = (n: number) =>
      fc.string({
        unit: fc.constantFrom(..."0123456789abcdefABCDEFgG-"),
        minLength: n,
        maxLength: n,
      });
    const shaped = fc
      .tuple(hex(8), hex(4), hex(4), hex(4), hex(12))
      .map((parts) => parts.join("-"));
    fc.assert(
      fc.property(fc.oneof(shaped, fc.uuid(), fc.string()), (s) => {
        assert.equal(isUuid(s), HAND_WRITTEN.test(s), s);
      }),
      { numRuns: 2000 },
    );
  });

  it("property: an id in any casing enters in lowercase", () => {
    fc.assert(
      fc.property(fc.uuid(), fc.array(fc.boolean(), { minLength: 36, maxLength: 36 }), (id, up) => {
        const mixed = [...id].map((c, i) => (up[i] ? c.toUpperCase() : c)).join("");
        assert.equal(uuid.parse(mixed), id.toLowerCase());
      }),
    );
  });

  it("names the field's problem as before", () => {
    assert.equal(uuid.safeParse("not-a-uuid").error?.issues[0].message, "must be a UUID");
  });
});
