/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-argument, @typescript-eslint/no-unsafe-return -- tests read JSON loosely */
// What the edge's tests share: a real servicekit HTTP server on 127.0.0.1:0 with the gateway's
// routes, real supervisors over real lanes to the fixture servers (mcp-tools in stdio mode as
// child processes, in http mode as a child listening on loopback, server-everything under
// `docker run -i`), fixed test tokens, recorded metrics and captured logs, and a raw HTTP client.
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import http from "node:http";
import type net from "node:net";
import { Duplex, Writable } from "node:stream";
import { Router, TokenVerifier, createHttpServer } from "@agentopia-toolboxes/servicekit/http";
import { createLogger } from "@agentopia-toolboxes/servicekit/log";
import type { AuthFailure, Principal } from "../../src/auth/principal";
import type { GatewayDeps, GatewayLimits, GatewayServer } from "../../src/mcp/deps";
import type { McpGateway } from "../../src/mcp";
import { createMcpGateway } from "../../src/mcp";
import { createHttpLane, createStdioLane, createSupervisor } from "../../src/upstream";
import type { Lane, LaneSupervisor } from "../../src/upstream/types";

import {
  dockerImageMissing,
  EVERYTHING_IMAGE,
  freePort,
  HTTP_FIXTURE,
  STDIO_FIXTURE,
  until,
  waitForPort,
} from "../upstream/helpers";

export { dockerImageMissing, EVERYTHING_IMAGE, until };

/** Test tokens and who they are. */
export const TOKENS = {
  all: "tok-gateway-0123456789abcdef",
  toolsOnly: "tok-agent-tools-0123456789",
  other: "tok-agent-other-0123456789",
} as const;

const PRINCIPALS: Record<string, Principal> = {
  [TOKENS.all]: { kind: "gateway", id: "gateway", servers: "*" },
  [TOKENS.toolsOnly]: {
    kind: "agent",
    id: "agent-tools",
    tokenId: "jti-tools",
    servers: ["tools"],
  },
  [TOKENS.other]: {
    kind: "agent",
    id: "agent-other",
    tokenId: "jti-other",
    servers: ["tools", "web", "iso", "everything"],
  },
};

/** A small authenticate over the fixed tokens (the real verifier is the app's). */
function testAuthenticate(req: http.IncomingMessage): Promise<Principal | AuthFailure> {
  const h = req.headers.authorization;
  if (!h) return Promise.resolve({ reason: "missing" });
  const m = /^Bearer (\S+)$/.exec(h);
  if (!m) return Promise.resolve({ reason: "malformed" });
  return Promise.resolve(PRINCIPALS[m[1]] ?? { reason: "invalid" });
}

class RecordingMetrics {
  readonly toolCalls: { server: string; outcome: string }[] = [];
  readonly requests: { server: string; method: string; outcome: string }[] = [];
  readonly opened: string[] = [];
  readonly closed: { server: string; reason: string }[] = [];
  readonly authFailures: string[] = [];
  rateLimitedCount = 0;
  toolCall(server: string, outcome: string): void {
    this.toolCalls.push({ server, outcome });
  }
  mcpRequest(server: string, method: string, outcome: string): void {
    this.requests.push({ server, method, outcome });
  }
  sessionOpened(server: string): void {
    this.opened.push(server);
  }
  sessionClosed(server: string, reason: string): void {
    this.closed.push({ server, reason });
  }
  rateLimited(): void {
    this.rateLimitedCount++;
  }
  authFailure(reason: string): void {
    this.authFailures.push(reason);
  }
}

/** Every log line the gateway wrote, parsed. */
class LogSink extends Writable {
  readonly lines: any[] = [];
  readonly raw: string[] = [];
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    for (const line of chunk.toString("utf8").split("\n").filter(Boolean)) {
      this.raw.push(line);
      this.lines.push(JSON.parse(line));
    }
    cb();
  }
  audits(): any[] {
    return this.lines.filter((l) => l.audit === "tools/call");
  }
  text(): string {
    return this.raw.join("\n");
  }
}

const children = new Set<ChildProcess>();

