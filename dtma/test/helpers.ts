/* eslint-disable @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-member-access -- tests read the JSON of Docker, of the API and of JSON-RPC loosely */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import type { Duplex } from "node:stream";
import { promisify } from "node:util";
import type { App } from "../src/app";
import { createApp } from "../src/app";
import { DtmaClient } from "../src/client";
import type { Config } from "../src/config";
import { createLogger } from "../src/log";
import { DEFAULT_REGISTRIES, RegistryAllowList } from "../src/tools/image";

export const exec = promisify(execFile);

export const BUSYBOX = "agentopia-test/busybox:latest";
/** backend/test/fixtures/mcp-tools: an MCP server on stdio by default. */
export const MCP_TOOLS = "agentopia-test/mcp-tools:latest";
export const DTMA_IMAGE = "agentopia/dtma:dev";
/** One scope per test run: its containers and networks never collide with another run's. */
export const RUN = randomBytes(3).toString("hex");
export const SCOPE = `t${RUN}`;
export const NETWORK = `dtma-test-${RUN}`;
export const TOKEN = randomBytes(32).toString("base64url");
export const TOKEN_B = randomBytes(32).toString("base64url");
export const SOCKET = process.env.DOCKER_SOCKET ?? "/var/run/docker.sock";

export function testConfig(overrides: Partial<Config> = {}): Config {
  return {
    port: 0,
    host: "127.0.0.1",
    tokens: { current: TOKEN, previous: undefined },
    apiBaseUrl: "http://127.0.0.1:9/api",
    toolNetwork: NETWORK,
    toolSubnets: undefined,
    gateway: undefined,
    caps: { memoryMb: 256, cpus: 1, pids: 256, lanes: 8, rootTools: 0 },
    heartbeatIntervalMs: 3_600_000,
    statusRefreshMs: 60_000,
    logLevel: process.env.TEST_LOG_LEVEL ?? "silent",
    dockerSocket: SOCKET,
    registries: new RegistryAllowList(DEFAULT_REGISTRIES),
    pulls: { max: 2, timeoutMs: 300_000 },
    logs: { maxBytes: 1024 * 1024, maxLineBytes: 16 * 1024, maxReads: 4 },
    scope: SCOPE,
    ...overrides,
  };
}

export interface Running {
  app: App;
  url: string;
  client: DtmaClient;
  stop(): Promise<void>;
}

export async function startDtma(
  overrides: Partial<Config> = {},
  extra: Partial<Parameters<typeof createApp>[0]> = {},
): Promise<Running> {
  const config = testConfig(overrides);
  const app = createApp({
    config,
    log: createLogger(config.logLevel),
    version: "0.0.0-test",
    ...extra,
  });
  const port = await app.start();
  const url = `http://127.0.0.1:${port}`;
  return {
    app,
    url,
    client: new DtmaClient({ baseUrl: url, token: config.tokens.current }),
    stop: () => app.stop(),
  };
}

export async function imageExists(image: string): Promise<boolean> {
  try {
    await exec("docker", ["image", "inspect", image]);
    return true;
  } catch {
    return false;
  }
}

/** Skips the suite, saying why, when the locally built images are missing. */
export function requireImages(ctx: Mocha.Context, ...images: string[]): Promise<void> {
  return (async () => {
    for (const image of images) {
      if (!(await imageExists(image))) {
        console.log(`      skipped: image ${image} is missing (run scripts/build-test-images.sh)`);
        ctx.skip();
      }
    }
  })();
}

export async function scopeContainers(): Promise<string[]> {
  const { stdout } = await exec("docker", [
    "ps",
    "-aq",
    "--filter",
    `label=agentopia.dtma-scope=${SCOPE}`,
  ]);
  return stdout.split("\n").filter(Boolean);
}

/** Removes every container and tool network this run created. */
export async function cleanup(): Promise<void> {
  const ids = await scopeContainers();
  if (ids.length) await exec("docker", ["rm", "-f", ...ids]);
  const { stdout } = await exec("docker", [
    "network",
    "ls",
    "-q",
    "--filter",
    `label=agentopia.dtma-scope=${SCOPE}`,
  ]);
  const nets = stdout.split("\n").filter(Boolean);
  if (nets.length) await exec("docker", ["network", "rm", ...nets]).catch(() => undefined);
}

export async function inspect(id: string): Promise<Record<string, any>> {
  const { stdout } = await exec("docker", ["inspect", id]);
  return (JSON.parse(stdout) as Record<string, any>[])[0];
}

