// Sessions of the sessionful era (2025-03-26 … 2025-11-25, and 2024-11-05 clients): a
// crypto-random id bound to the principal that opened it and to one endpoint (a server, or the
// aggregate `/mcp`). A session is small: its ids, the calls it has in flight, its resource
// subscriptions, its GET stream, and its own lanes when the server is isolated per session.
import { hash, randomBytes } from "node:crypto";
import type { Principal } from "../auth/principal";
import type { Lane } from "../upstream/types";
import type { SseStream } from "./sse";
import type { Subscriber } from "./upstream";

export class Session {
  readonly id = randomBytes(24).toString("base64url");
  /** What logs and audit lines name the session by: never the id itself. */
  readonly hash = hash("sha256", this.id, "hex").slice(0, 12);
  lastUsed: number;
  /** The per-session lane (isolation `per_session`, server endpoints). */
  lane: Lane | undefined;
  /** Per-session lanes of the aggregate endpoint, opened on first use, by server. */
  aggregateLanes: Map<string, Promise<Lane>> | undefined;
  /** The GET stream: server-initiated messages (one per session; a new GET replaces it). */
  stream: SseStream | undefined;
  /** Calls in flight by the client's request id (`typeof:id`): what `notifications/cancelled` may reach. */
  inflight: Map<string, AbortController> | undefined;
  /** Resource subscriptions of this session, with the lane each was made on. */
  subscriptions: Map<string, Lane> | undefined;
  /** How the session hears its server's shared lane (absent with a lane of its own). */
  subscriber: Subscriber | undefined;
  closed = false;

  constructor(
    public principal: Principal,
    /** A server name or AGGREGATE. */
    readonly endpoint: string,
    readonly protocolVersion: string,
    now: number,
  ) {
    this.lastUsed = now;
  }

  get principalId(): string {
    return this.principal.id;
  }

  get busy(): boolean {
    return (this.inflight?.size ?? 0) > 0;
  }
}

export const requestKey = (id: string | number): string => `${typeof id}:${id}`;

export class SessionStore {
  private readonly byId = new Map<string, Session>();
  private readonly perEndpoint = new Map<string, number>();
  private readonly reserved = new Map<string, number>();

  constructor(
    private readonly idleMs: number,
    private readonly now: () => number,
  ) {}

  get size(): number {
    return this.byId.size;
  }

  /** Sessions (and initializations under way) of one endpoint. */
  count(endpoint: string): number {
    return (this.perEndpoint.get(endpoint) ?? 0) + (this.reserved.get(endpoint) ?? 0);
  }

  /** Holds a place while an `initialize` is under way; the returned function gives it back. */
  reserve(endpoint: string): () => void {
    this.reserved.set(endpoint, (this.reserved.get(endpoint) ?? 0) + 1);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const n = (this.reserved.get(endpoint) ?? 1) - 1;
      if (n > 0) this.reserved.set(endpoint, n);
      else this.reserved.delete(endpoint);
    };
  }

  add(s: Session): void {
    this.byId.set(s.id, s);
    this.perEndpoint.set(s.endpoint, (this.perEndpoint.get(s.endpoint) ?? 0) + 1);
  }

  /** The live session with this id, or undefined (unknown, ended, or idle too long). */
  get(id: string): Session | undefined {
    const s = this.byId.get(id);
    if (!s || s.closed || this.expired(s, this.now())) return undefined;
    return s;
  }

  remove(s: Session): void {
    if (this.byId.get(s.id) !== s) return;
    this.byId.delete(s.id);
    const n = (this.perEndpoint.get(s.endpoint) ?? 1) - 1;
    if (n > 0) this.perEndpoint.set(s.endpoint, n);
    else this.perEndpoint.delete(s.endpoint);
  }

  /** Sessions unused for longer than the idle limit (a call in flight counts as use). */
  idle(): Session[] {
    const now = this.now();
    return [...this.byId.values()].filter((s) => this.expired(s, now));
  }

  all(): Session[] {
    return [...this.byId.values()];
  }

  byEndpoint(): Record<string, number> {
    return Object.fromEntries(this.perEndpoint);
  }

  private expired(s: Session, now: number): boolean {
    return !s.busy && now - s.lastUsed > this.idleMs;
  }
}
