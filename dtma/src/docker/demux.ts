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
