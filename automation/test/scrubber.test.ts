import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import fc from "fast-check";
import {
  MIN_SECRET,
  REDACTED,
  SecretScrubber,
  tooShort,
  urlPassword,
} from "../src/secrets/scrubber";

const KEY = [
  "-----BEGIN OPENSSH PRIVATE KEY-----",
  "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW",
  "QyNTUxOQAAACDk2VYLeWBGnxqEDTjpr1E1A0VQ8TX0y9kOC3x1hYqgJgAAAJi0sJrjtLCa",
  "4wAAAAtzc2gtZWQyNTUxOQAAACDk2VYLeWBGnxqEDTjpr1E1A0VQ8TX0y9kOC3x1hYqgJg",
  "-----END OPENSSH PRIVATE KEY-----",
  "",
].join("\n");

describe("secret scrubber", () => {
  it("property: a secret embedded anywhere in any text is gone", () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: MIN_SECRET, maxLength: 40 }),
        fc.string(),
        fc.string(),
        (secret, before, after) => {
          const out = SecretScrubber.of([secret]).text(`${before}${secret}${after}`);
          // What is left between the redactions never holds the secret (the marker itself may
          // happen to contain it: "t]" is part of "[secret]").
          assert.ok(out.includes(REDACTED));
          for (const piece of out.split(REDACTED)) assert.equal(piece.includes(secret), false);
        },
      ),
    );
  });

  it("property: text that holds no secret passes unchanged", () => {
    fc.assert(
      fc.property(fc.string(), (text) => {
        const secret = `s3cr3t-${randomBytes(12).toString("hex")}`;
        assert.equal(SecretScrubber.of([secret]).text(text), text);
      }),
    );
  });

  it("a private key whole, line by line, cut short or JSON-escaped", () => {
    const s = SecretScrubber.of([KEY]);
    const lines = KEY.trim().split("\n");
    for (const text of [
      `--secret k=${KEY} --non-interactive`,
      `first lines: ${lines.slice(0, 3).join("\n")}`,
      JSON.stringify({ message: KEY }),
      `re-wrapped: ${lines.join("\r\n")}`,
    ]) {
      const out = s.text(text);
      for (const line of lines) assert.equal(out.includes(line), false, `${line} in ${out}`);
    }
  });

  it("a binary key in hex (either case), base64 with or without padding, and base64url", () => {
    const key = randomBytes(32);
    const s = SecretScrubber.of([key]);
    for (const form of [
      key.toString("hex"),
      key.toString("hex").toUpperCase(),
      key.toString("base64"),
      key.toString("base64").replace(/=+$/, ""),
      key.toString("base64url"),
    ]) {
      assert.equal(s.text(`key=${form};`), `key=${REDACTED};`);
    }
  });

  it("adds a toolbox's tokens for one attempt without changing the service's scrubber", () => {
    const base = SecretScrubber.of(["service-token-0123456789"]);
    const attempt = base.with(["toolbox-token-abcdefghij", undefined, ""]);
    const text = "service-token-0123456789 toolbox-token-abcdefghij";
    assert.equal(attempt.text(text), `${REDACTED} ${REDACTED}`);
    assert.equal(base.text(text), `${REDACTED} toolbox-token-abcdefghij`);
  });

  it("overlapping secrets: the longer goes whole", () => {
    const s = SecretScrubber.of(["abcdefgh", "abcdefghijklmnop"]);
    assert.equal(s.text("xabcdefghijklmnopx"), `x${REDACTED}x`);
  });

  it("scrubs every string of event data and keeps its shape", () => {
    const s = SecretScrubber.of(["tok-0123456789"]);
    assert.deepEqual(s.value({ a: ["x tok-0123456789", 3, null], b: { c: "tok-0123456789" } }), {
      a: [`x ${REDACTED}`, 3, null],
      b: { c: REDACTED },
    });
  });

  it("leaves a secret too short to hide alone (its gaps would give it away) and says so", () => {
    const s = SecretScrubber.of(["x", "ab12"]);
    assert.equal(s.text("tbx-1 ab12"), "tbx-1 ab12");
    assert.equal(tooShort("x"), true);
    assert.equal(tooShort("x".repeat(MIN_SECRET)), false);
    assert.equal(tooShort(undefined), false);
  });

  it("reads the password of a connection URL, decoded", () => {
    assert.equal(urlPassword("postgres://u:p%40ss%2Fw@h:5432/db"), "p@ss/w");
    assert.equal(urlPassword("postgres://u@h/db"), undefined);
    assert.equal(urlPassword("file:///data/state"), undefined);
    assert.equal(urlPassword("not a url"), undefined);
    assert.equal(urlPassword(undefined), undefined);
  });
});