/** A fetch helper; `token` null sends no Authorization header. */
export function api(url: string, token: string | null = TOKEN) {
  return async (
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ) => {
    const res = await fetch(url + path, {
      method,
      headers: {
        ...(token !== null ? { authorization: `Bearer ${token}` } : {}),
        ...(body === undefined ? {} : { "content-type": "application/json" }),
        ...headers,
      },
      ...(body === undefined
        ? {}
        : { body: typeof body === "string" ? body : JSON.stringify(body) }),
    });
    const text = await res.text();
    let json: any;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    return { status: res.status, json, text, headers: res.headers };
  };
}

export const httpTool = (extra: Record<string, unknown> = {}) => ({
  image: BUSYBOX,
  command: ["httpd", "-f", "-p", "8080", "-h", "/"],
  transport: { type: "http", port: 8080, path: "/" },
  ...extra,
});

export const sleepTool = (extra: Record<string, unknown> = {}) => ({
  image: BUSYBOX,
  command: ["sleep", "3600"],
  transport: { type: "stdio" },
  ...extra,
});

export const stdioTool = (extra: Record<string, unknown> = {}) => ({
  image: MCP_TOOLS,
  transport: { type: "stdio" },
  network: "none",
  resources: { memory_mb: 128, pids: 64 },
  ...extra,
});

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Newline-delimited JSON-RPC over a raw stdio stream, as the backend's bridge speaks it. Keeps
 * every byte received, so a test can check what never came through.
 */
export class JsonLines {
  readonly received: Buffer[] = [];
  /** Resolves when the stream closes; `cleanly` when the other side ended it (FIN). */
  readonly closed: Promise<{ cleanly: boolean }>;
  private buffer = "";
  private readonly messages: any[] = [];
  private readonly waiters: (() => void)[] = [];
  private done = false;
  private nextId = 1;

  constructor(readonly stream: Duplex) {
    let cleanly = false;
    stream.on("data", (chunk: Buffer) => {
      this.received.push(chunk);
      this.buffer += chunk.toString("utf8");
      let nl: number;
      while ((nl = this.buffer.indexOf("\n")) >= 0) {
        const line = this.buffer.slice(0, nl);
        this.buffer = this.buffer.slice(nl + 1);
        if (line.trim()) this.messages.push(JSON.parse(line));
      }
      this.wake();
    });
    stream.on("end", () => (cleanly = true));
    stream.on("error", () => undefined);
    this.closed = new Promise((resolve) =>
      stream.once("close", () => {
        this.done = true;
        this.wake();
        resolve({ cleanly });
      }),
    );
  }

  get text(): string {
    return Buffer.concat(this.received).toString("utf8");
  }

  send(message: Record<string, unknown>): void {
    this.stream.write(`${JSON.stringify({ jsonrpc: "2.0", ...message })}\n`);
  }

  /** Sends a request and resolves with its answer (notifications before it are skipped). */
  async call(method: string, params: Record<string, unknown> = {}): Promise<any> {
    const id = this.nextId++;
    this.send({ id, method, params });
    for (;;) {
      const i = this.messages.findIndex((m) => m.id === id);
      if (i >= 0) return this.messages.splice(i, 1)[0];
      if (this.done) throw new Error(`the stream closed before the answer to ${method}`);
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  /** The text of a tools/call result. */
  async tool(name: string, args: Record<string, unknown> = {}): Promise<string> {
    const answer = await this.call("tools/call", { name, arguments: args });
    if (!answer.result) throw new Error(`tools/call ${name}: ${JSON.stringify(answer)}`);
    return answer.result.content[0].text as string;
  }

  /** initialize + notifications/initialized, as an MCP client starts. */
  async initialize(): Promise<any> {
    const answer = await this.call("initialize", {
      protocolVersion: "2025-06-18",
      capabilities: {},
      clientInfo: { name: "dtma-test", version: "0.0.0" },
    });
    this.send({ method: "notifications/initialized" });
    return answer.result;
  }

  close(): void {
    this.stream.end();
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }
}

/** Retries `fn` while it fails with `retry(err)`, at most `attempts` times, 100 ms apart. */
export async function eventually<T>(
  fn: () => Promise<T>,
  retry: (err: unknown) => boolean,
  attempts = 100,
): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await fn();
    } catch (err) {
      if (i >= attempts || !retry(err)) throw err;
      await sleep(100);
    }
  }
}
