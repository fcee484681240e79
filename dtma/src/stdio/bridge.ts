import { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { FrameFilter, STDOUT } from "../docker/demux";

// Joins a caller's upgraded socket to a hijacked Docker stream: the caller's bytes go to the
// process's stdin as they are, the process's stdout (demultiplexed) comes back. Nothing is
// parsed or buffered beyond the streams' own high-water marks, so backpressure reaches the tool.

/** What the caller leaving does to the Docker side. */
export type CallerGone =
  /** The attachment: drop the connection; the tool keeps running with its stdin open. */
  | "detach"
  /** A lane: end the process's stdin (EOF) and hold on until the process exits. */
  | "eof";

type EndReason = "caller closed" | "tool exited" | "dtma stopped";

export interface Bridge {
  /** Resolves once the Docker side has closed: the attachment is over, the lane's process gone. */
  readonly done: Promise<EndReason>;
  /** Ends both sides at once (DTMA shutdown). */
  destroy(): void;
}

// A caller that vanishes without closing (a network cut) is noticed by keep-alive probes rather
// than holding the tool's one attachment for ever.
const KEEPALIVE_MS = 30_000;

export function bridge(caller: Duplex, head: Buffer, docker: Socket, onGone: CallerGone): Bridge {
  const stdout = new FrameFilter(STDOUT);
  let reason: EndReason | undefined;
  let left = false;
  caller.on("error", () => caller.destroy());
  if (caller instanceof Socket) caller.setKeepAlive(true, KEEPALIVE_MS);

  const leave = () => {
    if (left) return;
    left = true;
    reason ??= "caller closed";
    stdout.unpipe(caller);
    stdout.resume(); // what the process still writes is dropped
    caller.end();
    if (onGone === "detach") docker.destroy();
    else docker.end();
  };
  caller.once("end", leave);
  caller.once("close", leave);

  if (head.length) docker.write(head);
  caller.pipe(docker, { end: false });
  // When the process exits Docker ends the stream: the rest of stdout reaches the caller, then
  // its socket is ended.
  docker.pipe(stdout).pipe(caller);
  const done = new Promise<EndReason>((resolve) => {
    const closed = () => {
      reason ??= "tool exited";
      if (!stdout.writableEnded) stdout.end();
      resolve(reason);
    };
    // It may have broken while the attachment was being opened.
    if (docker.closed) closed();
    else docker.once("close", closed);
  });
  return {
    done,
    destroy() {
      reason ??= "dtma stopped";
      caller.destroy();
      docker.destroy();
    },
  };
}
