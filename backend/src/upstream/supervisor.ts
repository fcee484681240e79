// Keeps one server's shared lane (types.ts: LaneSupervisor). It connects on the first `lane()`,
// shares one attempt among concurrent callers, moves to `backoff` when the lane ends or a connect
// fails (exponential, capped), and to `crash_loop` after too many failures in a row: a lane that
// ends within the settle window after becoming ready counts as one. In a crash loop `lane()`
// rejects at once until `reset()`. No call waits longer than its timeout. Per-session lanes are
// counted and closed on `shutdown`.
import type { Logger } from "pino";
import type { Lane, LaneState, LaneSupervisor, SupervisorView } from "./types";
import { timerMs } from "./timers";
import { UpstreamUnavailable } from "./types";

/** Time, injectable so that tests move it by hand. */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

export interface SupervisorOptions {
  /** The server (tool) name. */
  server: string;
  /** Builds and initializes the shared lane (attach through the DTMA, or an http lane). */
  connect: () => Promise<Lane>;
  /** Builds a lane for one agent session (isolation `per_session`); absent: not offered. */
  openSessionLane?: () => Promise<Lane>;
  /** Delay before reconnecting after the n-th failure in a row: initialMs × factor^(n−1), at most maxMs. Default 500 ms, ×2, 30000 ms. */
  backoff?: { initialMs?: number; maxMs?: number; factor?: number };
  /** Failures in a row that make a crash loop. Default 5. */
  crashLoopFailures?: number;
  /** A lane that ends sooner than this after being ready counts as a failure in a row. Default 10000 ms. */
  settleMs?: number;
  /** A connect that has not finished after this fails (a late lane is closed). Default 30000 ms. */
  connectTimeoutMs?: number;
  clock?: Clock;
  log?: Logger;
}

export interface Supervisor extends LaneSupervisor {
  openSessionLane(timeoutMs: number): Promise<Lane>;
}

