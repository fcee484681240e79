/* eslint-disable @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-return, @typescript-eslint/no-explicit-any -- tests read JSON loosely */
// What the upstream tests share: real MCP servers as child processes (the mcp-tools fixture in
// stdio and http modes, the DTMA's stateless mcp-echo, server-everything under `docker run -i`),
// a Duplex that records every line the lane writes, scripted in-process servers, a recording
// HTTP proxy and a clock moved by hand.
import { execFile, spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import http from "node:http";
import net from "node:net";
import path from "node:path";
import { Duplex, duplexPair } from "node:stream";
import { promisify } from "node:util";
import type { Clock } from "../../src/upstream/supervisor";

const exec = promisify(execFile);

const REPO = path.resolve(__dirname, "../../..");
const MCP_TOOLS = path.join(REPO, "backend/test/fixtures/mcp-tools");
export const STDIO_FIXTURE = path.join(MCP_TOOLS, "stdio.mjs");
export const HTTP_FIXTURE = path.join(MCP_TOOLS, "http.mjs");
export const STATELESS_FIXTURE = path.join(REPO, "dtma/test/fixtures/mcp-echo/server.mjs");
export const EVERYTHING_IMAGE = "agentopia-test/mcp-everything:latest";

/** A Duplex in front of another that records each line written through it (what the server got). */
class Recorder extends Duplex {
  readonly lines: string[] = [];
  private partial = "";

  constructor(private readonly inner: Duplex) {
    super();
    inner.on("data", (chunk: Buffer) => {
      if (!this.push(chunk)) inner.pause();
    });
    inner.on("end", () => this.push(null));
    inner.on("error", (err) => this.destroy(err));
    inner.on("close", () => {
      if (!this.readableEnded) this.push(null);
    });
  }

  override _read(): void {
    this.inner.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    const text = this.partial + chunk.toString("utf8");
    const parts = text.split("\n");
    this.partial = parts.pop() ?? "";
    this.lines.push(...parts);
    if (this.inner.destroyed || this.inner.writableEnded) return cb();
    this.inner.write(chunk, (err) => cb(err));
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.inner.end();
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.inner.destroy();
    cb(err);
  }

  /** The messages written, parsed. */
  messages(): any[] {
    return this.lines.filter((l) => l.length > 0).map((l) => JSON.parse(l));
  }

  /** Everything written, as one string. */
  text(): string {
    return this.lines.join("\n") + this.partial;
  }
}

export interface Proc {
  child: ChildProcess;
  /** The child's stdio as one Duplex, recorded. */
  stream: Recorder;
  exited: Promise<number | null>;
  kill(): Promise<void>;
}

const procs = new Set<Proc>();

/** Starts a process whose stdio is an MCP server's (stderr ignored). */
export function spawnStdio(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv = {},
  cleanup?: () => Promise<unknown>,
): Proc {
  const child = spawn(command, args, {
    stdio: ["pipe", "pipe", "ignore"],
    env: { ...process.env, ...env },
  });
  const raw = Duplex.from({ readable: child.stdout, writable: child.stdin });
  raw.on("error", () => undefined);
  const exited = new Promise<number | null>((resolve) =>
    child.once("exit", (code) => resolve(code)),
  );
  const stream = new Recorder(raw);
  // Killing the process breaks the pipe; a test that has let go of the stream must not crash.
  stream.on("error", () => undefined);
  const proc: Proc = {
    child,
    stream,
    exited,
    kill: async () => {
      await cleanup?.().catch(() => undefined);
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exited;
      procs.delete(proc);
    },
  };
  procs.add(proc);
  return proc;
}

export function spawnFixture(): Proc {
  return spawnStdio(process.execPath, [STDIO_FIXTURE]);
}

/** Kills every process the helpers started and that is still running. */
export async function killAll(): Promise<void> {
  await Promise.all([...procs].map((p) => p.kill()));
}

/** A server scripted in the test, over an in-process pipe: it gets each message the lane sends. */
export interface Scripted {
  /** The lane's end of the pipe. */
  stream: Duplex;
  /** Every message the lane wrote. */
  received: any[];
  /** Writes raw text to the lane (a line, or part of one). */
  write(text: string): void;
  send(message: unknown): void;
  /** Ends the server's side: the lane sees the server exit. */
  end(): void;
}

export function scriptedServer(
  onMessage: (m: any, server: Scripted) => void,
  opts: { answerInitialize?: boolean } = {},
): Scripted {
  const [lane, server] = duplexPair();
  const received: any[] = [];
  let buf = "";
  const s: Scripted = {
    stream: lane,
    received,
    write: (text) => void server.write(text),
    send: (message) => void server.write(`${JSON.stringify(message)}\n`),
    end: () => server.end(),
  };
  server.on("data", (chunk: Buffer) => {
    buf += chunk.toString("utf8");
    let nl: number;
    while ((nl = buf.indexOf("\n")) !== -1) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (!line) continue;
      const m = JSON.parse(line);
      received.push(m);
      if (m.method === "initialize" && opts.answerInitialize !== false) {
        s.send({ jsonrpc: "2.0", id: m.id, result: INIT_RESULT });
        continue;
      }
      onMessage(m, s);
    }
  });
  server.on("end", () => server.end());
  server.on("error", () => undefined);
  lane.on("error", () => undefined);
  return s;
}

