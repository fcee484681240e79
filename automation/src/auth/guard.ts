import type { FastifyRequest, onRequestAsyncHookHandler } from "fastify";
import { checkTarget } from "../http/edge";
import { secretEquals } from "../secrets/tokenCipher";
import { bearerToken, HttpError, requireService, type Principal } from "./auth";
import type { FailureLimiter } from "./failures";
import type { SessionVerifier } from "./sessions";

/**
 * Who may call a route, declared in its `config.auth`:
 * - `none`: anyone (health only);
 * - `principal` (the default, also for unknown routes): the service token or a user's session;
 * - `service`: the service token only (403 for a session);
 * - `dtma`: a toolbox's current or previous DTMA token (the heartbeat).
 */
export type RouteAuth = "none" | "principal" | "service" | "dtma";

declare module "fastify" {
  interface FastifyContextConfig {
    auth?: RouteAuth;
  }
  interface FastifyRequest {
    /** Set by the guard on `principal` and `service` routes. */
    principal?: Principal;
    /** True once the guard accepted the caller's token (of any kind). */
    authenticated: boolean;
  }
}

export interface GuardDeps {
  serviceToken: string;
  sessions?: SessionVerifier;
  /** Whether this is a DTMA token some toolbox holds now (looked up by hash). */
  knownDtmaToken(token: string): Promise<boolean>;
  failures: FailureLimiter;
}

/**
 * The request's target, then its token, in an `onRequest` hook: before fastify reads or parses
 * a body (issue 13, item 12), so an anonymous caller's body is never parsed, validated or stored.
 * The service token (constant time) and a DTMA token (by hash) are checked first and always
 * pass; a session is verified only while the caller's address has failed fewer than the limit
 * this minute (item 10). Each failure counts; over the limit the answer is 429, not 401.
 */
export function guard(deps: GuardDeps): onRequestAsyncHookHandler {
  const refuse = (req: FastifyRequest, message: string): never => {
    deps.failures.fail(req.ip);
    throw new HttpError(401, "unauthorized", message);
  };
  const refuseIfFailing = (req: FastifyRequest): void => {
    const wait = deps.failures.blockedFor(req.ip);
    if (wait > 0) {
      throw new HttpError(
        429,
        "too_many_failures",
        `authorization: too many failed authentications from this address; retry in ${wait} s`,
        "authorization",
        { "retry-after": String(wait) },
      );
    }
  };

  return async (req: FastifyRequest) => {
    checkTarget(req);
    const mode = req.routeOptions.config?.auth ?? "principal";
    if (mode === "none") return;
    const token = bearerToken(req);
    if (mode !== "dtma" && token !== undefined && secretEquals(token, deps.serviceToken)) {
      req.principal = { kind: "service" };
      req.authenticated = true;
      return;
    }
    if (mode === "dtma" && token !== undefined && (await deps.knownDtmaToken(token))) {
      // One indexed look-up, like the service token's comparison: a toolbox's own token always
      // passes, so DTMAs behind one address are never locked out by a stale one among them.
      req.authenticated = true;
      return;
    }
    refuseIfFailing(req);
    if (!token) refuse(req, "a bearer token is required");
    if (mode === "dtma") refuse(req, "unknown DTMA token");
    const userId = deps.sessions ? await deps.sessions.verify(token!) : undefined;
    if (!userId) refuse(req, "the bearer token is not valid");
    req.principal = { kind: "user", userId: userId! };
    req.authenticated = true;
    if (mode === "service") requireService(req.principal);
  };
}
