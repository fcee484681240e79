import { hash, timingSafeEqual } from "node:crypto";

// Bearer tokens compared in constant time: both sides are hashed to 32 bytes first, so neither
// the comparison nor the length check leaks anything; every accepted token is always checked.
// The accepted digests are computed once; a request costs one regular-expression test, one
// one-shot sha256 and the comparisons, and the answers are shared constants.

export type AuthResult = { ok: true } | { ok: false; reason: "missing" | "malformed" | "invalid" };

const OK: AuthResult = Object.freeze({ ok: true });
const MISSING: AuthResult = Object.freeze({ ok: false, reason: "missing" });
const MALFORMED: AuthResult = Object.freeze({ ok: false, reason: "malformed" });
const INVALID: AuthResult = Object.freeze({ ok: false, reason: "invalid" });

// The scheme is case-insensitive (RFC 9110 §11.1); one space, then the token.
const BEARER = /^bearer [\x21-\x7e]+$/i;
const PREFIX = "Bearer ".length;

const digest = (s: string): Buffer => hash("sha256", s, "buffer");

export class TokenVerifier {
  private readonly digests: Buffer[];

  constructor(tokens: { current: string; previous?: string | undefined }) {
    this.digests = [tokens.current, tokens.previous].filter((t): t is string => !!t).map(digest);
  }

  check(header: string | undefined): AuthResult {
    if (!header) return MISSING;
    if (!BEARER.test(header)) return MALFORMED;
    const presented = digest(header.slice(PREFIX));
    let ok = false;
    for (const d of this.digests) ok = timingSafeEqual(presented, d) || ok;
    return ok ? OK : INVALID;
  }
}
