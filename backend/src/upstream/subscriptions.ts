// A lane's resource subscriptions, ref-counted: the first subscriber's `resources/subscribe`
// goes upstream and concurrent ones wait for it, later ones are only counted, and the last
// unsubscribe goes upstream. A caller that gives up (timeout, abort) while the subscribe is in
// flight holds nothing; when every caller gave up, the subscription is taken back.
import { errorOutcome } from "./jsonrpc";
import { timerMs } from "./timers";
import type { CallOptions, CallOutcome, JsonObject } from "./types";
import { ErrorCodes } from "./types";

type Call = (method: string, params: JsonObject, opts: CallOptions) => Promise<CallOutcome>;

interface Subscription {
  holders: number;
  /** Callers waiting for the one upstream `resources/subscribe` in flight, or null once it is done. */
  waiting: Set<(outcome: CallOutcome) => void> | null;
}

export class Subscriptions {
  private readonly byUri = new Map<string, Subscription>();

  /** `call` sends on the lane; `ended` tells whether the lane has closed. */
  constructor(
    private readonly call: Call,
    private readonly ended: () => boolean,
  ) {}

  subscribe(uri: string, opts: CallOptions): Promise<CallOutcome> {
    if (this.ended()) return this.call("resources/subscribe", { uri }, opts);
    const existing = this.byUri.get(uri);
    if (existing && existing.waiting === null) {
      existing.holders++;
      return Promise.resolve({ result: {} });
    }
    let sub = existing;
    if (!sub) {
      const fresh: Subscription = { holders: 0, waiting: new Set() };
      sub = fresh;
      this.byUri.set(uri, fresh);
      void this.call("resources/subscribe", { uri }, { timeoutMs: opts.timeoutMs }).then(
        (outcome) => {
          const waiting = fresh.waiting ?? new Set();
          fresh.waiting = null;
          if ("result" in outcome) {
            fresh.holders += waiting.size;
            if (fresh.holders === 0) {
              // Everyone gave up while it was in flight: take it back.
              this.byUri.delete(uri);
              if (!this.ended())
                void this.call("resources/unsubscribe", { uri }, { timeoutMs: opts.timeoutMs });
            }
          } else if (this.byUri.get(uri) === fresh) {
            this.byUri.delete(uri);
          }
          for (const w of waiting) w(outcome);
        },
      );
    }
    const waiting = sub.waiting!;
    return new Promise<CallOutcome>((resolve) => {
      const finish = (outcome: CallOutcome): void => {
        clearTimeout(timer);
        opts.signal?.removeEventListener("abort", onAbort);
        waiting.delete(finish);
        resolve(outcome);
      };
      const timer = setTimeout(
        () =>
          finish(errorOutcome(ErrorCodes.RequestTimeout, `no answer within ${opts.timeoutMs} ms`)),
        timerMs(opts.timeoutMs),
      );
      const onAbort = (): void =>
        finish(errorOutcome(ErrorCodes.Cancelled, "the request was cancelled"));
      if (opts.signal?.aborted) return onAbort();
      opts.signal?.addEventListener("abort", onAbort, { once: true });
      waiting.add(finish);
    });
  }

  unsubscribe(uri: string, opts: CallOptions): Promise<CallOutcome> {
    const sub = this.byUri.get(uri);
    // Not held (or not confirmed yet): nothing of this caller's to take back upstream.
    if (!sub || sub.waiting !== null || sub.holders === 0) return Promise.resolve({ result: {} });
    sub.holders--;
    if (sub.holders > 0) return Promise.resolve({ result: {} });
    this.byUri.delete(uri);
    return this.call("resources/unsubscribe", { uri }, opts);
  }

  /** How many subscribers hold `uri`. */
  holders(uri: string): number {
    return this.byUri.get(uri)?.holders ?? 0;
  }

  /** The lane ended: nothing is held any more. */
  clear(): void {
    this.byUri.clear();
  }
}