/** The child's stdio as one Duplex; every line written to the server is also kept in `sent`. */
function stdioOf(child: ChildProcess, sent: string[]): Duplex {
  const stdin = child.stdin!;
  stdin.on("error", () => undefined);
  const writable = new Writable({
    write(chunk: Buffer, _enc, cb) {
      sent.push(...chunk.toString("utf8").split("\n").filter(Boolean));
      if (stdin.destroyed || stdin.writableEnded) return cb();
      stdin.write(chunk, () => cb());
    },
    final(cb) {
      stdin.end();
      cb();
    },
  });
  const d = Duplex.from({ readable: child.stdout!, writable });
  d.on("error", () => undefined);
  return d;
}

function spawnTracked(command: string, args: string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
  const child = spawn(command, args, {
    stdio: ["pipe", "pipe", "ignore"],
    env: { ...process.env, ...env },
  });
  children.add(child);
  child.once("exit", () => children.delete(child));
  return child;
}

/** Kills whatever test process is still running. */
async function killChildren(): Promise<void> {
  await Promise.all(
    [...children].map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.exitCode !== null || c.signalCode !== null) return resolve();
          c.once("exit", () => resolve());
          c.kill("SIGKILL");
        }),
    ),
  );
}

const LANE = { maxMessageBytes: 4 * 1024 * 1024, initializeTimeoutMs: 20_000 };

type ServerKind = "stdio" | "http" | "everything";

export interface ServerSpec {
  name: string;
  kind: ServerKind;
  isolation?: "shared" | "per_session";
}

/** A server of the directory: a real supervisor whose lanes reach a real fixture. */
export interface TestServer extends GatewayServer {
  supervisor: LaneSupervisor;
  /** Processes started for this server (stdio: one per lane). */
  pids: number[];
  /** Every line the gateway wrote to this server's stdio processes (what the server got). */
  sent: string[];
  stop(): Promise<void>;
}

export async function startServer(spec: ServerSpec): Promise<TestServer> {
  const pids: number[] = [];
  const sent: string[] = [];
  let stopHttp: (() => Promise<void>) | undefined;
  let connect: (forwardLogs: boolean) => Promise<Lane>;
  if (spec.kind === "http") {
    const port = await freePort();
    const child = spawn(process.execPath, [HTTP_FIXTURE], {
      stdio: ["ignore", "ignore", "ignore"],
      env: { ...process.env, PORT: String(port), MCP_PATH: "/mcp" },
    });
    children.add(child);
    child.once("exit", () => children.delete(child));
    await waitForPort(port, child);
    pids.push(child.pid!);
    stopHttp = async () => {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once("exit", r));
        child.kill("SIGKILL");
        await exited;
      }
    };
    connect = (forwardLogs) =>
      createHttpLane({
        server: spec.name,
        url: `http://127.0.0.1:${port}/mcp`,
        forwardLogs,
        ...LANE,
      });
  } else {
    connect = (forwardLogs) => {
      const child =
        spec.kind === "stdio"
          ? spawnTracked(process.execPath, [STDIO_FIXTURE])
          : spawnTracked("docker", [
              "run",
              "-i",
              "--rm",
              "--network",
              "none",
              "--name",
              `mcp-edge-test-${randomBytes(4).toString("hex")}`,
              EVERYTHING_IMAGE,
            ]);
      pids.push(child.pid!);
      return createStdioLane({
        server: spec.name,
        stream: stdioOf(child, sent),
        forwardLogs,
        ...LANE,
      });
    };
  }
  const supervisor = createSupervisor({
    server: spec.name,
    connect: () => connect(false),
    openSessionLane: spec.isolation === "per_session" ? () => connect(true) : undefined,
    backoff: { initialMs: 50, maxMs: 500 },
    settleMs: 0,
  });
  const server: TestServer = {
    name: spec.name,
    transport: spec.kind === "http" ? "http" : "stdio",
    isolation: spec.isolation ?? "shared",
    running: true,
    supervisor,
    pids,
    sent,
    stop: async () => {
      supervisor.shutdown("test over");
      await stopHttp?.();
    },
  };
  return server;
}

