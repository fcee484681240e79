import { TOOL_NAME_PATTERN } from "@agentopia-toolboxes/dtma/api";
import { HttpError, type Route } from "@agentopia-toolboxes/servicekit/http";
import type { Logger } from "pino";
import type { AgentTokens } from "../auth/agentTokens";
import { MAX_REVOCATIONS, type Revocation, type Revocations } from "../auth/revocations";

export interface AgentTokenRouteDeps {
  tokens: AgentTokens;
  revocations: Revocations;
  maxTtlSeconds: number;
  /** Changes on every start: the control plane puts the revocation list back when it does. */
  bootId: string;
  log: Logger;
  now?: () => number;
}

const AGENT_ID = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/;
const TOKEN_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const DEFAULT_TTL_SECONDS = 3600;
const MAX_SERVERS = 200;

type Obj = Record<string, unknown>;

const bad = (field: string, message: string) =>
  new HttpError(400, "invalid_request", `${field}: ${message}`, field);

function object(v: unknown, field: string): Obj {
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw bad(field, "must be a JSON object");
  }
  return v as Obj;
}

function onlyKeys(o: Obj, allowed: string[], prefix = ""): void {
  for (const k of Object.keys(o))
    if (!allowed.includes(k)) throw bad(prefix + k, "is not a known field");
}

function agentId(v: unknown, field: string): string {
  if (typeof v !== "string" || !AGENT_ID.test(v)) {
    throw bad(field, "must be 1-128 letters, digits or _ . : - (starting with a letter or digit)");
  }
  return v;
}

function isoTime(v: unknown, field: string): number {
  const ms = typeof v === "string" && /^\d{4}-\d{2}-\d{2}T/.test(v) ? Date.parse(v) : NaN;
  if (Number.isNaN(ms)) throw bad(field, "must be an ISO 8601 date-time");
  return Math.floor(ms / 1000);
}

const iso = (seconds: number) => new Date(seconds * 1000).toISOString();

function revocationView(r: Revocation) {
  return {
    ...(r.token_id !== undefined ? { token_id: r.token_id } : {}),
    ...(r.agent_id !== undefined ? { agent_id: r.agent_id } : {}),
    ...(r.issued_before !== undefined ? { issued_before: iso(r.issued_before) } : {}),
    expires_at: iso(r.expires_at),
  };
}

export function agentTokenRoutes(deps: AgentTokenRouteDeps): Route[] {
  const now = () => Math.floor((deps.now ?? Date.now)() / 1000);

  /** One revocation: a token id (kept until `expires_at`) or every token of an agent so far. */
  const revocation = (v: unknown, field: string): Revocation => {
    const o = object(v, field);
    const at = (k: string) => (field === "body" ? k : `${field}.${k}`);
    onlyKeys(
      o,
      ["token_id", "agent_id", "issued_before", "expires_at"],
      field === "body" ? "" : `${field}.`,
    );
    const longest = now() + deps.maxTtlSeconds;
    if ((o.token_id === undefined) === (o.agent_id === undefined)) {
      throw bad(at("token_id"), "give either token_id or agent_id");
    }
    if (o.token_id !== undefined) {
      const expires =
        o.expires_at === undefined ? longest : isoTime(o.expires_at, at("expires_at"));
      if (typeof o.token_id !== "string" || !TOKEN_ID.test(o.token_id)) {
        throw bad(at("token_id"), "must be a token id as minted (a UUID)");
      }
      if (o.issued_before !== undefined) throw bad(at("issued_before"), "applies to agent_id only");
      return { token_id: o.token_id, expires_at: Math.min(expires, longest) };
    }
    const before =
      o.issued_before === undefined ? now() : isoTime(o.issued_before, at("issued_before"));
    if (before > now()) throw bad(at("issued_before"), "must not be in the future");
    // Every token issued by `before` has expired once the longest token life has passed.
    return {
      agent_id: agentId(o.agent_id, at("agent_id")),
      issued_before: before,
      expires_at: before + deps.maxTtlSeconds,
    };
  };

  const full = () =>
    new HttpError(
      507,
      "revocations_full",
      `at most ${MAX_REVOCATIONS} revocations are held; let tokens expire or rotate the toolbox's tokens`,
    );

  return [
    {
      method: "POST",
      path: "/v1/agent-tokens",
      body: true,
      handler: async ({ body }) => {
        const b = object(body, "body");
        onlyKeys(b, ["agent_id", "servers", "expires_in_seconds"]);
        const agent = agentId(b.agent_id, "agent_id");
        let servers: "*" | string[];
        if (b.servers === "*") servers = "*";
        else if (Array.isArray(b.servers) && b.servers.length <= MAX_SERVERS) {
          servers = b.servers.map((s, i) => {
            if (typeof s !== "string" || !TOOL_NAME_PATTERN.test(s)) {
              throw bad(`servers[${i}]`, "must be a server name");
            }
            return s;
          });
          servers = [...new Set(servers)];
        } else {
          throw bad("servers", `must be "*" or a list of at most ${MAX_SERVERS} server names`);
        }
        const ttl = b.expires_in_seconds ?? DEFAULT_TTL_SECONDS;
        if (
          typeof ttl !== "number" ||
          !Number.isInteger(ttl) ||
          ttl < 60 ||
          ttl > deps.maxTtlSeconds
        ) {
          throw bad(
            "expires_in_seconds",
            `must be a whole number from 60 to ${deps.maxTtlSeconds}`,
          );
        }
        const minted = await deps.tokens.mint({ agentId: agent, servers, expiresInSeconds: ttl });
        deps.log.info(
          { agent, token_id: minted.tokenId, servers, expires_at: iso(minted.expiresAt) },
          "agent token minted",
        );
        return {
          status: 201,
          body: {
            token: minted.token,
            token_id: minted.tokenId,
            agent_id: minted.agentId,
            servers: minted.servers,
            issued_at: iso(minted.issuedAt),
            expires_at: iso(minted.expiresAt),
          },
        };
      },
    },
    {
      method: "POST",
      path: "/v1/agent-tokens/revoke",
      body: true,
      handler: ({ body }) => {
        const r = revocation(body, "body");
        if (!deps.revocations.add(r)) throw full();
        deps.log.info({ revocation: revocationView(r) }, "agent token revoked");
        return { status: 200, body: { revoked: revocationView(r), count: deps.revocations.size } };
      },
    },
    {
      method: "GET",
      path: "/v1/agent-tokens/revocations",
      handler: () => ({
        status: 200,
        body: { boot_id: deps.bootId, revocations: deps.revocations.list().map(revocationView) },
      }),
    },
    {
      method: "PUT",
      path: "/v1/agent-tokens/revocations",
      body: true,
      bodyLimitBytes: 16 * 1024 * 1024,
      handler: ({ body }) => {
        const b = object(body, "body");
        onlyKeys(b, ["revocations"]);
        if (!Array.isArray(b.revocations)) throw bad("revocations", "must be a list");
        const list = b.revocations.map((r, i) => revocation(r, `revocations[${i}]`));
        if (!deps.revocations.replace(list)) throw full();
        deps.log.info({ count: list.length }, "agent token revocations replaced");
        return { status: 200, body: { boot_id: deps.bootId, count: deps.revocations.size } };
      },
    },
  ];
}
