// A lane toward a streamable HTTP MCP server (2025-11-25 and older, sessionful or stateless),
// over node:http/https with a keep-alive agent. Each call is one POST whose answer is JSON or an
// SSE stream (progress before the answer goes to that call); notifications and responses get 202.
// The optional GET stream carries server-initiated notifications and requests. A 404 for the
// session means the upstream session ended: the lane closes and its supervisor builds a new one.
// A connection failure closes the lane as unreachable; a call never hangs.
import http from "node:http";
import https from "node:https";
import { LaneCore } from "./core";
import type { CommonLaneOptions, LaneTransport, OutgoingResponse, UpstreamLane } from "./transport";
import { bounded, classify, errorOutcome, isObject, outcomeOf, parseJson } from "./jsonrpc";
import { SseParser } from "./sse";
import type { CallOutcome, JsonRpcNotification, JsonRpcRequest } from "./types";
import { ErrorCodes } from "./types";

export interface HttpLaneOptions extends CommonLaneOptions {
  /** The MCP endpoint, e.g. `http://mcp-github:8080/mcp` on the tool network. */
  url: string | URL;
  /** Extra headers on every request (e.g. a credential toward the tool). Never logged. */
  headers?: Record<string, string>;
  /** The agent to use. Default: the lane's own keep-alive agent, destroyed with the lane. */
  agent?: http.Agent;
  /** A TCP connection not made within this fails with `Unavailable`. Default 10000 ms. */
  connectTimeoutMs?: number;
  /** Reconnect delays of the GET stream: first, doubling to max. Default 500 ms to 30000 ms. */
  getStreamBackoff?: { initialMs: number; maxMs: number };
  /** How long the lane waits for notification POSTs and the closing DELETE. Default 5000 ms. */
  auxTimeoutMs?: number;
}

/** Stale keep-alive sockets a request may meet in a row (the agent keeps at most 8 free). */
const MAX_STALE_RETRIES = 9;

interface Handlers {
  /** False once the gateway has stopped waiting for this exchange (no retry then). */
  live?(): boolean;
  register(req: http.ClientRequest): void;
  response(res: http.IncomingMessage): void;
  error(err: NodeJS.ErrnoException): void;
}

function contentType(res: http.IncomingMessage): string {
  return (res.headers["content-type"] ?? "").split(";")[0].trim().toLowerCase();
}

function drain(res: http.IncomingMessage): void {
  res.resume();
}

/** Reads a body up to `cap` bytes; `null` when it was larger (the response is destroyed). */
function readBody(
  res: http.IncomingMessage,
  cap: number,
  done: (body: Buffer | null, complete: boolean) => void,
): void {
  const parts: Buffer[] = [];
  let size = 0;
  let finished = false;
  const finish = (body: Buffer | null, complete: boolean): void => {
    if (finished) return;
    finished = true;
    done(body, complete);
  };
  res.on("data", (chunk: Buffer) => {
    size += chunk.length;
    if (size > cap) {
      res.destroy();
      finish(null, true);
      return;
    }
    parts.push(chunk);
  });
  res.on("end", () => finish(Buffer.concat(parts), true));
  res.on("close", () => finish(Buffer.concat(parts), false));
  res.on("error", () => undefined);
}

/** The answer a call gets for an HTTP error status: the server's JSON-RPC error if it sent one. */
function statusOutcome(status: number, body: Buffer | null, id: number): CallOutcome {
  const parsed = body && body.length > 0 ? parseJson(body.toString("utf8")) : undefined;
  const incoming = classify(parsed);
  if (incoming.kind === "response" && incoming.message.id === id && "error" in incoming.message) {
    return outcomeOf(incoming.message);
  }
  let detail = "";
  if (isObject(parsed) && isObject(parsed.error) && typeof parsed.error.message === "string") {
    detail = `: ${bounded(parsed.error.message)}`;
  }
  const code = status === 429 || status >= 500 ? ErrorCodes.Unavailable : ErrorCodes.InternalError;
  return errorOutcome(code, `the server answered HTTP ${status}${detail}`);
}

