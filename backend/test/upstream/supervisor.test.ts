/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-return, @typescript-eslint/no-explicit-any -- tests read JSON loosely */
import assert from "node:assert/strict";
import { createStdioLane } from "../../src/upstream/stdio";
import { createSupervisor } from "../../src/upstream/supervisor";
import type { Lane } from "../../src/upstream/types";
import { ErrorCodes, UpstreamUnavailable } from "../../src/upstream/types";
import { killAll, ManualClock, spawnFixture, spawnStdio, textOf, until } from "./helpers";

const T = { timeoutMs: 20_000 };

/** Connects a fresh mcp-tools stdio process per attempt, counting attempts. */
function fixtureConnect(): { connect: () => Promise<Lane>; attempts: () => number } {
  let n = 0;
  return {
    attempts: () => n,
    connect: () => {
      n++;
      const proc = spawnFixture();
      return createStdioLane({
        server: "mcp-tools",
        stream: proc.stream,
        maxMessageBytes: 1 << 20,
        initializeTimeoutMs: 10_000,
      });
    },
  };
}

/** A command that exits at once: every attempt fails ("the server exited before initializing"). */
function exitingConnect(): { connect: () => Promise<Lane>; attempts: () => number } {
  let n = 0;
  return {
    attempts: () => n,
    connect: () => {
      n++;
      const proc = spawnStdio(process.execPath, ["-e", "process.exit(2)"]);
      return createStdioLane({
        server: "broken",
        stream: proc.stream,
        maxMessageBytes: 1 << 20,
        initializeTimeoutMs: 10_000,
      });
    },
  };
}

async function rejection(p: Promise<unknown>): Promise<UpstreamUnavailable> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof UpstreamUnavailable, String(err));
    return err;
  }
  throw new Error("expected a rejection");
}