export interface TestGateway {
  /** `http://127.0.0.1:<port>` */
  base: string;
  gw: McpGateway;
  deps: GatewayDeps;
  servers: Map<string, TestServer>;
  metrics: RecordingMetrics;
  logs: LogSink;
  stop(): Promise<void>;
}

const TEST_LIMITS: GatewayLimits = {
  maxBodyBytes: 256 * 1024,
  requestTimeoutMs: 20_000,
  sessionIdleMs: 60_000,
  maxSessionsPerServer: 64,
  maxInFlightPerServer: 64,
  ratePerMinute: 100_000,
  rateBurst: 100_000,
  keepAliveMs: 15_000,
  connectTimeoutMs: 20_000,
};

export async function startGateway(opts: {
  servers: (ServerSpec | TestServer)[];
  limits?: Partial<GatewayLimits>;
  allowedOrigins?: string[];
  now?: () => number;
}): Promise<TestGateway> {
  const servers = new Map<string, TestServer>();
  for (const s of opts.servers) {
    const server = "supervisor" in s ? s : await startServer(s);
    servers.set(server.name, server);
  }
  const metrics = new RecordingMetrics();
  const logs = new LogSink();
  const log = createLogger("backend", "debug", { destination: logs });
  const deps: GatewayDeps = {
    servers: { get: (n) => servers.get(n), list: () => [...servers.values()] },
    authenticate: testAuthenticate,
    limits: { ...TEST_LIMITS, ...opts.limits },
    allowedOrigins: opts.allowedOrigins ?? ["https://app.example.com"],
    log,
    metrics,
    version: "9.9.9-test",
    ...(opts.now ? { now: opts.now } : {}),
  };
  const gw = createMcpGateway(deps);
  const router = new Router().add(...gw.routes);
  const httpServer = createHttpServer({
    router,
    verifier: new TokenVerifier({ current: randomBytes(32).toString("hex") }),
    log,
    metrics: { recordRequest: () => undefined, authFailure: () => undefined },
  });
  await new Promise<void>((resolve) => httpServer.listen(0, "127.0.0.1", resolve));
  const { port } = httpServer.address() as net.AddressInfo;
  return {
    base: `http://127.0.0.1:${port}`,
    gw,
    deps,
    servers,
    metrics,
    logs,
    stop: async () => {
      gw.closeAll();
      httpServer.closeAllConnections();
      await new Promise<void>((resolve) => httpServer.close(() => resolve()));
      await Promise.all([...servers.values()].map((s) => s.stop()));
      await killChildren();
    },
  };
}

/** Whether Docker and the image are there (the suite says why it is skipped otherwise). */
export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  json: any;
}

/** One raw HTTP request (no client library in between); the body is sent as given. */
export function raw(
  base: string,
  method: string,
  urlPath: string,
  opts: { headers?: Record<string, string>; body?: unknown; rawBody?: string | Buffer } = {},
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const url = new URL(urlPath, base);
    const payload =
      opts.rawBody ?? (opts.body === undefined ? undefined : JSON.stringify(opts.body));
    const req = http.request(
      url,
      {
        method,
        headers: {
          ...(payload !== undefined ? { "content-type": "application/json" } : {}),
          ...opts.headers,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let json: any;
          try {
            json = text ? JSON.parse(text) : undefined;
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
        });
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    if (payload !== undefined) req.end(payload);
    else req.end();
  });
}

export const auth = (token: string = TOKENS.all): Record<string, string> => ({
  authorization: `Bearer ${token}`,
});

/** An SSE response read as it arrives. */
export interface SseReader {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** Parsed `data:` messages so far. */
  messages: any[];
  /** Comment lines so far (keep-alives). */
  comments: number;
  ended: Promise<void>;
  /** Resolves once `n` messages have arrived. */
  next(n: number): Promise<any[]>;
  close(): void;
}

