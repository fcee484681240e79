// An incremental `text/event-stream` parser with the message cap. Lines end with LF or CRLF (a
// stream framed with bare CRs only reads as one over-long line and is dropped). An event whose
// data passes the cap is never held whole: the parser keeps its first and last bytes and reports
// it as oversized, with the id of the response it probably is.
import type { Overflow } from "./framing";
import { LineDecoder, OVERFLOW_EDGE_BYTES } from "./framing";
import { findResponseId } from "./jsonrpc";

export interface SseSink {
  /** A complete `message` event's data. */
  event(data: string): void;
  /** An event over the cap was dropped; `id` is the response id found at its edges, if any. */
  oversized(id: number | undefined): void;
}

/** Room for a field name ("data: ") beyond the data cap on one line. */
const LINE_SLACK = 16;

export class SseParser {
  private readonly lines: LineDecoder;
  private data: string[] = [];
  private dataBytes = 0;
  private type = "";
  private over = false;
  private overHead = "";
  private overTail = "";

  constructor(
    private readonly maxEventBytes: number,
    private readonly sink: SseSink,
  ) {
    this.lines = new LineDecoder(maxEventBytes + LINE_SLACK, {
      line: (line) => this.line(line.toString("utf8")),
      overflow: (o) => this.overflow(o),
    });
  }

  push(chunk: Buffer | string): void {
    this.lines.push(chunk);
  }

  /** The stream ended: an unfinished event is discarded, as the SSE standard says. */
  end(): void {
    this.lines.reset();
    this.clear();
  }

  private line(line: string): void {
    if (line === "") return this.dispatch();
    if (line.startsWith(":")) return;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") this.type = value;
    else if (field === "data") this.addData(value);
    // `id` and `retry` are not used: the gateway does not resume streams.
  }

  private addData(value: string): void {
    if (this.over) {
      this.overTail = (this.overTail + "\n" + value).slice(-OVERFLOW_EDGE_BYTES);
      return;
    }
    const bytes = Buffer.byteLength(value) + (this.data.length > 0 ? 1 : 0);
    if (this.dataBytes + bytes > this.maxEventBytes) {
      const joined = [...this.data, value].join("\n");
      this.markOver(joined.slice(0, OVERFLOW_EDGE_BYTES), joined.slice(-OVERFLOW_EDGE_BYTES));
      return;
    }
    this.data.push(value);
    this.dataBytes += bytes;
  }

  private overflow(o: Overflow): void {
    const head = o.head.toString("utf8");
    const match = /^data: ?/.exec(head);
    if (!match) return; // an over-long comment or other field: nothing to keep
    const tail = o.tail.toString("utf8");
    if (this.over) {
      this.overTail = tail;
      return;
    }
    const start = this.data.length > 0 ? this.data[0] : head.slice(match[0].length);
    this.markOver(start.slice(0, OVERFLOW_EDGE_BYTES), tail);
  }

  private markOver(head: string, tail: string): void {
    this.over = true;
    this.overHead = head;
    this.overTail = tail;
    this.data = [];
    this.dataBytes = 0;
  }

  private dispatch(): void {
    const type = this.type || "message";
    if (this.over) {
      const id = type === "message" ? findResponseId(this.overHead, this.overTail) : undefined;
      this.clear();
      this.sink.oversized(id);
      return;
    }
    const data = this.data;
    this.clear();
    if (data.length === 0 || type !== "message") return;
    this.sink.event(data.join("\n"));
  }

  private clear(): void {
    this.data = [];
    this.dataBytes = 0;
    this.type = "";
    this.over = false;
    this.overHead = "";
    this.overTail = "";
  }
}
