import { Transform, type TransformCallback } from "node:stream";

/** Docker's stream types in a multiplexed frame header. */
export const STDOUT = 1;
export const STDERR = 2;

const EMPTY: Buffer = Buffer.alloc(0);

/**
 * Reads Docker's frame headers across chunk boundaries, holding at most one 8-byte header
 * between chunks, and hands each piece of a frame's payload on as it arrives (never a whole
 * frame buffered, so a big frame costs no memory).
 */
export class FrameReader {
  private header: Buffer = EMPTY;
  /** Payload bytes of the current frame still to come, and its stream type. */
  private remaining = 0;
  private type = 0;

  feed(chunk: Buffer, onPayload: (type: number, bytes: Buffer) => void): void {
    let offset = 0;
    while (offset < chunk.length) {
      if (this.remaining > 0) {
        const end = Math.min(chunk.length, offset + this.remaining);
        onPayload(this.type, chunk.subarray(offset, end));
        this.remaining -= end - offset;
        offset = end;
        continue;
      }
      const take = chunk.subarray(offset, offset + 8 - this.header.length);
      offset += take.length;
      this.header = this.header.length ? Buffer.concat([this.header, take]) : take;
      if (this.header.length < 8) break;
      this.type = this.header[0];
      this.remaining = this.header.readUInt32BE(4);
      this.header = EMPTY;
    }
  }
}

/** The same frames as a stream: passes on the payload of one stream's frames only. */
export class FrameFilter extends Transform {
  private readonly reader = new FrameReader();

  constructor(private readonly stream: typeof STDOUT | typeof STDERR) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.reader.feed(chunk, (type, bytes) => {
      if (type === this.stream) this.push(bytes);
    });
    done();
  }
}
