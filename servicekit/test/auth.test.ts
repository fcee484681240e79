import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { TokenVerifier } from "../src/http/auth";

describe("bearer tokens", () => {
  const current = randomBytes(32).toString("base64url");
  const previous = randomBytes(32).toString("base64url");
  const verifier = new TokenVerifier({ current, previous });

  it("accepts the current and the previous token, with the scheme in any case (RFC 9110)", () => {
    for (const scheme of ["Bearer", "bearer", "BEARER", "bEaReR"]) {
      assert.deepEqual(verifier.check(`${scheme} ${current}`), { ok: true }, scheme);
      assert.deepEqual(verifier.check(`${scheme} ${previous}`), { ok: true }, scheme);
    }
  });

  it("names why a header is refused", () => {
    assert.deepEqual(verifier.check(undefined), { ok: false, reason: "missing" });
    assert.deepEqual(verifier.check(""), { ok: false, reason: "missing" });
    assert.deepEqual(verifier.check(`Basic ${current}`), { ok: false, reason: "malformed" });
    assert.deepEqual(verifier.check(`Bearer  ${current} x`), { ok: false, reason: "malformed" });
    assert.deepEqual(verifier.check(`Bearer ${current}x`), { ok: false, reason: "invalid" });
  });
});
