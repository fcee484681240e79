import { hkdfSync, randomUUID } from "node:crypto";
import type { SignJWT as SignJwt } from "jose/jwt/sign";
import type { jwtVerify as JwtVerify } from "jose/jwt/verify";
import type { Principal } from "./principal";
import type { Revocations } from "./revocations";

// Per-agent tokens are JWTs (HS256) signed with a key derived from this toolbox's
// INTERNAL_API_SECRET: the backend verifies them alone, nothing about them is stored on the
// droplet, they survive a restart, and a token minted for one toolbox is worthless on another
// (every toolbox has its own secret). Rotating the secret (tokenGeneration) revokes all of them.
// docs/decisions/0023-per-agent-tokens.md.

const ISSUER = "agentopia-toolbox";
const AUDIENCE = "agentopia-toolbox-gateway";
const KEY_INFO = "agentopia per-agent token signing key v1";

export interface MintRequest {
  agentId: string;
  /** Server names, or "*" for every server of the toolbox. */
  servers: "*" | string[];
  expiresInSeconds: number;
}

export interface MintedToken {
  token: string;
  tokenId: string;
  agentId: string;
  servers: "*" | string[];
  issuedAt: number;
  expiresAt: number;
}

export type Verified =
  | { ok: true; principal: Principal; issuedAt: number }
  | { ok: false; reason: "invalid" | "expired" };

function signingKey(internalApiSecret: string): Uint8Array {
  return new Uint8Array(hkdfSync("sha256", internalApiSecret, ISSUER, KEY_INFO, 32));
}

// jose is loaded at the first token minted or checked, through its subpath modules: the whole of
// it costs ~4 MB of resident memory, these two ~2 MB, and a toolbox whose agents use only the
// toolbox-wide token never pays them.
type Jose = { SignJWT: typeof SignJwt; jwtVerify: typeof JwtVerify };
let jose: Promise<Jose> | undefined;
const loadJose = (): Promise<Jose> =>
  (jose ??= Promise.all([import("jose/jwt/sign"), import("jose/jwt/verify")]).then(
    ([sign, verify]) => ({ SignJWT: sign.SignJWT, jwtVerify: verify.jwtVerify }),
  ));

export class AgentTokens {
  private readonly key: Uint8Array;

  constructor(
    internalApiSecret: string,
    private readonly revocations: Revocations,
    private readonly now: () => number = Date.now,
  ) {
    this.key = signingKey(internalApiSecret);
  }

  async mint(req: MintRequest): Promise<MintedToken> {
    const issuedAt = Math.floor(this.now() / 1000);
    const expiresAt = issuedAt + req.expiresInSeconds;
    const tokenId = randomUUID();
    const { SignJWT } = await loadJose();
    const token = await new SignJWT({ srv: req.servers })
      .setProtectedHeader({ alg: "HS256", typ: "JWT" })
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setSubject(req.agentId)
      .setJti(tokenId)
      .setIssuedAt(issuedAt)
      .setExpirationTime(expiresAt)
      .sign(this.key);
    return { token, tokenId, agentId: req.agentId, servers: req.servers, issuedAt, expiresAt };
  }

  /** Checks signature, issuer, audience, expiry and shape; revocation is checked by the caller. */
  async verify(token: string): Promise<Verified> {
    const { jwtVerify } = await loadJose();
    try {
      const { payload } = await jwtVerify(token, this.key, {
        issuer: ISSUER,
        audience: AUDIENCE,
        algorithms: ["HS256"],
        currentDate: new Date(this.now()),
        requiredClaims: ["sub", "jti", "exp", "iat"],
      });
      const servers = payload.srv;
      const valid =
        servers === "*" ||
        (Array.isArray(servers) && servers.every((s): s is string => typeof s === "string"));
      if (!valid || typeof payload.sub !== "string" || typeof payload.jti !== "string") {
        return { ok: false, reason: "invalid" };
      }
      return {
        ok: true,
        issuedAt: payload.iat!,
        principal: {
          kind: "agent",
          id: payload.sub,
          tokenId: payload.jti,
          servers: servers === "*" ? "*" : Object.freeze([...servers]),
          expiresAt: payload.exp! * 1000,
        },
      };
    } catch (err) {
      const code = (err as { code?: string }).code;
      return { ok: false, reason: code === "ERR_JWT_EXPIRED" ? "expired" : "invalid" };
    }
  }

  isRevoked(principal: Principal, issuedAt: number): boolean {
    return this.revocations.isRevoked(principal.id, principal.tokenId ?? "", issuedAt);
  }
}
