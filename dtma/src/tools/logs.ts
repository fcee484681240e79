import type { ServerResponse } from "node:http";
import type { Readable } from "node:stream";
import { HttpError } from "@agentopia-toolboxes/servicekit/http";
import type { LogEntry } from "../api";
import { FrameReader, STDERR } from "../docker/demux";
import { DockerError, type DockerEngine } from "../docker/engine";

// GET /tools/:name/logs (issue 13, item 2). A tool is untrusted: what it prints is bounded
// before it costs the DTMA memory. Docker's log stream is read as it arrives, never whole; each
// line is cut at `maxLineBytes`, and a window keeps the newest lines whose answer fits in
// `maxBytes` (and at most `tail` of them). The answer is written from that window with its exact
// length, honouring backpressure. At most `maxReads` reads run at once (429 beyond).

export interface LogLimits {
  /** Bytes of the answer's entries at most (DTMA_LOGS_MAX_BYTES). */
  maxBytes: number;
  /** Bytes of one line at most; a longer line is cut (DTMA_LOGS_MAX_LINE_BYTES). */
  maxLineBytes: number;
  /** Log reads at once (DTMA_MAX_LOG_READS). */
  maxReads: number;
}

const EMPTY = Buffer.alloc(0);
/** How long one read of Docker's log may take before it is abandoned. */
const READ_DEADLINE_MS = 60_000;
const STREAMS = ["stdout", "stdout", "stderr"] as const;

/** A line being read: its bytes so far in a buffer of maxLineBytes, reused for every line. */
interface Partial {
  buf: Buffer | undefined;
  size: number;
  cut: boolean;
}

/** The newest lines of a multiplexed log that fit the limits, as serialized entries. */
export class LogWindow {
  /** JSON of each kept entry, oldest first, from `head` on. */
  private entries: string[] = [];
  private head = 0;
  private bytes = 0;
  private readonly frames = new FrameReader();
  private readonly partial: Record<LogEntry["stream"], Partial> = {
    stdout: { buf: undefined, size: 0, cut: false },
    stderr: { buf: undefined, size: 0, cut: false },
  };
  /** Lines were cut or dropped for the byte limits (not for `tail`). */
  truncated = false;

  constructor(
    private readonly tail: number,
    private readonly limits: Pick<LogLimits, "maxBytes" | "maxLineBytes">,
    /** Only this stream type is kept (a stdio tool's logs: stderr). */
    private readonly only?: number,
  ) {}

  /** A chunk of Docker's multiplexed stream. */
  write(chunk: Buffer): void {
    this.frames.feed(chunk, (type, bytes) => {
      if (this.only !== undefined && type !== this.only) return;
      this.text(STREAMS[type] ?? "stdout", bytes);
    });
  }

  /** The rest of an unfinished line of each stream becomes a line. */
  end(): void {
    for (const stream of ["stdout", "stderr"] as const) {
      if (this.partial[stream].size > 0 || this.partial[stream].cut) this.line(stream);
    }
  }

  /** Number of entries kept. */
  get size(): number {
    return this.entries.length - this.head;
  }

  /** The kept entries, oldest first, as JSON texts. */
  serialized(): string[] {
    return this.entries.slice(this.head);
  }

  private text(stream: LogEntry["stream"], bytes: Buffer): void {
    let start = 0;
    for (;;) {
      const nl = bytes.indexOf(0x0a, start);
      this.append(stream, bytes.subarray(start, nl < 0 ? bytes.length : nl));
      if (nl < 0) return;
      this.line(stream);
      start = nl + 1;
    }
  }

  private append(stream: LogEntry["stream"], piece: Buffer): void {
    const p = this.partial[stream];
    const room = this.limits.maxLineBytes - p.size;
    if (piece.length > room) {
      p.cut = true;
      piece = piece.subarray(0, Math.max(0, room));
    }
    if (piece.length === 0) return;
    // Copied into the line's own buffer: no allocation per piece, and the chunk it came from is
    // not kept alive by it.
    p.buf ??= Buffer.allocUnsafe(this.limits.maxLineBytes);
    piece.copy(p.buf, p.size);
    p.size += piece.length;
  }