export function openSse(
  base: string,
  method: string,
  urlPath: string,
  headers: Record<string, string>,
  body?: unknown,
): Promise<SseReader> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request(new URL(urlPath, base), {
      method,
      headers: {
        ...(payload !== undefined ? { "content-type": "application/json" } : {}),
        ...headers,
      },
    });
    req.on("error", reject);
    req.on("response", (res) => {
      const reader: SseReader = {
        status: res.statusCode ?? 0,
        headers: res.headers,
        messages: [],
        comments: 0,
        ended: new Promise((r) => {
          res.on("end", () => r());
          res.on("close", () => r());
        }),
        next: async (n) => {
          while (reader.messages.length < n) {
            const done = await Promise.race([
              new Promise<boolean>((r) => res.once("data", () => r(false))),
              reader.ended.then(() => true),
            ]);
            await new Promise((r) => setImmediate(r));
            if (done && reader.messages.length < n)
              throw new Error(`the stream ended after ${reader.messages.length} messages`);
          }
          return reader.messages.slice(0, n);
        },
        close: () => req.destroy(),
      };
      let buf = "";
      res.on("data", (chunk: Buffer) => {
        buf += chunk.toString("utf8");
        let at: number;
        while ((at = buf.indexOf("\n\n")) !== -1) {
          const event = buf.slice(0, at);
          buf = buf.slice(at + 2);
          const data = event
            .split("\n")
            .filter((l) => l.startsWith("data:"))
            .map((l) => l.slice(5).trimStart())
            .join("\n");
          if (event.split("\n").every((l) => l.startsWith(":"))) reader.comments++;
          else if (data) reader.messages.push(JSON.parse(data));
        }
      });
      res.on("error", () => undefined);
      resolve(reader);
    });
    if (payload !== undefined) req.end(payload);
    else req.end();
  });
}

/** Polls until the predicate holds (the test's timeout bounds it; no timing assertion). */
/** The headers of a 2026-07-28 request for a body. */
export function modernHeaders(body: any, token: string = TOKENS.all): Record<string, string> {
  const h: Record<string, string> = {
    ...auth(token),
    accept: "application/json, text/event-stream",
    "mcp-protocol-version": "2026-07-28",
    "mcp-method": body.method,
  };
  const name = body.method === "resources/read" ? body.params?.uri : body.params?.name;
  if (["tools/call", "prompts/get", "resources/read"].includes(body.method) && name !== undefined)
    h["mcp-name"] = /^[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?$/.test(name)
      ? name
      : `=?base64?${Buffer.from(name, "utf8").toString("base64")}?=`;
  return h;
}

const MODERN_META = {
  "io.modelcontextprotocol/protocolVersion": "2026-07-28",
  "io.modelcontextprotocol/clientInfo": { name: "raw-test", version: "0.0.0" },
  "io.modelcontextprotocol/clientCapabilities": {},
};

/** A 2026-07-28 request body. */
export function modern(id: number | string, method: string, params: Record<string, unknown> = {}) {
  return {
    jsonrpc: "2.0",
    id,
    method,
    params: { ...params, _meta: { ...MODERN_META, ...(params._meta as object) } },
  };
}

/** Initializes a sessionful session by hand; returns its id. */
export async function rawInitialize(
  base: string,
  urlPath: string,
  token: string = TOKENS.all,
  protocolVersion = "2025-11-25",
): Promise<{ sessionId: string; result: any }> {
  const res = await raw(base, "POST", urlPath, {
    headers: { ...auth(token), accept: "application/json, text/event-stream" },
    body: {
      jsonrpc: "2.0",
      id: 0,
      method: "initialize",
      params: { protocolVersion, capabilities: {}, clientInfo: { name: "raw", version: "0" } },
    },
  });
  if (res.status !== 200) throw new Error(`initialize: ${res.status} ${res.text}`);
  return { sessionId: String(res.headers["mcp-session-id"]), result: res.json.result };
}

/** Sessionful request headers for a session. */
export function sessionHeaders(
  sessionId: string,
  token: string = TOKENS.all,
  version = "2025-11-25",
): Record<string, string> {
  return {
    ...auth(token),
    accept: "application/json, text/event-stream",
    "mcp-session-id": sessionId,
    "mcp-protocol-version": version,
  };
}
