import type { IncomingMessage } from "node:http";
import { TokenVerifier } from "@agentopia-toolboxes/servicekit/http";
import type { AgentTokens } from "./agentTokens";
import type { AuthFailure, Principal } from "./principal";

const GATEWAY: Principal = Object.freeze({ kind: "gateway", id: "gateway", servers: "*" });
const BEARER = /^bearer +([\x21-\x7e]+)$/i;
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
/** Verified per-agent tokens kept so a session's every request does not pay an HMAC check. */
const CACHE_SIZE = 1024;

interface Cached {
  principal: Principal;
  issuedAt: number;
}

/**
 * Resolves the bearer token of an MCP request: the toolbox-wide AGENT_GATEWAY_TOKEN (compared in
 * constant time) or a per-agent token (signature, expiry, then revocation on every request).
 */
export function gatewayAuthenticator(opts: {
  agentGatewayToken: string;
  tokens: AgentTokens;
  now?: () => number;
}): (req: IncomingMessage) => Promise<Principal | AuthFailure> {
  const gateway = new TokenVerifier({ current: opts.agentGatewayToken });
  const now = opts.now ?? Date.now;
  const cache = new Map<string, Cached>();
  return async (req) => {
    const header = req.headers.authorization;
    if (!header) return { reason: "missing" };
    const m = BEARER.exec(header);
    if (!m) return { reason: "malformed" };
    const token = m[1];
    if (gateway.check(`Bearer ${token}`).ok) return GATEWAY;
    if (!JWT_SHAPE.test(token)) return { reason: "invalid" };
    let entry = cache.get(token);
    if (!entry) {
      const v = await opts.tokens.verify(token);
      if (!v.ok) return { reason: v.reason };
      entry = { principal: v.principal, issuedAt: v.issuedAt };
      if (cache.size >= CACHE_SIZE) cache.delete(cache.keys().next().value!);
      cache.set(token, entry);
    }
    if (entry.principal.expiresAt! <= now()) {
      cache.delete(token);
      return { reason: "expired" };
    }
    if (opts.tokens.isRevoked(entry.principal, entry.issuedAt)) return { reason: "revoked" };
    return entry.principal;
  };
}
