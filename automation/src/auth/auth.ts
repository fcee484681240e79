import { createClient } from "@supabase/supabase-js";
import type { FastifyRequest } from "fastify";
import { secretEquals } from "../secrets/tokenCipher";

export type Principal = { kind: "service" } | { kind: "user"; userId: string };

/** Verifies a Supabase session token; returns the user id or undefined. */
export interface SessionVerifier {
  verify(token: string): Promise<string | undefined>;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Supabase sessions verified by supabase-js: asymmetric JWTs against the project's JWKS,
 * symmetric ones by asking the project's auth server.
 */
export function supabaseVerifier(url: string, anonKey: string): SessionVerifier {
  const client = createClient(url, anonKey, {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
  });
  return {
    async verify(token) {
      try {
        const { data, error } = await client.auth.getClaims(token);
        if (error || !data) return undefined;
        const { sub, role } = data.claims;
        return typeof sub === "string" && UUID.test(sub) && role === "authenticated"
          ? sub
          : undefined;
      } catch {
        return undefined;
      }
    },
  };
}

export function bearerToken(req: FastifyRequest): string | undefined {
  const header = req.headers.authorization;
  if (typeof header !== "string") return undefined;
  const match = /^Bearer ([^\s]{1,4096})$/i.exec(header.trim());
  return match?.[1];
}

/** A refusal, answered as `{error: code, message, field?}` with `headers` (e.g. Retry-After). */
export class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
    readonly field?: string,
    readonly headers?: Record<string, string>,
  ) {
    super(message);
  }
}

/** Service token first (constant time), then a Supabase session if configured; else 401. */
export async function authenticate(
  req: FastifyRequest,
  serviceToken: string,
  sessions: SessionVerifier | undefined,
): Promise<Principal> {
  const token = bearerToken(req);
  if (!token) throw new HttpError(401, "unauthorized", "a bearer token is required");
  if (secretEquals(token, serviceToken)) return { kind: "service" };
  const userId = sessions ? await sessions.verify(token) : undefined;
  if (!userId) throw new HttpError(401, "unauthorized", "the bearer token is not valid");
  return { kind: "user", userId };
}

/** A user may act only on their own account (in Agentopia an account is its user). */
export function authorizeAccount(principal: Principal, accountId: string): void {
  if (principal.kind === "user" && principal.userId.toLowerCase() !== accountId.toLowerCase()) {
    throw new HttpError(403, "forbidden", "this session may not act on that account");
  }
}

export function requireService(principal: Principal): void {
  if (principal.kind !== "service")
    throw new HttpError(403, "forbidden", "only the service token may do this");
}