describe("upstream supervisor", function () {
  this.timeout(60_000);
  afterEach(killAll);

  it("connects lazily on the first lane(); concurrent callers share one attempt", async () => {
    const f = fixtureConnect();
    const sup = createSupervisor({ server: "mcp-tools", connect: f.connect });
    assert.equal(f.attempts(), 0);
    assert.deepEqual(sup.view(), {
      server: "mcp-tools",
      state: "idle",
      failures: 0,
      lastError: null,
      readySince: null,
      inFlight: 0,
      sessionLanes: 0,
    });
    const lanes = await Promise.all(Array.from({ length: 10 }, () => sup.lane(10_000)));
    assert.equal(f.attempts(), 1);
    assert.ok(lanes.every((l) => l === lanes[0]));
    const view = sup.view();
    assert.equal(view.state, "ready");
    assert.ok(view.readySince !== null && !Number.isNaN(Date.parse(view.readySince)));
    assert.equal(await sup.lane(10_000), lanes[0]);
    assert.equal(f.attempts(), 1);
    sup.shutdown("done");
    assert.equal(await lanes[0].closed, "done");
    assert.equal(sup.view().state, "stopped");
    const stopped = await rejection(sup.lane(1000));
    assert.equal(stopped.state, "stopped");
  });

  it("a lane that ends moves to backoff; lane() after the backoff reconnects", async () => {
    const clock = new ManualClock();
    const f = fixtureConnect();
    const sup = createSupervisor({
      server: "mcp-tools",
      connect: f.connect,
      clock,
      backoff: { initialMs: 500, maxMs: 30_000 },
      settleMs: 10_000,
    });
    const first = await sup.lane(10_000);
    const crash = await first.call("tools/call", { name: "crash", arguments: {} }, T);
    assert.equal((crash as any).error.code, ErrorCodes.InternalError);
    await first.closed;
    await until(() => sup.view().state === "backoff");
    assert.equal(sup.view().failures, 1);
    assert.match(String(sup.view().lastError), /the server exited|the connection failed/);
    // A caller that cannot wait out the backoff is told at once, with when to retry.
    const early = await rejection(sup.lane(100));
    assert.equal(early.state, "backoff");
    assert.equal(early.retryAfterSeconds, 1);
    assert.equal(f.attempts(), 1);
    // One that can wait gets the new lane when the backoff has passed.
    const waiting = sup.lane(10_000);
    clock.advance(499);
    assert.equal(f.attempts(), 1);
    clock.advance(1);
    const second = await waiting;
    assert.equal(f.attempts(), 2);
    assert.notEqual(second, first);
    assert.equal(
      textOf(await second.call("tools/call", { name: "counter", arguments: {} }, T)),
      "1",
    );
    assert.equal(sup.view().state, "ready");
    assert.equal(sup.view().failures, 0);
    sup.shutdown("done");
  });

  it("doubles the backoff with each failure in a row, up to the maximum", async () => {
    const clock = new ManualClock();
    const f = exitingConnect();
    const sup = createSupervisor({
      server: "broken",
      connect: f.connect,
      clock,
      backoff: { initialMs: 1000, maxMs: 3000 },
      crashLoopFailures: 10,
    });
    const delays: number[] = [];
    for (let i = 0; i < 4; i++) {
      const err = await rejection(sup.lane(0));
      assert.match(err.message, /no lane within 0 ms|reconnecting/);
      await until(() => sup.view().state === "backoff");
      assert.equal(sup.view().failures, i + 1);
      const retry = await rejection(sup.lane(0));
      delays.push(retry.retryAfterSeconds!);
      clock.advance(retry.retryAfterSeconds! * 1000);
    }
    assert.deepEqual(delays, [1, 2, 3, 3]);
    assert.equal(f.attempts(), 4);
    sup.shutdown("done");
  });

  it("a command that exits at once ends in crash_loop: lane() rejects at once with the last error, until reset()", async () => {
    const f = exitingConnect();
    const sup = createSupervisor({
      server: "broken",
      connect: f.connect,
      backoff: { initialMs: 1, maxMs: 5 },
      crashLoopFailures: 3,
    });
    // A caller with patience rides through the backoffs until the crash loop stops it.
    const err = await rejection(sup.lane(30_000));
    assert.equal(err.state, "crash_loop");
    assert.match(
      err.message,
      /crash loop after 3 failures in a row: the server exited before initializing/,
    );
    assert.equal(f.attempts(), 3);
    const view = sup.view();
    assert.equal(view.state, "crash_loop");
    assert.equal(view.failures, 3);
    assert.match(String(view.lastError), /exited before initializing/);
    // At once and without another attempt.
    const again = await rejection(sup.lane(30_000));
    assert.equal(again.state, "crash_loop");
    assert.equal(f.attempts(), 3);
    await assert.rejects(sup.openSessionLane(1000), UpstreamUnavailable);
    sup.reset();
    assert.equal(sup.view().state, "idle");
    assert.equal(sup.view().failures, 0);
    await rejection(sup.lane(30_000));
    assert.equal(f.attempts(), 6);
    sup.shutdown("done");
  });

  it("a lane that ends within the settle window counts toward the crash loop; one that ran longer starts the count again", async () => {
    const clock = new ManualClock();
    const f = fixtureConnect();
    const sup = createSupervisor({
      server: "mcp-tools",
      connect: f.connect,
      clock,
      backoff: { initialMs: 10, maxMs: 10 },
      crashLoopFailures: 3,
      settleMs: 5_000,
    });
    const crashOnce = async (afterMs: number) => {
      const lane = await sup.lane(10_000);
      clock.advance(afterMs);
      await lane.call("tools/call", { name: "crash", arguments: {} }, T);
      await until(() => sup.view().state !== "ready");
      clock.advance(10);
    };
    await crashOnce(0);
    await crashOnce(0);
    assert.equal(sup.view().failures, 2);
    await crashOnce(6_000); // ran past the settle window: a new count
    assert.equal(sup.view().failures, 1);
    await crashOnce(0);
    await crashOnce(0);
    assert.equal(sup.view().state, "crash_loop");
    assert.equal(f.attempts(), 5);
    sup.shutdown("done");
  });

  it("lane(timeoutMs) never waits longer than asked; a late lane is kept for the next caller", async () => {
    const clock = new ManualClock();
    let release!: (l: Lane) => void;
    let attempts = 0;
    const sup = createSupervisor({
      server: "slow",
      clock,
      connect: () => {
        attempts++;
        return new Promise<Lane>((r) => (release = r));
      },
    });
    const p = sup.lane(250);
    clock.advance(250);
    const err = await rejection(p);
    assert.equal(err.state, "connecting");
    assert.match(err.message, /no lane within 250 ms/);
    // The attempt goes on: the next caller gets its lane.
    const next = sup.lane(10_000);
    const proc = spawnFixture();
    release(
      await createStdioLane({
        server: "slow",
        stream: proc.stream,
        maxMessageBytes: 1 << 20,
        initializeTimeoutMs: 10_000,
      }),
    );
    assert.equal((await next).server, "slow");
    assert.equal(attempts, 1);
    sup.shutdown("done");
  });

  it("a connect that never finishes fails after connectTimeoutMs", async () => {
    const clock = new ManualClock();
    const sup = createSupervisor({
      server: "stuck",
      clock,
      connect: () => new Promise<Lane>(() => undefined),
      connectTimeoutMs: 1000,
      crashLoopFailures: 1,
    });
    const p = sup.lane(5000);
    clock.advance(1000);
    const err = await rejection(p);
    assert.equal(err.state, "crash_loop");
    assert.match(err.message, /connecting took longer than 1000 ms/);
  });

  it("counts per-session lanes and closes them on shutdown", async () => {
    const f = fixtureConnect();
    const s = fixtureConnect();
    const sup = createSupervisor({
      server: "mcp-tools",
      connect: f.connect,
      openSessionLane: s.connect,
    });
    const shared = await sup.lane(10_000);
    const a = await sup.openSessionLane(10_000);
    const b = await sup.openSessionLane(10_000);
    assert.equal(sup.view().sessionLanes, 2);
    // Each is a process of its own.
    const pid = async (l: Lane) =>
      JSON.parse(textOf(await l.call("tools/call", { name: "whoami", arguments: {} }, T))).pid;
    assert.equal(new Set([await pid(shared), await pid(a), await pid(b)]).size, 3);
    const slow = a.call("tools/call", { name: "slow", arguments: { steps: 1, ms: 30_000 } }, T);
    await until(() => sup.view().inFlight === 1);
    b.close("session over");
    await until(() => sup.view().sessionLanes === 1);
    sup.shutdown("backend stopping");
    assert.deepEqual(await slow, {
      error: { code: ErrorCodes.InternalError, message: "backend stopping" },
    });
    assert.equal(await a.closed, "backend stopping");
    assert.equal(await shared.closed, "backend stopping");
    assert.equal(sup.view().sessionLanes, 0);
    const none = createSupervisor({ server: "x", connect: f.connect });
    await assert.rejects(none.openSessionLane(1000), /no per-session lanes/);
  });
});