/** Creates the lane and initializes the server; rejects (connection released) when that fails. */
export async function createHttpLane(opts: HttpLaneOptions): Promise<UpstreamLane> {
  const url = new URL(opts.url);
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new Error(`unsupported endpoint scheme ${url.protocol}`);
  }
  const mod = url.protocol === "https:" ? https : http;
  const agent = opts.agent ?? new mod.Agent({ keepAlive: true, maxSockets: 64, maxFreeSockets: 8 });
  const ownAgent = opts.agent === undefined;
  const cap = opts.maxMessageBytes;
  const connectTimeoutMs = opts.connectTimeoutMs ?? 10_000;
  const auxTimeoutMs = opts.auxTimeoutMs ?? 5_000;
  const getInitialMs = opts.getStreamBackoff?.initialMs ?? 500;
  const getMaxMs = opts.getStreamBackoff?.maxMs ?? 30_000;

  const core = new LaneCore(opts);
  let sessionId: string | undefined;
  let sessionEnded = false;
  let shut = false;
  /** The POST of each call in flight, by lane id, so cancelling can abort it. */
  const calls = new Map<number, http.ClientRequest>();
  /** Notification and response POSTs, the GET stream, the DELETE. */
  const aux = new Set<http.ClientRequest>();
  let getDelay = getInitialMs;
  let getTimer: NodeJS.Timeout | undefined;
  let getStream: http.ClientRequest | undefined;
  let getDisabled = false;

  const headers = (extra: http.OutgoingHttpHeaders): http.OutgoingHttpHeaders => {
    const h: http.OutgoingHttpHeaders = { ...opts.headers, ...extra };
    if (sessionId !== undefined) h["mcp-session-id"] = sessionId;
    const version = core.protocolVersion;
    if (version !== undefined) h["mcp-protocol-version"] = version;
    return h;
  };

  /**
   * One HTTP exchange. A request that fails on a reused keep-alive socket the server had already
   * closed (ECONNRESET/EPIPE, no response) goes out again on another, as Node's documentation
   * advises; a fresh socket is never retried, so this ends within a few attempts.
   */
  const send = (
    method: "POST" | "GET" | "DELETE",
    body: string | undefined,
    extra: http.OutgoingHttpHeaders,
    on: Handlers,
    attempt = 1,
  ): void => {
    const h = headers(extra);
    if (body !== undefined) h["content-length"] = Buffer.byteLength(body);
    const req = mod.request(url, { method, agent, headers: h });
    on.register(req);
    let responded = false;
    req.on("socket", (socket) => {
      if (!socket.connecting) return;
      const t = setTimeout(() => {
        const err: NodeJS.ErrnoException = new Error("connect timeout");
        err.code = "ETIMEDOUT";
        req.destroy(err);
      }, connectTimeoutMs);
      socket.once("connect", () => clearTimeout(t));
      socket.once("close", () => clearTimeout(t));
    });
    req.on("response", (res) => {
      responded = true;
      on.response(res);
    });
    req.on("error", (err: NodeJS.ErrnoException) => {
      if (responded) return; // the response's own handlers see the break
      const stale = err.code === "ECONNRESET" || err.code === "EPIPE";
      const live = !shut && (on.live?.() ?? true);
      if (stale && live && req.reusedSocket && attempt <= MAX_STALE_RETRIES) {
        send(method, body, extra, on, attempt + 1);
        return;
      }
      on.error(err);
    });
    req.end(body);
  };

  const unreachable = (err: NodeJS.ErrnoException): string =>
    `the server is unreachable (${err.code ?? err.message})`;

  const sessionGone = (): void => {
    sessionEnded = true;
    core.close("the upstream session ended");
  };

  const parser = (onOversized: (id: number | undefined) => void): SseParser =>
    new SseParser(cap, {
      event: (data) => {
        const value = parseJson(data);
        if (value === undefined) core.stats.invalid++;
        else core.receive(value);
      },
      oversized: onOversized,
    });

  const callResponse = (id: number, res: http.IncomingMessage, isInitialize: boolean): void => {
    const status = res.statusCode ?? 0;
    const finished = (why: string): void => {
      calls.delete(id);
      if (core.waitsFor(id)) core.settle(id, errorOutcome(ErrorCodes.InternalError, why));
    };
    if (isInitialize && status >= 200 && status < 300) {
      const sid = res.headers["mcp-session-id"];
      if (typeof sid === "string" && sid.length > 0) sessionId = sid;
    }
    if (status === 404 && sessionId !== undefined && !isInitialize) {
      drain(res);
      calls.delete(id);
      sessionGone();
      return;
    }
    if (status === 202 || status === 204) {
      drain(res);
      return finished("the server accepted the request without answering it");
    }
    if (status < 200 || status >= 300) {
      readBody(res, cap, (body) => {
        calls.delete(id);
        if (core.waitsFor(id)) core.settle(id, statusOutcome(status, body, id));
      });
      return;
    }
    const type = contentType(res);
    if (type === "text/event-stream") {
      const sse = parser((found) =>
        core.oversized(found !== undefined && core.waitsFor(found) ? found : undefined),
      );
      res.on("data", (chunk: Buffer) => sse.push(chunk));
      res.on("end", () => {
        sse.end();
        finished("the server ended the stream without answering");
      });
      res.on("close", () => finished("the server ended the stream without answering"));
      res.on("error", () => undefined);
      return;
    }
    if (type === "application/json") {
      readBody(res, cap, (body, complete) => {
        calls.delete(id);
        if (body === null) return core.oversized(id);
        if (!complete) return finished("the server ended the response early");
        const value = parseJson(body.toString("utf8"));
        if (value === undefined) core.stats.invalid++;
        else core.receive(value);
        finished("the server's response carried no answer");
      });
      return;
    }
    drain(res);
    finished("the server answered with an unexpected content type");
  };

  const postAux = (message: JsonRpcNotification | OutgoingResponse): Promise<void> =>
    new Promise((resolve) => {
      if (shut) return resolve();
      let req: http.ClientRequest | undefined;
      const timer = setTimeout(() => req?.destroy(), auxTimeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        if (req) aux.delete(req);
        resolve();
      };
      send(
        "POST",
        JSON.stringify(message),
        { "content-type": "application/json", accept: "application/json, text/event-stream" },
        {
          register: (r) => {
            if (req) aux.delete(req);
            req = r;
            aux.add(r);
          },
          response: (res) => {
            drain(res);
            res.on("close", done);
            if (res.statusCode === 404 && sessionId !== undefined) sessionGone();
          },
          error: () => done(),
        },
      );
    });

  const scheduleGet = (): void => {
    if (shut || getDisabled || getTimer !== undefined) return;
    getTimer = setTimeout(() => {
      getTimer = undefined;
      openGet();
    }, getDelay);
    getDelay = Math.min(getDelay * 2, getMaxMs);
  };

  const openGet = (): void => {
    if (shut || getDisabled) return;
    let over = false;
    const ended = (): void => {
      if (over) return;
      over = true;
      if (getStream) aux.delete(getStream);
      getStream = undefined;
      scheduleGet();
    };
    send(
      "GET",
      undefined,
      { accept: "text/event-stream" },
      {
        register: (r) => {
          getStream = r;
          aux.add(r);
        },
        response: (res) => {
          const status = res.statusCode ?? 0;
          if (status === 405 || (status === 404 && sessionId === undefined)) {
            // No server-initiated stream here.
            drain(res);
            getDisabled = true;
            over = true;
            return;
          }
          if (status === 404) {
            drain(res);
            over = true;
            return sessionGone();
          }
          if (status !== 200 || contentType(res) !== "text/event-stream") {
            drain(res);
            res.on("close", ended);
            return;
          }
          getDelay = getInitialMs;
          const sse = parser(() => core.oversized(undefined));
          res.on("data", (chunk: Buffer) => sse.push(chunk));
          res.on("end", () => sse.end());
          res.on("close", ended);
          res.on("error", () => undefined);
        },
        error: (err) => {
          over = true;
          if (getStream) aux.delete(getStream);
          getStream = undefined;
          if (!shut) core.close(unreachable(err));
        },
      },
    );
  };

  let initializedSent: Promise<void> = Promise.resolve();

  const transport: LaneTransport = {
    request: (message: JsonRpcRequest) => {
      const id = message.id as number;
      if (shut) return;
      send(
        "POST",
        JSON.stringify(message),
        { "content-type": "application/json", accept: "application/json, text/event-stream" },
        {
          live: () => core.waitsFor(id),
          register: (r) => calls.set(id, r),
          response: (res) => callResponse(id, res, message.method === "initialize"),
          error: (err) => {
            calls.delete(id);
            if (!core.waitsFor(id)) return; // withdrawn: the abort was ours
            core.settle(id, errorOutcome(ErrorCodes.Unavailable, unreachable(err)));
            core.close(unreachable(err));
          },
        },
      );
    },
    notify: (message: JsonRpcNotification) => {
      const sent = postAux(message);
      if (message.method === "notifications/initialized") initializedSent = sent;
    },
    respond: (message: OutgoingResponse) => void postAux(message),
    withdraw: (id: number) => {
      const req = calls.get(id);
      calls.delete(id);
      req?.destroy();
      return false;
    },
    shutdown: () => {
      shut = true;
      clearTimeout(getTimer);
      getTimer = undefined;
      for (const req of calls.values()) req.destroy();
      calls.clear();
      for (const req of aux) req.destroy();
      aux.clear();
      const release = (): void => {
        if (ownAgent) agent.destroy();
      };
      if (sessionId === undefined || sessionEnded) return release();
      // The specification asks clients to end their session; 405 (not supported) is fine.
      const req = mod.request(url, { method: "DELETE", agent, headers: headers({}) });
      const timer = setTimeout(() => req.destroy(), auxTimeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        release();
      };
      req.on("response", (res) => {
        drain(res);
        res.on("close", done);
      });
      req.on("error", done);
      req.end();
    },
  };

  core.attach(transport);
  await core.handshake();
  await initializedSent;
  if (core.ended) throw new Error(`the lane ended while initializing`);
  openGet();
  return core;
}
