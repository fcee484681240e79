// Revoked per-agent tokens, held in memory. The control plane owns the list: it revokes through
// the API and, after a backend restart (a new `boot_id` in /status), puts the whole list back
// with PUT /v1/agent-tokens/revocations. Entries go once the tokens they name have expired:
// a token's own `exp` for a token id, the longest token life for "every token of an agent issued
// before T". docs/decisions/0023-per-agent-tokens.md.

export interface Revocation {
  /** One token by its id (`jti`). */
  token_id?: string;
  /** Or every token of this agent issued at or before `issued_before` (Unix seconds). */
  agent_id?: string;
  issued_before?: number;
  /** Unix seconds after which the entry is of no use (the revoked tokens have expired). */
  expires_at: number;
}

export const MAX_REVOCATIONS = 100_000;

export class Revocations {
  private readonly tokens = new Map<string, number>();
  private readonly agents = new Map<string, { before: number; expires: number }>();

  constructor(private readonly now: () => number = Date.now) {}

  get size(): number {
    return this.tokens.size + this.agents.size;
  }

  /** False when the list is full (the caller answers 507); the entry replaces an equal one. */
  add(r: Revocation): boolean {
    this.prune();
    if (this.size >= MAX_REVOCATIONS) return false;
    if (r.token_id !== undefined) this.tokens.set(r.token_id, r.expires_at);
    if (r.agent_id !== undefined) {
      const prev = this.agents.get(r.agent_id);
      this.agents.set(r.agent_id, {
        before: Math.max(prev?.before ?? 0, r.issued_before ?? 0),
        expires: Math.max(prev?.expires ?? 0, r.expires_at),
      });
    }
    return true;
  }

  replace(list: Revocation[]): boolean {
    if (list.length > MAX_REVOCATIONS) return false;
    this.tokens.clear();
    this.agents.clear();
    for (const r of list) this.add(r);
    return true;
  }

  isRevoked(agentId: string, tokenId: string, issuedAt: number): boolean {
    if (this.tokens.has(tokenId)) return true;
    const agent = this.agents.get(agentId);
    return agent !== undefined && issuedAt <= agent.before;
  }

  list(): Revocation[] {
    this.prune();
    return [
      ...[...this.tokens].map(([token_id, expires_at]) => ({ token_id, expires_at })),
      ...[...this.agents].map(([agent_id, a]) => ({
        agent_id,
        issued_before: a.before,
        expires_at: a.expires,
      })),
    ];
  }

  /** Drops entries whose tokens have all expired. */
  prune(): void {
    const now = this.now() / 1000;
    for (const [id, exp] of this.tokens) if (exp < now) this.tokens.delete(id);
    for (const [id, a] of this.agents) if (a.expires < now) this.agents.delete(id);
  }
}