export function createSupervisor(opts: SupervisorOptions): Supervisor {
  return new LaneSupervisorImpl(opts);
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

class LaneSupervisorImpl implements Supervisor {
  readonly server: string;
  private readonly clock: Clock;
  private readonly initialMs: number;
  private readonly maxMs: number;
  private readonly factor: number;
  private readonly crashLoopFailures: number;
  private readonly settleMs: number;
  private readonly connectTimeoutMs: number;

  private state: LaneState = "idle";
  private failures = 0;
  private lastError: string | null = null;
  private current: Lane | null = null;
  private readyAt: number | null = null;
  private backoffUntil = 0;
  private wakeTimer: unknown = null;
  /** Bumped whenever an attempt or lane stops being the one in use (reset, shutdown, end). */
  private generation = 0;
  private readonly waiters = new Set<() => void>();
  private readonly sessionLanes = new Set<Lane>();

  constructor(private readonly opts: SupervisorOptions) {
    this.server = opts.server;
    this.clock = opts.clock ?? systemClock;
    this.initialMs = opts.backoff?.initialMs ?? 500;
    this.maxMs = opts.backoff?.maxMs ?? 30_000;
    this.factor = opts.backoff?.factor ?? 2;
    this.crashLoopFailures = opts.crashLoopFailures ?? 5;
    this.settleMs = opts.settleMs ?? 10_000;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 30_000;
  }

  lane(timeoutMs: number): Promise<Lane> {
    return new Promise<Lane>((resolve, reject) => {
      const deadline = this.clock.now() + timeoutMs;
      let done = false;
      const finish = (err: UpstreamUnavailable | null, lane?: Lane): void => {
        if (done) return;
        done = true;
        this.clock.clearTimeout(timer);
        this.waiters.delete(step);
        if (err) reject(err);
        else resolve(lane!);
      };
      const step = (): void => {
        if (done) return;
        switch (this.state) {
          case "ready":
            return finish(null, this.current!);
          case "crash_loop":
            return finish(
              this.unavailable(
                `crash loop after ${this.failures} failures in a row: ${this.lastError ?? "unknown"}`,
              ),
            );
          case "stopped":
            return finish(this.unavailable("the server is stopped"));
          case "idle":
            this.startConnect();
            break;
          case "backoff": {
            const wait = this.backoffUntil - this.clock.now();
            if (wait <= 0) {
              this.startConnect();
              break;
            }
            if (wait > deadline - this.clock.now()) {
              // The backoff outlasts the caller's patience: say so now rather than at the deadline.
              return finish(
                this.unavailable(
                  `reconnecting after a failure (${this.lastError ?? "unknown"})`,
                  Math.ceil(wait / 1000),
                ),
              );
            }
            this.scheduleWake(wait);
            break;
          }
          case "connecting":
            break;
        }
        this.waiters.add(step);
      };
      const timer = this.clock.setTimeout(
        () =>
          finish(
            this.unavailable(
              `no lane within ${timeoutMs} ms (${this.state}${this.lastError ? `; last error: ${this.lastError}` : ""})`,
            ),
          ),
        timerMs(timeoutMs),
      );
      step();
    });
  }

  openSessionLane(timeoutMs: number): Promise<Lane> {
    const open = this.opts.openSessionLane;
    if (!open) {
      return Promise.reject(this.unavailable("this server has no per-session lanes"));
    }
    if (this.state === "stopped") return Promise.reject(this.unavailable("the server is stopped"));
    if (this.state === "crash_loop") {
      return Promise.reject(this.unavailable(`crash loop: ${this.lastError ?? "unknown"}`));
    }
    return new Promise<Lane>((resolve, reject) => {
      let done = false;
      const timer = this.clock.setTimeout(() => {
        done = true;
        reject(this.unavailable(`no session lane within ${timeoutMs} ms`));
      }, timerMs(timeoutMs));
      open().then(
        (lane) => {
          this.clock.clearTimeout(timer);
          if (done || this.state === "stopped") {
            lane.close(done ? "the caller stopped waiting" : "the server is stopped");
            return;
          }
          done = true;
          this.sessionLanes.add(lane);
          void lane.closed.then(() => this.sessionLanes.delete(lane));
          resolve(lane);
        },
        (err: unknown) => {
          this.clock.clearTimeout(timer);
          if (done) return;
          done = true;
          reject(this.unavailable(`no session lane: ${messageOf(err)}`));
        },
      );
    });
  }

  view(): SupervisorView {
    let inFlight = this.current?.inFlight ?? 0;
    for (const l of this.sessionLanes) inFlight += l.inFlight;
    return {
      server: this.server,
      state: this.state,
      failures: this.state === "ready" ? 0 : this.failures,
      lastError: this.lastError,
      readySince:
        this.state === "ready" && this.readyAt !== null
          ? new Date(this.readyAt).toISOString()
          : null,
      inFlight,
      sessionLanes: this.sessionLanes.size,
    };
  }

  reset(): void {
    if (this.state === "ready" || this.state === "connecting") {
      this.failures = 0;
      return;
    }
    this.cancelWake();
    this.failures = 0;
    this.backoffUntil = 0;
    this.setState("idle");
  }

  shutdown(reason: string): void {
    this.generation++;
    this.cancelWake();
    const lane = this.current;
    this.current = null;
    this.readyAt = null;
    this.setState("stopped");
    lane?.close(reason);
    for (const l of [...this.sessionLanes]) l.close(reason);
    this.sessionLanes.clear();
  }

  private unavailable(message: string, retryAfterSeconds?: number): UpstreamUnavailable {
    return new UpstreamUnavailable(this.server, this.state, message, retryAfterSeconds);
  }

  private setState(state: LaneState): void {
    this.state = state;
    const waiting = [...this.waiters];
    this.waiters.clear();
    for (const w of waiting) w();
  }

  private scheduleWake(ms: number): void {
    if (this.wakeTimer !== null) return;
    this.wakeTimer = this.clock.setTimeout(() => {
      this.wakeTimer = null;
      if (this.state === "backoff") {
        this.startConnect();
        // Waiters re-check: they now wait for the attempt.
      }
    }, ms);
  }

  private cancelWake(): void {
    if (this.wakeTimer !== null) this.clock.clearTimeout(this.wakeTimer);
    this.wakeTimer = null;
  }

  private startConnect(): void {
    this.cancelWake();
    const generation = ++this.generation;
    this.state = "connecting"; // waiters are added by the caller of startConnect
    let settled = false;
    const timer = this.clock.setTimeout(() => {
      if (settled || generation !== this.generation) return;
      settled = true;
      this.failed(`connecting took longer than ${this.connectTimeoutMs} ms`);
    }, this.connectTimeoutMs);
    let attempt: Promise<Lane>;
    try {
      attempt = this.opts.connect();
    } catch (err) {
      attempt = Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    attempt.then(
      (lane) => {
        this.clock.clearTimeout(timer);
        if (settled || generation !== this.generation) {
          lane.close(this.state === "stopped" ? "the server is stopped" : "a newer attempt won");
          return;
        }
        settled = true;
        this.current = lane;
        this.readyAt = this.clock.now();
        this.opts.log?.info({ server: this.server }, "upstream lane ready");
        void lane.closed.then((reason) => this.laneEnded(lane, generation, reason));
        this.setState("ready");
      },
      (err: unknown) => {
        this.clock.clearTimeout(timer);
        if (settled || generation !== this.generation) return;
        settled = true;
        this.failed(messageOf(err));
      },
    );
  }

  private laneEnded(lane: Lane, generation: number, reason: string): void {
    if (generation !== this.generation || this.current !== lane) return;
    const upFor = this.clock.now() - (this.readyAt ?? 0);
    this.current = null;
    this.readyAt = null;
    // A lane that ran well starts a new count; one that ended right away adds to it.
    if (upFor >= this.settleMs) this.failures = 0;
    this.failed(reason);
  }

  private failed(reason: string): void {
    this.generation++;
    this.failures++;
    this.lastError = reason;
    if (this.failures >= this.crashLoopFailures) {
      this.opts.log?.warn(
        { server: this.server, failures: this.failures, reason },
        "upstream crash loop",
      );
      this.setState("crash_loop");
      return;
    }
    const delay = Math.min(this.maxMs, this.initialMs * this.factor ** (this.failures - 1));
    this.backoffUntil = this.clock.now() + delay;
    this.opts.log?.info(
      { server: this.server, failures: this.failures, delayMs: delay, reason },
      "upstream lane down, backing off",
    );
    this.setState("backoff");
  }
}
