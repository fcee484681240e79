import type { Logger } from "pino";
import type { Tool, WaitResult, WaitState } from "../api";
import type { DockerEngine } from "../docker/engine";
import { LABEL } from "./labels";

// GET /tools/:name/wait without polling (issue 13, item 9). One watcher follows Docker's event
// stream for this DTMA's containers; every wait registers with it. An event about a tool starts
// one look at that tool (inspect), shared by all its waiters and by any look already under way,
// so a thousand waits on one tool cost one inspect per event, and idle waits cost nothing. While
// the stream is down (a daemon restart), waited tools are looked at once a second, and once more
// when it is back, for the events that were missed.

export interface WatcherDeps {
  docker: DockerEngine;
  log: Logger;
  /** Labels that select this DTMA's tool containers. */
  labels: string[];
  /** The tool's current view, or null when it has no container. */
  find(name: string): Promise<Tool | null>;
  /** Told of every event about a container of this DTMA (e.g. the gateway's networks). */
  onEvent?: (event: DockerEvent) => void;
}

interface DockerEvent {
  Type?: string;
  Action?: string;
  Actor?: { ID?: string; Attributes?: Record<string, string> };
}

interface Waiter {
  state: WaitState;
  done(tool: Tool | null): void;
}

const RETRY_MIN_MS = 250;
const RETRY_MAX_MS = 5000;
const SWEEP_MS = 1000;

function reached(tool: Tool | null, state: WaitState): boolean {
  if (state === "removed") return tool === null;
  if (!tool) return false;
  if (state === "healthy") return tool.health === "healthy";
  if (state === "exited") return tool.state === "exited" || tool.state === "dead";
  return tool.state === "running";
}

export class ToolWatcher {
  private readonly waiters = new Map<string, Set<Waiter>>();
  /** Looks under way, by tool; `again` when an event came during one. */
  private readonly looks = new Map<string, { promise: Promise<Tool | null>; again: boolean }>();
  private abort: AbortController | undefined;
  private connected = false;
  private sweep: NodeJS.Timeout | undefined;
  private stopped = true;

  constructor(private readonly deps: WatcherDeps) {}

  /** Whether the event stream is open (waits are then served by events alone). */
  get live(): boolean {
    return this.connected;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    void this.follow();
  }

  stop(): void {
    this.stopped = true;
    this.abort?.abort();
    clearInterval(this.sweep);
    this.sweep = undefined;
  }

  /** Waits until `name` reaches `state`, `timeoutMs` passes or `signal` aborts. */
  async wait(
    name: string,
    state: WaitState,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<Omit<WaitResult, "name" | "state"> & { found: boolean }> {
    const first = await this.look(name);
    // Only a removal may be waited for on a tool that has no container.
    if (!first && state !== "removed") return { reached: false, tool: null, found: false };
    if (reached(first, state) || timeoutMs <= 0 || signal?.aborted)
      return { reached: reached(first, state), tool: first, found: first !== null };
    return new Promise((resolve) => {
      let set = this.waiters.get(name);
      if (!set) this.waiters.set(name, (set = new Set()));
      const finish = (tool: Tool | null, ok: boolean) => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        set.delete(waiter);
        if (set.size === 0 && this.waiters.get(name) === set) this.waiters.delete(name);
        resolve({ reached: ok, tool, found: true });
      };
      const waiter: Waiter = { state, done: (tool) => finish(tool, true) };
      // At the end the answer carries the tool as it is then (one look shared by all).
      const giveUp = () => {
        set.delete(waiter);
        void this.look(name).then((tool) => finish(tool, reached(tool, state)));
      };
      const onAbort = () => giveUp();
      const timer = setTimeout(giveUp, timeoutMs);
      signal?.addEventListener("abort", onAbort, { once: true });
      set.add(waiter);
    });
  }

  /** One inspect of `name` at a time; a request during one is answered by one more after it. */
  private look(name: string): Promise<Tool | null> {
    const current = this.looks.get(name);
    if (current) {
      current.again = true;
      return current.promise.then(() => this.looks.get(name)?.promise ?? this.look(name));
    }
    const entry = { promise: Promise.resolve<Tool | null>(null), again: false };
    entry.promise = this.deps
      .find(name)
      .catch((err: unknown) => {
        this.deps.log.warn({ err, tool: name }, "wait: looking at the tool failed");
        return null;
      })
      .then((tool) => {
        this.settle(name, tool);
        return tool;
      })
      .finally(() => {
        if (this.looks.get(name) !== entry) return;
        this.looks.delete(name);
        if (entry.again) void this.look(name);
      });
    this.looks.set(name, entry);
    return entry.promise;
  }

  private settle(name: string, tool: Tool | null): void {
    for (const w of this.waiters.get(name) ?? []) if (reached(tool, w.state)) w.done(tool);
  }

  private lookAtAll(): void {
    for (const name of this.waiters.keys()) void this.look(name);
  }

  private async follow(): Promise<void> {
    let delay = RETRY_MIN_MS;
    while (!this.stopped) {
      this.abort = new AbortController();
      try {
        const stream = await this.deps.docker.events(this.deps.labels, this.abort.signal);
        this.connected = true;
        clearInterval(this.sweep);
        this.sweep = undefined;
        delay = RETRY_MIN_MS;
        // Events missed while it was down.
        this.lookAtAll();
        let partial = "";
        for await (const chunk of stream) {
          const lines = (partial + (chunk as Buffer).toString("utf8")).split("\n");
          partial = lines.pop()!;
          if (partial.length > 65_536) partial = "";
          for (const line of lines) if (line.trim()) this.event(line);
        }
      } catch (err) {
        if (!this.stopped) this.deps.log.warn({ err }, "Docker event stream failed; retrying");
      }
      this.connected = false;
      if (this.stopped) return;
      this.sweep ??= setInterval(() => this.lookAtAll(), SWEEP_MS);
      this.sweep.unref();
      await new Promise((r) => setTimeout(r, delay).unref());
      delay = Math.min(RETRY_MAX_MS, delay * 2);
    }
  }

  private event(line: string): void {
    let event: DockerEvent;
    try {
      event = JSON.parse(line) as DockerEvent;
    } catch {
      return;
    }
    this.deps.onEvent?.(event);
    const name = event.Actor?.Attributes?.[LABEL.toolName];
    if (name && this.waiters.has(name)) void this.look(name);
  }
}
