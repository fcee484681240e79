import { createHash } from "node:crypto";
import { createClient } from "@supabase/supabase-js";
import {
  createRemoteJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  errors,
  jwtVerify,
  type JWTPayload,
  type JWTVerifyOptions,
} from "jose";
import { LRUCache } from "lru-cache";
import { isUuid } from "../ids";

// Supabase sessions, verified where the service stands whenever the key allows (issue 13, item
// 10; decision 0029). supabase-js's getClaims asked Supabase Auth about every token whose key it
// could not find: a junk token, an HS256 one, one naming an unknown kid (which also skipped the
// JWKS cache). Now:
// - asymmetric tokens (ES256, RS256: the project's signing keys) are verified with jose against
//   the project's JWKS, cached for 10 minutes and refetched for an unknown kid at most every 30 s;
// - symmetric tokens (HS256, the legacy JWT secret) with the secret when it is configured,
//   otherwise by Supabase Auth (`auth.getUser`), and only when their claims could be a session;
// - every answer is cached by the token's hash (bounded LRU): refusals for a minute, acceptances
//   until expiry (at most a minute), and concurrent questions about one token share one answer.

/** Verifies a Supabase session token; returns the user id (lowercase) or undefined. */
export interface SessionVerifier {
  verify(token: string): Promise<string | undefined>;
}

export interface SupabaseVerifierOptions {
  /** The project's legacy JWT secret: HS256 sessions are then verified locally too. */
  jwtSecret?: string;
  /** How long an answer is remembered (ms); default 60 s. */
  cacheMs?: number;
  /** Tokens remembered at most; default 10,000. */
  cacheSize?: number;
}

const ASYMMETRIC = ["ES256", "RS256"];
/** What a user's session must say: Supabase sets both on every signed-in user's access token. */
const SESSION_CLAIMS: JWTVerifyOptions = {
  audience: "authenticated",
  requiredClaims: ["sub", "exp"],
};

/** The user a session's claims name, or undefined when they are not a signed-in user's. */
function userOf(claims: JWTPayload & { role?: unknown }): string | undefined {
  const { sub, role } = claims;
  return typeof sub === "string" && isUuid(sub) && role === "authenticated"
    ? sub.toLowerCase()
    : undefined;
}

/** Claims that could be a live session (checked before anything costs a network call). */
function plausible(claims: JWTPayload & { role?: unknown }): boolean {
  const aud = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
  return (
    userOf(claims) !== undefined &&
    typeof claims.exp === "number" &&
    claims.exp > Date.now() / 1000 &&
    aud.includes("authenticated")
  );
}

interface Answer {
  userId: string | undefined;
  /** The token's expiry (s): an acceptance is remembered no longer. */
  expiresAt?: number;
  /** The key or Auth could not be reached, or the kid is not (yet) known: not remembered. */
  undecided?: boolean;
}

/** A refusal that says nothing about the token: the JWKS or Auth did not answer, or no key yet. */
function undecided(err: unknown): boolean {
  return (
    !(err instanceof errors.JOSEError) ||
    err instanceof errors.JWKSNoMatchingKey ||
    err instanceof errors.JWKSTimeout ||
    err instanceof errors.JWKSInvalid
  );
}

export function supabaseVerifier(
  url: string,
  anonKey: string,
  opts: SupabaseVerifierOptions = {},
): SessionVerifier {
  const base = url.replace(/\/+$/, "");
  const jwks = createRemoteJWKSet(new URL(`${base}/auth/v1/.well-known/jwks.json`), {
    headers: { apikey: anonKey },
    cacheMaxAge: 10 * 60_000,
    cooldownDuration: 30_000,
    timeoutDuration: 5_000,
  });
  const secret = opts.jwtSecret ? new TextEncoder().encode(opts.jwtSecret) : undefined;
  const client = createClient(base, anonKey, {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
  });
  const ttl = opts.cacheMs ?? 60_000;
  const answers = new LRUCache<string, Answer>({ max: opts.cacheSize ?? 10_000, ttl });
  const pending = new Map<string, Promise<Answer>>();

  async function check(token: string): Promise<Answer> {
    let alg: unknown;
    let claims: JWTPayload;
    try {
      alg = decodeProtectedHeader(token).alg;
      claims = decodeJwt(token);
    } catch {
      return { userId: undefined };
    }
    if (typeof alg === "string" && ASYMMETRIC.includes(alg)) {
      const { payload } = await jwtVerify(token, jwks, {
        ...SESSION_CLAIMS,
        algorithms: ASYMMETRIC,
      });
      return { userId: userOf(payload), expiresAt: payload.exp };
    }
    if (alg !== "HS256") return { userId: undefined };
    if (secret) {
      const { payload } = await jwtVerify(token, secret, {
        ...SESSION_CLAIMS,
        algorithms: ["HS256"],
      });
      return { userId: userOf(payload), expiresAt: payload.exp };
    }
    // Only the project's auth server knows the secret: ask it, for claims that could be a session.
    if (!plausible(claims)) return { userId: undefined };
    const { data, error } = await client.auth.getUser(token);
    if (error) {
      const status = (error as { status?: number }).status ?? 0;
      return { userId: undefined, undecided: status < 400 || status >= 500 };
    }
    const same = data.user?.id.toLowerCase() === claims.sub?.toLowerCase();
    return { userId: same ? userOf(claims) : undefined, expiresAt: claims.exp };
  }

  /** Remembers a refusal for the cache's time, an acceptance until the token expires at most. */
  function remember(key: string, a: Answer): void {
    if (a.undecided) return;
    const left = a.userId === undefined ? ttl : (a.expiresAt ?? 0) * 1000 - Date.now();
    if (left > 0) answers.set(key, { userId: a.userId }, { ttl: Math.min(ttl, left) });
  }

  return {
    async verify(token) {
      const key = createHash("sha256").update(token).digest("base64url");
      const known = answers.get(key);
      if (known) return known.userId;
      let answer = pending.get(key);
      if (!answer) {
        answer = check(token)
          .catch((err: unknown): Answer => ({ userId: undefined, undecided: undecided(err) }))
          .then((a) => {
            remember(key, a);
            return a;
          })
          .finally(() => pending.delete(key));
        pending.set(key, answer);
      }
      return (await answer).userId;
    },
  };
}
