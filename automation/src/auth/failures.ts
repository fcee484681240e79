import ipaddr from "ipaddr.js";
import { LRUCache } from "lru-cache";

// Callers who keep failing to authenticate (issue 13, item 10): each failure may have cost a
// signature check, a database look-up (a DTMA token) or a call to Supabase Auth. An address with
// `perMinute` failures in its current minute is refused with 429 before anything is verified,
// until that minute is over. The service token is checked first and never refused this way.

/** The unit an attacker cannot cheaply multiply: an IPv4 address, or an IPv6 /64. */
function addressKey(address: string): string {
  if (!ipaddr.isValid(address)) return address;
  const parsed = ipaddr.process(address); // IPv4-mapped IPv6 becomes IPv4
  if (parsed.kind() === "ipv4") return parsed.toString();
  return `${(parsed as ipaddr.IPv6).parts.slice(0, 4).join(":")}::/64`;
}

interface Window {
  failures: number;
  resetAt: number;
}

export class FailureLimiter {
  private readonly windows: LRUCache<string, Window>;

  /** `perMinute` failures an address may have; `addresses` tracked at most (least recent go). */
  constructor(
    readonly perMinute: number,
    addresses = 50_000,
  ) {
    this.windows = new LRUCache<string, Window>({ max: addresses, ttl: 60_000 });
  }

  /** Seconds until this address may try again, or 0 when it may now. */
  blockedFor(address: string): number {
    const w = this.windows.get(addressKey(address));
    if (!w || w.failures < this.perMinute) return 0;
    return Math.max(1, Math.ceil((w.resetAt - Date.now()) / 1000));
  }

  fail(address: string): void {
    const key = addressKey(address);
    const now = Date.now();
    const w = this.windows.get(key);
    if (w && w.resetAt > now) w.failures++;
    else this.windows.set(key, { failures: 1, resetAt: now + 60_000 });
  }
}
