import { createHash, timingSafeEqual } from "node:crypto";

// Bearer tokens compared in constant time: both sides are hashed to 32 bytes first, so neither
// the comparison nor the length check leaks anything; every accepted token is always checked.

export type AuthResult = { ok: true } | { ok: false; reason: "missing" | "malformed" | "invalid" };

const digest = (s: string) => createHash("sha256").update(s, "utf8").digest();

export class TokenVerifier {
  private readonly digests: Buffer[];

  constructor(tokens: { current: string; previous?: string | undefined }) {
    this.digests = [tokens.current, tokens.previous].filter((t): t is string => !!t).map(digest);
  }

  check(header: string | undefined): AuthResult {
    if (!header) return { ok: false, reason: "missing" };
    const match = /^Bearer ([\x21-\x7e]+)$/.exec(header);
    if (!match) return { ok: false, reason: "malformed" };
    const presented = digest(match[1]);
    let ok = false;
    for (const d of this.digests) ok = timingSafeEqual(presented, d) || ok;
    return ok ? { ok: true } : { ok: false, reason: "invalid" };
  }
}
