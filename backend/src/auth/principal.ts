/**
 * Who is calling the MCP gateway. The toolbox-wide `AGENT_GATEWAY_TOKEN` may use every server;
 * a per-agent token (minted by the control plane through `/v1/agent-tokens`) names its agent and
 * the servers it may use. Tokens are checked by `src/auth/`; the edge only reads the result.
 */
export interface Principal {
  kind: "gateway" | "agent";
  /** The agent's id, or "gateway" for the toolbox-wide token. Sessions are bound to it. */
  id: string;
  /** The per-agent token's id (`jti`), for audit lines and revocation; undefined for the gateway token. */
  tokenId?: string;
  /** The servers this principal may see and call: every one ("*") or exactly these names. */
  servers: "*" | readonly string[];
  /** Unix ms after which the token is no longer accepted; undefined for the gateway token. */
  expiresAt?: number;
}

export function mayUse(principal: Principal, server: string): boolean {
  return principal.servers === "*" || principal.servers.includes(server);
}

/** Why a request was refused (logged and counted; answered 401 without the detail of the token). */
export type AuthFailure = { reason: "missing" | "malformed" | "invalid" | "expired" | "revoked" };
