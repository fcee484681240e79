// Server-sent event streams: the GET stream of a session, a request's streamed answer, and a
// `subscriptions/listen` answer. A stream ends when the client goes away, when a write fails, or
// when the client does not read (more than MAX_BUFFERED bytes still waiting when the next message
// or keep-alive is due): never a leaked stream.
// One ticker writes the keep-alive comments of every open stream.
import type { ServerResponse } from "node:http";

const MAX_BUFFERED = 1024 * 1024;

export class SseStream {
  private ended = false;
  private readonly onEnd: Array<() => void> = [];

  constructor(
    private readonly res: ServerResponse,
    private readonly registry: KeepAlive,
    headers: Record<string, string> = {},
  ) {
    res.writeHead(200, {
      "content-type": "text/event-stream",
      "cache-control": "no-cache, no-transform",
      "x-accel-buffering": "no",
      ...headers,
    });
    res.flushHeaders();
    res.once("close", () => this.finish());
    res.on("error", () => this.finish());
    registry.add(this);
  }

  get closed(): boolean {
    return this.ended;
  }

  /** Runs once the stream is over, whoever ended it (at once if it already is). */
  whenClosed(fn: () => void): void {
    if (this.ended) fn();
    else this.onEnd.push(fn);
  }

  /** Sends one JSON-RPC message as a `message` event; false when the stream is over. */
  send(message: unknown): boolean {
    return this.write(`event: message\ndata: ${JSON.stringify(message)}\n\n`);
  }

  /** A comment line: keeps intermediaries and clients from timing the stream out. */
  keepAlive(): void {
    this.write(": keep-alive\n\n");
  }

  /** Ends the stream, after a last message if one is given. */
  end(last?: unknown): void {
    if (this.ended) return;
    if (last !== undefined) this.send(last);
    if (!this.ended && !this.res.destroyed) this.res.end();
    this.finish();
  }

  private write(chunk: string): boolean {
    if (this.ended) return false;
    if (this.res.destroyed || this.res.writableEnded) {
      this.finish();
      return false;
    }
    if (this.res.writableLength > MAX_BUFFERED) {
      // What was written before is still not read: the client does not read, and everything
      // sent to it would stay in memory. (One large message on its own is fine.)
      this.res.destroy();
      this.finish();
      return false;
    }
    try {
      this.res.write(chunk);
    } catch {
      this.res.destroy();
      this.finish();
      return false;
    }
    return true;
  }

  private finish(): void {
    if (this.ended) return;
    this.ended = true;
    this.registry.delete(this);
    if (!this.res.writableEnded && !this.res.destroyed) this.res.destroy();
    for (const fn of this.onEnd.splice(0)) fn();
  }
}

/** The keep-alive ticker of all open streams; it runs only while a stream is open. */
export class KeepAlive {
  private readonly streams = new Set<SseStream>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly intervalMs: number) {}

  get size(): number {
    return this.streams.size;
  }

  add(s: SseStream): void {
    this.streams.add(s);
    if (!this.timer && this.intervalMs > 0) {
      this.timer = setInterval(() => {
        for (const stream of [...this.streams]) stream.keepAlive();
      }, this.intervalMs);
      this.timer.unref();
    }
  }

  delete(s: SseStream): void {
    this.streams.delete(s);
    if (this.streams.size === 0) this.stop();
  }

  /** Ends every open stream (shutdown). */
  endAll(): void {
    for (const s of [...this.streams]) s.end();
    this.stop();
  }

  private stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
