import type { FastifyRequest } from "fastify";
import { secretEquals } from "../secrets/tokenCipher";
import type { SessionVerifier } from "./sessions";

export { supabaseVerifier, type SessionVerifier } from "./sessions";

export type Principal = { kind: "service" } | { kind: "user"; userId: string };

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
