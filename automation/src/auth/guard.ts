import type { FastifyRequest, onRequestAsyncHookHandler } from "fastify";
import { checkTarget } from "../http/edge";
import {
  authenticate,
  bearerToken,
  HttpError,
  requireService,
  type Principal,
  type SessionVerifier,
} from "./auth";

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
}

/**
 * The request's target, then its token, in an `onRequest` hook: before fastify reads or parses
 * a body (issue 13, item 12), so an anonymous caller's body is never parsed, validated or stored.
 */
export function guard(deps: GuardDeps): onRequestAsyncHookHandler {
  return async (req: FastifyRequest) => {
    checkTarget(req);
    const mode = req.routeOptions.config?.auth ?? "principal";
    if (mode === "none") return;
    if (mode === "dtma") {
      const token = bearerToken(req);
      if (!token) throw new HttpError(401, "unauthorized", "a bearer token is required");
      if (!(await deps.knownDtmaToken(token))) {
        throw new HttpError(401, "unauthorized", "unknown DTMA token");
      }
      req.authenticated = true;
      return;
    }
    req.principal = await authenticate(req, deps.serviceToken, deps.sessions);
    req.authenticated = true;
    if (mode === "service") requireService(req.principal);
  };
}