  private line(stream: LogEntry["stream"]): void {
    const p = this.partial[stream];
    let raw = p.buf ? p.buf.subarray(0, p.size) : EMPTY;
    if (p.cut) {
      raw = wholeCharacters(raw);
      this.truncated = true;
    }
    p.size = 0;
    p.cut = false;
    const json = `{"stream":"${stream}","text":${JSON.stringify(raw.toString("utf8"))}}`;
    this.entries.push(json);
    this.bytes += Buffer.byteLength(json) + 1;
    while (this.size > this.tail || this.bytes > this.limits.maxBytes) {
      if (this.size <= this.tail) this.truncated = true;
      this.bytes -= Buffer.byteLength(this.entries[this.head]) + 1;
      this.head += 1;
    }
    if (this.head > 1024 && this.head * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.head = 0;
    }
  }
}

/** `b` without a UTF-8 character the cut left unfinished at its end. */
function wholeCharacters(b: Buffer): Buffer {
  let i = b.length - 1;
  while (i >= 0 && b.length - i < 4 && (b[i] & 0xc0) === 0x80) i--;
  if (i < 0) return b;
  const lead = b[i];
  const need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
  return b.length - i < need ? b.subarray(0, i) : b;
}

/** Reads tools' logs within the limits; one instance per DTMA. */
export class LogReader {
  private reading = 0;

  constructor(
    private readonly docker: DockerEngine,
    private readonly limits: LogLimits,
  ) {}

  /**
   * Answers the logs of container `id` on `res`. A stdio tool's stdout is its protocol channel
   * (tool results): only its stderr is a log, read from `since` to its end because Docker
   * applies `tail` before it drops a stream.
   */
  async answer(
    res: ServerResponse,
    opts: { name: string; id: string; stdio: boolean; tail: number; since: number },
    signal: AbortSignal,
  ): Promise<void> {
    if (this.reading >= this.limits.maxReads) {
      throw new HttpError(
        429,
        "too_many_log_reads",
        `at most ${this.limits.maxReads} log reads run at once; retry shortly`,
        undefined,
        undefined,
        { "retry-after": "1" },
      );
    }
    this.reading += 1;
    try {
      const window = new LogWindow(opts.tail, this.limits, opts.stdio ? STDERR : undefined);
      if (opts.tail > 0) await this.read(window, opts, signal);
      await write(res, opts.name, window, signal);
    } finally {
      this.reading -= 1;
    }
  }

  private async read(
    window: LogWindow,
    opts: { id: string; stdio: boolean; tail: number; since: number },
    signal: AbortSignal,
  ): Promise<void> {
    const query = opts.stdio
      ? `stdout=0&stderr=1&tail=all&since=${opts.since}`
      : `stdout=1&stderr=1&tail=${opts.tail}&since=${opts.since}`;
    const deadline = AbortSignal.any([signal, AbortSignal.timeout(READ_DEADLINE_MS)]);
    let log: Readable;
    try {
      log = await this.docker.logStream(opts.id, query, deadline);
      for await (const chunk of log) window.write(chunk as Buffer);
    } catch (err) {
      if (signal.aborted) throw new HttpError(499, "client_closed", "the caller went away");
      if (deadline.aborted)
        throw new HttpError(504, "logs_timeout", "Docker did not send the log in time");
      if (err instanceof DockerError && err.statusCode === 404)
        throw new HttpError(404, "tool_not_found", "the tool's container is gone", "name");
      if (err instanceof DockerError)
        throw new HttpError(502, "docker_failed", `Docker refused the log: ${err.message}`);
      throw err;
    }
    window.end();
  }
}

/** Writes the answer from the window: exact length, chunks of ~64 KiB, waiting for drain. */
async function write(
  res: ServerResponse,
  name: string,
  window: LogWindow,
  signal: AbortSignal,
): Promise<void> {
  const entries = window.serialized();
  const head = `{"name":${JSON.stringify(name)},"truncated":${window.truncated},"entries":[`;
  let length = Buffer.byteLength(head) + 2 + Math.max(0, entries.length - 1);
  for (const e of entries) length += Buffer.byteLength(e);
  res.writeHead(200, {
    "content-type": "application/json; charset=utf-8",
    "content-length": length,
    "cache-control": "no-store",
  });
  let batch = head;
  for (let i = 0; i < entries.length; i++) {
    batch += (i ? "," : "") + entries[i];
    if (batch.length >= 65_536) {
      if (!res.write(batch)) await drained(res, signal);
      batch = "";
    }
    if (signal.aborted) return void res.destroy();
  }
  res.end(`${batch}]}`);
}

function drained(res: ServerResponse, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off("drain", done);
      signal.removeEventListener("abort", done);
      resolve();
    };
    res.once("drain", done);
    signal.addEventListener("abort", done, { once: true });
  });
}
