// Newline-delimited framing with a per-line cap, for stdio JSON-RPC and for SSE lines. A line
// longer than the cap is never buffered whole: once it passes the cap its bytes are discarded up
// to the next newline, keeping only its first and last bytes so that the id of the call it
// answers can still be found (jsonrpc.ts: findResponseId).

/** How many bytes of an over-long line are kept at each end. */
export const OVERFLOW_EDGE_BYTES = 256;

export interface Overflow {
  /** The line's first bytes (at most OVERFLOW_EDGE_BYTES). */
  head: Buffer;
  /** The line's last bytes before the newline (at most OVERFLOW_EDGE_BYTES, no trailing CR). */
  tail: Buffer;
  /** The line's whole length in bytes. */
  bytes: number;
}

export interface LineSink {
  line(line: Buffer): void;
  overflow(overflow: Overflow): void;
}

const NL = 0x0a;
const CR = 0x0d;

function withoutCr(b: Buffer): Buffer {
  return b.length > 0 && b[b.length - 1] === CR ? b.subarray(0, b.length - 1) : b;
}

export class LineDecoder {
  private parts: Buffer[] = [];
  private size = 0;
  /** Discarding an over-long line: its head and the rolling tail. */
  private head: Buffer | null = null;
  private tail: Buffer = Buffer.alloc(0);

  constructor(
    private readonly maxLineBytes: number,
    private readonly sink: LineSink,
  ) {
    if (!(maxLineBytes > 0)) throw new RangeError("maxLineBytes must be positive");
  }

  push(chunk: Buffer | string): void {
    let buf = typeof chunk === "string" ? Buffer.from(chunk, "utf8") : chunk;
    while (buf.length > 0) {
      const nl = buf.indexOf(NL);
      const segment = nl === -1 ? buf : buf.subarray(0, nl);
      this.take(segment);
      if (nl === -1) return;
      this.finishLine();
      buf = buf.subarray(nl + 1);
    }
  }

  /** The stream ended: a last line without a newline still counts. */
  end(): void {
    if (this.size > 0 || this.head !== null) this.finishLine();
  }

  /** Forgets a partial line (an SSE stream that ended mid-event). */
  reset(): void {
    this.parts = [];
    this.size = 0;
    this.head = null;
    this.tail = Buffer.alloc(0);
  }

  private take(segment: Buffer): void {
    if (segment.length === 0) return;
    if (this.head === null) {
      if (this.size + segment.length <= this.maxLineBytes) {
        this.parts.push(segment);
        this.size += segment.length;
        return;
      }
      // Over the cap: keep the first bytes, drop the rest of what was gathered.
      const gathered = Buffer.concat([...this.parts, segment]);
      this.head = Buffer.from(gathered.subarray(0, OVERFLOW_EDGE_BYTES));
      this.tail = Buffer.from(
        gathered.subarray(Math.max(0, gathered.length - OVERFLOW_EDGE_BYTES - 1)),
      );
      this.parts = [];
      this.size += segment.length;
      return;
    }
    this.size += segment.length;
    const joined = Buffer.concat([this.tail, segment]);
    this.tail = Buffer.from(joined.subarray(Math.max(0, joined.length - OVERFLOW_EDGE_BYTES - 1)));
  }

  private finishLine(): void {
    if (this.head !== null) {
      // One byte more than the edge is kept so that a CR before the newline can be dropped.
      const tail = withoutCr(this.tail);
      const overflow: Overflow = {
        head: this.head,
        tail: tail.subarray(Math.max(0, tail.length - OVERFLOW_EDGE_BYTES)),
        bytes: this.size,
      };
      this.reset();
      this.sink.overflow(overflow);
      return;
    }
    const line = this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts, this.size);
    this.parts = [];
    this.size = 0;
    this.sink.line(withoutCr(line));
  }
}