export const INIT_RESULT = {
  protocolVersion: "2025-11-25",
  capabilities: { tools: {} },
  serverInfo: { name: "scripted", version: "0.0.0" },
};

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

export async function waitForPort(
  port: number,
  child: ChildProcess,
  timeoutMs = 15_000,
): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the fixture exited with ${child.exitCode}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, "127.0.0.1");
      s.once("connect", () => {
        s.destroy();
        resolve(true);
      });
      s.once("error", () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`nothing listens on ${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface HttpFixture {
  port: number;
  url: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

/** Starts an http MCP fixture (http.mjs sessionful, or mcp-echo stateless) on loopback. */
export async function startHttpFixture(script: string, port?: number): Promise<HttpFixture> {
  const p = port ?? (await freePort());
  const child = spawn(process.execPath, [script], {
    stdio: ["ignore", "ignore", "ignore"],
    env: { ...process.env, PORT: String(p), MCP_PATH: "/mcp" },
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const fixture: HttpFixture = {
    port: p,
    url: `http://127.0.0.1:${p}/mcp`,
    child,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exited;
    },
  };
  try {
    await waitForPort(p, child);
  } catch (err) {
    await fixture.stop();
    throw err;
  }
  return fixture;
}

interface Exchange {
  method: string;
  headers: http.IncomingHttpHeaders;
  body: any;
  status?: number;
}

export interface RecordingProxy {
  url: string;
  exchanges: Exchange[];
  close(): Promise<void>;
}

/** An HTTP proxy on loopback in front of `target` that records each request (and its status). */
export async function recordingProxy(target: HttpFixture): Promise<RecordingProxy> {
  const exchanges: Exchange[] = [];
  const agent = new http.Agent({ keepAlive: true });
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const raw = Buffer.concat(chunks);
      const ex: Exchange = {
        method: req.method ?? "",
        headers: req.headers,
        body: raw.length ? JSON.parse(raw.toString("utf8")) : undefined,
      };
      exchanges.push(ex);
      const headers = { ...req.headers };
      delete headers.host;
      const up = http.request(
        { host: "127.0.0.1", port: target.port, path: req.url, method: req.method, headers, agent },
        (upRes) => {
          ex.status = upRes.statusCode;
          res.writeHead(upRes.statusCode ?? 502, upRes.headers);
          res.flushHeaders();
          upRes.pipe(res);
          upRes.on("error", () => res.destroy());
        },
      );
      up.on("error", () => {
        if (!res.headersSent) res.writeHead(502).end();
        else res.destroy();
      });
      res.on("close", () => {
        if (!res.writableFinished) up.destroy();
      });
      up.end(raw);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    exchanges,
    close: () =>
      new Promise<void>((resolve) => {
        agent.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Whether Docker and the image are there; the suite is skipped with the reason otherwise. */
export async function dockerImageMissing(image: string): Promise<string | null> {
  try {
    await exec("docker", ["info"], { timeout: 10_000 });
  } catch {
    return "the Docker daemon is not reachable";
  }
  try {
    await exec("docker", ["image", "inspect", image], { timeout: 10_000 });
    return null;
  } catch {
    return `image ${image} is missing (run bash scripts/build-test-images.sh)`;
  }
}

/** `docker run -i --rm` of an image as a stdio MCP server, named so that cleanup always works. */
export function dockerStdio(image: string): Proc & { name: string } {
  const name = `upstream-test-${randomBytes(4).toString("hex")}`;
  const proc = spawnStdio(
    "docker",
    ["run", "-i", "--rm", "--name", name, "--network", "none", image],
    {},
    () => exec("docker", ["rm", "-f", name]),
  );
  return Object.assign(proc, { name });
}

/** A clock moved by hand: timers fire, in order, only when `advance` passes them. */
export class ManualClock implements Clock {
  private t = Date.now();
  private seq = 0;
  private readonly timers = new Map<number, { at: number; fn: () => void }>();

  now(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.timers.set(id, { at: this.t + Math.max(0, ms), fn });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.timers.delete(handle as number);
  }

  advance(ms: number): void {
    const target = this.t + ms;
    for (;;) {
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const entry of this.timers) {
        if (entry[1].at <= target && (!next || entry[1].at < next[1].at)) next = entry;
      }
      if (!next) break;
      this.timers.delete(next[0]);
      this.t = Math.max(this.t, next[1].at);
      next[1].fn();
    }
    this.t = target;
  }

  get pending(): number {
    return this.timers.size;
  }
}

/** Resolves when `predicate` holds, polling (no timing assertion: the test's timeout bounds it). */
export async function until(
  predicate: () => boolean | Promise<boolean>,
  stepMs = 10,
): Promise<void> {
  while (!(await predicate())) await new Promise((r) => setTimeout(r, stepMs));
}

export function textOf(outcome: any): string {
  if (!("result" in outcome)) throw new Error(`expected a result, got ${JSON.stringify(outcome)}`);
  return outcome.result.content[0].text;
}
