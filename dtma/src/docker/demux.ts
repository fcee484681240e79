import { type Readable, Transform, type TransformCallback } from "node:stream";
import { StringDecoder } from "node:string_decoder";
import type { LogEntry } from "../api";

/**
 * Splits Docker's multiplexed log stream (8-byte frame headers: stream type, 3 zero bytes,
 * big-endian length) into ordered lines per stream. A TTY container's log is one raw stream.
 */
export function demuxLogs(buf: Buffer, tty: boolean): LogEntry[] {
  if (tty) return toLines("stdout", buf.toString("utf8"));
  const entries: LogEntry[] = [];
  let offset = 0;
  while (offset + 8 <= buf.length) {
    const type = buf[offset];
    const size = buf.readUInt32BE(offset + 4);
    const frame = buf.subarray(offset + 8, Math.min(buf.length, offset + 8 + size));
    offset += 8 + size;
    entries.push(...toLines(type === 2 ? "stderr" : "stdout", frame.toString("utf8")));
  }
  return entries;
}

function toLines(stream: LogEntry["stream"], text: string): LogEntry[] {
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  return lines.map((line) => ({ stream, text: line }));
}

/** Docker's stream types in a multiplexed frame header. */
export const STDOUT = 1;
export const STDERR = 2;

const EMPTY: Buffer = Buffer.alloc(0);

/**
 * The same frames as a stream: passes on the payload of one stream's frames only, whatever the
 * chunk boundaries, holding at most one 8-byte header between chunks. A frame's payload is
 * passed on as it arrives, never buffered whole, so a big frame costs no memory.
 */
export class FrameFilter extends Transform {
  private header: Buffer = EMPTY;
  /** Payload bytes of the current frame still to come, and whether they are passed on. */
  private remaining = 0;
  private keep = false;

  constructor(private readonly stream: typeof STDOUT | typeof STDERR) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    let offset = 0;
    while (offset < chunk.length) {
      if (this.remaining > 0) {
        const end = Math.min(chunk.length, offset + this.remaining);
        if (this.keep) this.push(chunk.subarray(offset, end));
        this.remaining -= end - offset;
        offset = end;
        continue;
      }
      const take = chunk.subarray(offset, offset + 8 - this.header.length);
      offset += take.length;
      this.header = this.header.length ? Buffer.concat([this.header, take]) : take;
      if (this.header.length < 8) break;
      this.keep = this.header[0] === this.stream;
      this.remaining = this.header.readUInt32BE(4);
      this.header = EMPTY;
    }
    done();
  }
}

/** The last `n` lines of a text stream, read to its end while keeping only those. */
export async function lastLines(
  text: Readable,
  stream: LogEntry["stream"],
  n: number,
): Promise<LogEntry[]> {
  const decoder = new StringDecoder("utf8");
  let lines: string[] = [];
  let partial = "";
  const add = (s: string) => {
    const parts = (partial + s).split("\n");
    partial = parts.pop()!;
    lines.push(...parts);
    if (lines.length > 2 * n + 1024) lines = lines.slice(-n);
  };
  for await (const chunk of text) add(decoder.write(chunk as Buffer));
  add(decoder.end());
  if (partial) lines.push(partial);
  return lines.slice(-n).map((line) => ({ stream, text: line }));
}
