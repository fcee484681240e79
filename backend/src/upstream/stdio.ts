// A lane over a stdio MCP server's byte stream: the DTMA's attachment in production, a child
// process's stdio or `docker run -i` in tests. Newline-delimited JSON-RPC with the line cap; the
// gateway initializes the server itself (or adopts the result of an earlier lane on the same
// process). Writes wait for `drain`, and the lane refuses new calls once too much is queued.
import type { Duplex } from "node:stream";
import { LaneCore } from "./core";
import type { CommonLaneOptions, LaneTransport, OutgoingResponse, UpstreamLane } from "./transport";
import { LineDecoder } from "./framing";
import { errorOutcome, findResponseId, parseJson } from "./jsonrpc";
import type { InitializeResult, JsonRpcNotification, JsonRpcRequest } from "./types";
import { ErrorCodes } from "./types";

export interface StdioLaneOptions extends CommonLaneOptions {
  /** The server's stdio: what it writes is read, what the lane writes reaches its stdin. */
  stream: Duplex;
  /**
   * The InitializeResult of an earlier lane on the same, still running process: the handshake
   * is skipped (the server would refuse a second initialize).
   */
  reuse?: InitializeResult;
  /** Queued bytes the server has not read yet beyond which new calls get `Unavailable`. Default 8 MiB. */
  maxQueuedBytes?: number;
  /** After `close`, the stream is ended at once and destroyed after this long. Default 1000 ms. */
  closeGraceMs?: number;
}

interface Queued {
  line: string;
  bytes: number;
  id: number | undefined;
}

/** Creates the lane and initializes the server; rejects (stream released) when that fails. */
export async function createStdioLane(opts: StdioLaneOptions): Promise<UpstreamLane> {
  const { stream } = opts;
  const maxQueued = opts.maxQueuedBytes ?? 8 * 1024 * 1024;
  const core = new LaneCore(opts);
  const queue: Queued[] = [];
  let queuedBytes = 0;
  let waitingForDrain = false;
  let shut = false;

  const flush = (): void => {
    waitingForDrain = false;
    while (queue.length > 0 && !shut) {
      const next = queue.shift()!;
      queuedBytes -= next.bytes;
      if (!stream.write(next.line)) {
        waitingForDrain = true;
        stream.once("drain", flush);
        return;
      }
    }
  };

  const send = (line: string, id?: number): void => {
    if (shut) return;
    if (waitingForDrain) {
      const bytes = Buffer.byteLength(line);
      if (id !== undefined && queuedBytes + bytes > maxQueued) {
        core.settle(
          id,
          errorOutcome(ErrorCodes.Unavailable, "the server is not reading its input (queue full)"),
        );
        return;
      }
      queue.push({ line, bytes, id });
      queuedBytes += bytes;
      return;
    }
    if (!stream.write(line)) {
      waitingForDrain = true;
      stream.once("drain", flush);
    }
  };

  const onData = (chunk: Buffer | string): void => decoder.push(chunk);
  const onEnd = (): void => {
    decoder.end();
    core.close("the server exited");
  };
  const onError = (err: Error): void => core.close(`the connection failed: ${err.message}`);
  const onClose = (): void => core.close("the server exited");

  const transport: LaneTransport = {
    request: (message: JsonRpcRequest) =>
      send(`${JSON.stringify(message)}\n`, message.id as number),
    notify: (message: JsonRpcNotification) => send(`${JSON.stringify(message)}\n`),
    respond: (message: OutgoingResponse) => send(`${JSON.stringify(message)}\n`),
    withdraw: (id: number) => {
      const at = queue.findIndex((q) => q.id === id);
      if (at === -1) return false;
      queuedBytes -= queue[at].bytes;
      queue.splice(at, 1);
      return true;
    },
    shutdown: () => {
      shut = true;
      queue.length = 0;
      queuedBytes = 0;
      stream.off("data", onData);
      stream.off("end", onEnd);
      stream.off("close", onClose);
      stream.off("drain", flush);
      // A late error on a released stream must not go unhandled.
      stream.off("error", onError);
      stream.on("error", () => undefined);
      if (!stream.destroyed) {
        // EOF on stdin: a stdio server exits; the stream is destroyed if it lingers.
        stream.end();
        const grace = setTimeout(() => stream.destroy(), opts.closeGraceMs ?? 1000);
        grace.unref();
      }
    },
  };

  const decoder = new LineDecoder(opts.maxMessageBytes, {
    line: (line) => {
      if (line.length === 0) return;
      const value = parseJson(line.toString("utf8"));
      if (value === undefined) {
        core.stats.invalid++;
        return;
      }
      core.receive(value);
    },
    overflow: (o) => {
      const id = findResponseId(o.head.toString("utf8"), o.tail.toString("utf8"));
      core.oversized(id !== undefined && core.waitsFor(id) ? id : undefined);
    },
  });

  core.attach(transport);
  stream.on("data", onData);
  stream.on("end", onEnd);
  stream.on("error", onError);
  stream.on("close", onClose);
  if (stream.destroyed || stream.readableEnded) core.close("the server exited");

  if (opts.reuse) {
    core.adopt(opts.reuse);
    if (core.ended) throw new Error("the server exited before the lane was attached");
    return core;
  }
  await core.handshake();
  return core;
}

/** What the DTMA client's `attach` / `openLane` give: the stdio stream and the process's start. */
interface StdioAttachment {
  stream: Duplex;
  /** The container's State.StartedAt when the stream opened; a new value means a new process. */
  startedAt: string | null;
}

export interface StdioConnectorOptions extends Omit<StdioLaneOptions, "stream" | "reuse"> {
  /** Opens the attachment, e.g. `() => dtma.attach(name)`. */
  attach: () => Promise<StdioAttachment>;
}

/**
 * A `connect` for the supervisor over re-openable attachments to one process: the first lane
 * initializes the server; a later one on the same process (the same `startedAt`, e.g. after the
 * attachment dropped while the server kept running) reuses that InitializeResult, since the
 * server would refuse a second initialize. A new process (or an unknown start) is initialized.
 */
export function createStdioConnector(opts: StdioConnectorOptions): () => Promise<UpstreamLane> {
  let last: { startedAt: string; result: InitializeResult } | null = null;
  return async () => {
    const { attach, ...laneOpts } = opts;
    const { stream, startedAt } = await attach();
    const reuse =
      startedAt !== null && last !== null && last.startedAt === startedAt ? last.result : undefined;
    const lane = await createStdioLane({ ...laneOpts, stream, reuse });
    last = startedAt === null ? null : { startedAt, result: lane.initialize };
    return lane;
  };
}
