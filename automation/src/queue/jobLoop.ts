import type { Job, PgBoss } from "pg-boss";
import type { Logger } from "pino";
import { Listener } from "../db/listener";

export interface JobLoopOptions<T> {
  boss: PgBoss;
  queue: string;
  /** Jobs run at once by this process. */
  slots: number;
  /**
   * Backstop poll (ms). Retries that become due and jobs lost by a dead worker raise no
   * notification, so they are found by this poll.
   */
  pollIntervalMs: number;
  /** LISTEN on this channel (the enqueueing transaction NOTIFYs it on commit); absent: poll only. */
  listen?: { connectionString: string; channel: string };
  log: Logger;
  /**
   * Runs one job: resolving completes it, throwing fails it (pg-boss retries or dead-letters it).
   * The handler may call `release` once the slot's scarce work is done (the engine call) so the
   * next job starts while it records its result; settling releases the slot in any case.
   * Completing the job in pg-boss runs beside the next one.
   */
  handle: (job: Job<T>, release: () => void) => Promise<void>;
}

/**
 * A worker with N slots on a pg-boss queue, built on pg-boss's `fetch`/`complete`/`fail`/`touch`
 * (pg-boss keeps its tables, retries, expiry, job heartbeats and dead letters). A slot that frees
 * up fetches the next job at once; with every slot idle the loop waits for a NOTIFY from the
 * enqueueing transaction or the backstop poll. pg-boss's own `work` waits a polling interval (or
 * a cached backlog count) between a finished job and the next fetch, which dominated short jobs.
 */
export class JobLoop<T> {
  /** Jobs whose handler has not settled (their claims are kept alive). */
  private readonly active = new Map<string, Job<T>>();
  /** Slots taken: handlers that have not released theirs. */
  private occupied = 0;
  /** Slots a fetch in flight may fill. */
  private reserved = 0;
  private again = false;
  private stopping = false;
  private poll?: NodeJS.Timeout;
  private heartbeat?: NodeJS.Timeout;
  private listener?: Listener;
  private idleWaiters: (() => void)[] = [];
  private readonly settling = new Set<Promise<unknown>>();
  private readonly toComplete: { id: string; retryCount: number }[] = [];
  private completing = false;

  constructor(private readonly opts: JobLoopOptions<T>) {}

  async start(): Promise<void> {
    if (this.opts.listen) {
      // Anything enqueued while we were not listening is found by the fetch each connection wakes.
      this.listener = new Listener({
        ...this.opts.listen,
        log: this.opts.log,
        onNotify: () => this.wake(),
        onConnected: () => this.wake(),
      });
      await this.listener.start();
    }
    this.poll = setInterval(() => this.wake(), this.opts.pollIntervalMs);
    this.poll.unref();
    this.wake();
  }

  /** Jobs this process is running now. */
  get running(): number {
    return this.active.size;
  }

  /**
   * Fetches for every free slot not already covered by a fetch in flight, at once: slots that
   * free up one after another do not queue behind each other's fetch.
   */
  wake(): void {
    if (this.stopping) return;
    const free = this.opts.slots - this.occupied - this.reserved;
    if (free <= 0) {
      // A fetch in flight may have read the queue before the job that woke us was committed.
      if (this.reserved > 0) this.again = true;
      return;
    }
    this.again = false;
    this.reserved += free;
    this.opts.boss.fetch<T>(this.opts.queue, { batchSize: free }).then(
      (jobs) => {
        this.reserved -= free;
        for (const job of jobs) this.run(job);
        if (jobs.length === free || this.again) this.wake();
      },
      (err: Error) => {
        this.reserved -= free;
        this.opts.log.warn({ queue: this.opts.queue, err: err.message }, "fetch failed");
      },
    );
  }

  /** Stops fetching and waits (up to `timeoutMs`) for running jobs; unfinished ones stay claimed. */
  async stop(timeoutMs: number): Promise<void> {
    this.stopping = true;
    clearInterval(this.poll);
    clearInterval(this.heartbeat);
    await this.listener?.stop();
    if (this.active.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((resolve) => this.idleWaiters.push(resolve)),
        new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs))),
      ]);
      clearTimeout(timer);
    }
    while (this.settling.size > 0) await Promise.all([...this.settling]);
  }

  private run(job: Job<T>): void {
    this.active.set(job.id, job);
    this.occupied++;
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      this.occupied--;
      this.wake();
    };
    this.ensureHeartbeat(job);
    const attempt = { id: job.id, retryCount: job.retryCount };
    void this.opts
      .handle(job, release)
      .then(
        () => ({ ok: true as const }),
        (err: Error) => ({ ok: false as const, message: String(err?.message ?? err) }),
      )
      .then((outcome) => {
        // The slot is free as soon as the handler is done: settling the job runs beside the next
        // fetch (the operation's own state is already recorded; a lost settle only re-delivers a
        // job whose handler sees a final operation and returns).
        if (outcome.ok) this.complete(attempt);
        else
          void this.track(
            this.opts.boss.fail(this.opts.queue, attempt, { message: outcome.message }),
          );
        this.active.delete(job.id);
        if (this.active.size === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
        release();
      });
  }

  /** Completions are sent in batches: one statement for every job that finished meanwhile. */
  private complete(attempt: { id: string; retryCount: number }): void {
    this.toComplete.push(attempt);
    if (this.completing) return;
    const batch = this.toComplete.splice(0);
    this.completing = true;
    void this.track(this.opts.boss.complete(this.opts.queue, batch)).finally(() => {
      this.completing = false;
      const next = this.toComplete.pop();
      if (next) this.complete(next);
    });
  }

  private track(settle: Promise<unknown>): Promise<unknown> {
    const tracked = settle
      .catch((err: Error) =>
        this.opts.log.error(
          { queue: this.opts.queue, err: err.message },
          "jobs could not be settled; pg-boss retries them when their claims lapse",
        ),
      )
      .finally(() => this.settling.delete(tracked));
    this.settling.add(tracked);
    return tracked;
  }

  /** Refreshes the claim of every running job at half the queue's heartbeat interval. */
  private ensureHeartbeat(job: Job<T>): void {
    const seconds = job.heartbeatSeconds;
    if (this.heartbeat || !seconds) return;
    this.heartbeat = setInterval(
      () => {
        const jobs = [...this.active.values()].map((j) => ({ id: j.id, retryCount: j.retryCount }));
        if (jobs.length === 0) return;
        this.opts.boss
          .touch(this.opts.queue, jobs)
          .catch((err: Error) =>
            this.opts.log.warn(
              { queue: this.opts.queue, err: err.message },
              "job heartbeat failed",
            ),
          );
      },
      (seconds * 1000) / 2,
    );
    this.heartbeat.unref();
  }
}
