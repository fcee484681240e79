// The sessionful era (2025-03-26 … 2025-11-25; 2024-11-05 accepted in initialize). The gateway
// initialized every server itself, so an agent's `initialize` is answered from the lane's cached
// result: the agent's clientInfo and capabilities never reach a server. Notifications and
// responses of the client are swallowed (202), except `notifications/cancelled`, which reaches
// only the calls of the session that sent it. `ping` and `logging/setLevel` are answered here.
import { mayUse } from "../auth/principal";
import type { JsonObject, JsonRpcNotification, JsonRpcId, Lane } from "../upstream/types";
import { ErrorCodes } from "../upstream/types";
import { aggregateIdentity, aggregateTools, routeTool } from "./aggregate";
import { audited, forward } from "./calls";
import type { Core, Ctx } from "./core";
import { writeJson, writeStatus } from "./core";
import type { GatewayServer } from "./deps";
import { acceptsSse, header } from "./headers";
import type { Incoming } from "./protocol";
import {
  AGGREGATE,
  DEFAULT_HEADER_VERSION,
  invalidParams,
  isModernVersion,
  LATEST_LEGACY_VERSION,
  LEGACY_VERSIONS,
  LOG_LEVELS,
  MODERN_VERSIONS,
  Refusal,
  resultMessage,
  SUPPORTED_VERSIONS,
  trunc,
} from "./protocol";
import { requestKey, Session } from "./sessions";
import { SseStream } from "./sse";
import { resubscribe, type Subscriber } from "./upstream";

type Request = Extract<Incoming, { kind: "request" }>;

/** Resource subscriptions one session may hold. */
const MAX_SUBSCRIPTIONS = 100;

const LIST_CHANGED = new Set([
  "notifications/tools/list_changed",
  "notifications/prompts/list_changed",
  "notifications/resources/list_changed",
]);

/** `MCP-Protocol-Version` of a request after initialize: absent is 2025-03-26, unknown is 400. */
function legacyVersion(ctx: Ctx): string {
  const v = header(ctx.req, "mcp-protocol-version");
  if (v === undefined) return DEFAULT_HEADER_VERSION;
  if (LEGACY_VERSIONS.includes(v)) return v;
  if (MODERN_VERSIONS.includes(v) || isModernVersion(v))
    throw new Refusal(
      400,
      ErrorCodes.HeaderMismatch,
      `MCP-Protocol-Version ${trunc(v)} needs params._meta["io.modelcontextprotocol/protocolVersion"] in the body (2026-07-28 requests carry it on every request)`,
    );
  throw new Refusal(
    400,
    ErrorCodes.UnsupportedProtocolVersion,
    `unsupported MCP-Protocol-Version "${trunc(v)}"`,
    { supported: SUPPORTED_VERSIONS, requested: trunc(v) },
  );
}

/** The caller's session on this endpoint: 400 without the header, 404 when unknown, ended or not theirs. */
function requireSession(core: Core, ctx: Ctx): Session {
  const sid = header(ctx.req, "mcp-session-id");
  if (!sid)
    throw new Refusal(
      400,
      ErrorCodes.InvalidRequest,
      "the Mcp-Session-Id header is required: send initialize first",
    );
  const s = core.store.get(sid);
  // Another principal's session, or one of another endpoint, is as unknown as a made-up id.
  if (!s || s.principalId !== ctx.principal.id || s.endpoint !== ctx.endpoint)
    throw new Refusal(
      404,
      ErrorCodes.InvalidRequest,
      "unknown or expired session: send initialize to start a new one",
    );
  s.principal = ctx.principal;
  s.lastUsed = core.now();
  return s;
}

export async function legacyPost(core: Core, ctx: Ctx, msg: Incoming): Promise<void> {
  if (msg.kind === "request" && msg.method === "initialize") return initialize(core, ctx, msg);
  legacyVersion(ctx);
  const s = requireSession(core, ctx);
  if (msg.kind === "notification") {
    if (msg.method === "notifications/cancelled") {
      const rid = msg.params?.requestId;
      if (typeof rid === "string" || typeof rid === "number")
        s.inflight?.get(requestKey(rid))?.abort(new Error("cancelled by the client"));
    }
    // initialized, roots/list_changed, progress, anything else: nothing a server needs to see.
    return writeStatus(ctx.res, 202);
  }
  if (msg.kind === "response") return writeStatus(ctx.res, 202);
  if (msg.kind !== "request") return;
  if (msg.method === "ping") {
    writeJson(ctx.res, 200, resultMessage(msg.id, {}));
    return;
  }
  if (ctx.endpoint === AGGREGATE) return aggregateRequest(core, ctx, s, msg);
  return serverRequest(core, ctx, s, msg);
}

export function legacyGet(core: Core, ctx: Ctx): void {
  legacyVersion(ctx);
  const s = requireSession(core, ctx);
  if (header(ctx.req, "accept") !== undefined && !acceptsSse(ctx.req))
    throw new Refusal(406, ErrorCodes.InvalidRequest, "GET answers text/event-stream only");
  // One GET stream per session: a new one replaces the old.
  s.stream?.end();
  const stream = new SseStream(ctx.res, core.keepAlive);
  s.stream = stream;
  stream.whenClosed(() => {
    if (s.stream === stream) s.stream = undefined;
  });
}

export function legacyDelete(core: Core, ctx: Ctx): void {
  legacyVersion(ctx);
  const s = requireSession(core, ctx);
  core.endSession(s, "deleted");
  writeStatus(ctx.res, 204);
}

async function initialize(core: Core, ctx: Ctx, msg: Request): Promise<void> {
  const requested = msg.params?.protocolVersion;
  if (typeof requested !== "string") throw invalidParams("params.protocolVersion must be a string");
  const version = LEGACY_VERSIONS.includes(requested) ? requested : LATEST_LEGACY_VERSION;
  const max = core.deps.limits.maxSessionsPerServer;
  if (core.store.count(ctx.endpoint) + core.listenCount(ctx.endpoint) >= max)
    throw new Refusal(
      503,
      ErrorCodes.Unavailable,
      `${ctx.endpoint === AGGREGATE ? "/mcp" : `server "${ctx.endpoint}"`} has ${max} sessions, its limit (maxSessionsPerServer)`,
      undefined,
      { "retry-after": "5" },
    );
  const release = core.store.reserve(ctx.endpoint);
  let own: Lane | undefined;
  try {
    let init: { capabilities: JsonObject; serverInfo: JsonObject; instructions?: string };
    if (ctx.server?.isolation === "per_session") {
      own = await core.upstreams.own(ctx.server);
      init = own.initialize;
    } else if (ctx.server) init = (await core.upstreams.shared(ctx.server)).initialize;
    else init = aggregateIdentity(core.deps.version);
    if (ctx.res.destroyed) {
      own?.close("the client went away during initialize");
      return;
    }
    const s = new Session(ctx.principal, ctx.endpoint, version, core.now());
    core.store.add(s);
    if (own) adoptOwnLane(core, s, own);
    else {
      s.subscriber = sessionSubscriber(core, s);
      core.hub.add(s.endpoint, s.subscriber);
    }
    core.deps.metrics.sessionOpened(ctx.endpoint);
    core.log.info({ session: s.hash, endpoint: s.endpoint, version }, "mcp session opened");
    const result: JsonObject = {
      protocolVersion: version,
      capabilities: init.capabilities,
      serverInfo: init.serverInfo,
      ...(typeof init.instructions === "string" ? { instructions: init.instructions } : {}),
    };
    writeJson(ctx.res, 200, resultMessage(msg.id, result), { "mcp-session-id": s.id });
  } finally {
    release();
  }
}

/** The session's own lane: its notifications are the session's, and its end ends the session. */
function adoptOwnLane(core: Core, s: Session, lane: Lane): void {
  s.lane = lane;
  lane.onNotification((n) => {
    if (s.closed || !s.stream) return;
    if (LIST_CHANGED.has(n.method) || n.method === "notifications/message") s.stream.send(n);
    else if (n.method === "notifications/resources/updated" && subscribed(s, n)) s.stream.send(n);
  });
  const end = () => core.endSession(s, "lane_closed");
  lane.closed.then(end, end);
}

const subscribed = (s: Session, n: JsonRpcNotification): boolean =>
  typeof n.params?.uri === "string" && (s.subscriptions?.has(n.params.uri) ?? false);

/** How a session on a shared lane (or on `/mcp`) hears its server's notifications. */
function sessionSubscriber(core: Core, s: Session): Subscriber {
  return {
    offer(n, server) {
      if (s.closed || !s.stream) return;
      if (s.endpoint === AGGREGATE) {
        // `/mcp` offers tools only, of the servers this principal may use.
        if (n.method === "notifications/tools/list_changed" && mayUse(s.principal, server))
          s.stream.send({ jsonrpc: "2.0", method: n.method });
        return;
      }
      if (LIST_CHANGED.has(n.method)) s.stream.send(n);
      else if (n.method === "notifications/resources/updated" && subscribed(s, n)) s.stream.send(n);
    },
    laneReplaced(_server, old, lane) {
      for (const [uri, on] of s.subscriptions ?? [])
        if (on === old)
          resubscribe(
            s.subscriptions!,
            uri,
            lane,
            () => s.closed,
            core.deps.limits.requestTimeoutMs,
          );
    },
  };
}

function laneOf(core: Core, s: Session, server: GatewayServer): Promise<Lane> {
  if (!s.lane) return core.upstreams.shared(server);
  if (!server.running)
    throw new Refusal(503, ErrorCodes.Unavailable, `server "${server.name}" is stopped`, {
      server: server.name,
      state: "stopped",
    });
  return Promise.resolve(s.lane);
}

async function serverRequest(core: Core, ctx: Ctx, s: Session, msg: Request): Promise<void> {
  const server = ctx.server!;
  const { id, method, params } = msg;
  switch (method) {
    case "logging/setLevel": {
      const level = params?.level;
      if (typeof level !== "string" || !LOG_LEVELS.has(level))
        throw invalidParams(`params.level must be one of ${[...LOG_LEVELS].join(", ")}`);
      // A lane of its own may send log messages, so its server hears the level; a shared lane
      // drops them (one server's messages could be any session's), so there is nothing to set.
      if (s.lane)
        await forward(core, ctx, { server, lane: s.lane, id, method, params, session: s });
      else writeJson(ctx.res, 200, resultMessage(id, {}));
      return;
    }
    case "resources/subscribe":
      return subscribe(core, ctx, s, server, id, params);
    case "resources/unsubscribe":
      return unsubscribe(core, ctx, s, id, params);
    case "tools/call":
      return audited(
        core,
        ctx,
        { server: server.name, tool: toolName(params), era: "legacy", session: s },
        async () =>
          forward(core, ctx, {
            server,
            lane: await laneOf(core, s, server),
            id,
            method,
            params,
            session: s,
          }),
      );
    default:
      await forward(core, ctx, {
        server,
        lane: await laneOf(core, s, server),
        id,
        method,
        params,
        session: s,
      });
  }
}

const toolName = (params: JsonObject | undefined): string =>
  typeof params?.name === "string" ? params.name : "?";

async function subscribe(
  core: Core,
  ctx: Ctx,
  s: Session,
  server: GatewayServer,
  id: JsonRpcId,
  params: JsonObject | undefined,
): Promise<void> {
  const uri = params?.uri;
  if (typeof uri !== "string" || uri.length > 4096)
    throw invalidParams("params.uri must be a string (at most 4096 characters)");
  if (s.subscriptions?.has(uri)) {
    writeJson(ctx.res, 200, resultMessage(id, {}));
    return;
  }
  if ((s.subscriptions?.size ?? 0) >= MAX_SUBSCRIPTIONS)
    throw invalidParams(`a session holds at most ${MAX_SUBSCRIPTIONS} resource subscriptions`);
  const lane = await laneOf(core, s, server);
  const outcome = await lane.subscribe(uri, { timeoutMs: core.deps.limits.requestTimeoutMs });
  if ("result" in outcome) {
    if (s.closed) void lane.unsubscribe(uri, { timeoutMs: core.deps.limits.requestTimeoutMs });
    else (s.subscriptions ??= new Map()).set(uri, lane);
    writeJson(ctx.res, 200, resultMessage(id, outcome.result));
  } else writeJson(ctx.res, 200, { jsonrpc: "2.0", id, error: outcome.error });
}

async function unsubscribe(
  core: Core,
  ctx: Ctx,
  s: Session,
  id: JsonRpcId,
  params: JsonObject | undefined,
): Promise<void> {
  const uri = params?.uri;
  if (typeof uri !== "string") throw invalidParams("params.uri must be a string");
  const lane = s.subscriptions?.get(uri);
  // Only the session's own subscription is released: never another session's reference.
  if (!lane || !core.upstreams.isOpen(lane)) {
    s.subscriptions?.delete(uri);
    writeJson(ctx.res, 200, resultMessage(id, {}));
    return;
  }
  s.subscriptions!.delete(uri);
  const outcome = await lane.unsubscribe(uri, { timeoutMs: core.deps.limits.requestTimeoutMs });
  if ("result" in outcome) writeJson(ctx.res, 200, resultMessage(id, outcome.result));
  else writeJson(ctx.res, 200, { jsonrpc: "2.0", id, error: outcome.error });
}

async function aggregateRequest(core: Core, ctx: Ctx, s: Session, msg: Request): Promise<void> {
  const { id, method, params } = msg;
  if (method === "tools/list") {
    if (params?.cursor !== undefined)
      throw invalidParams("the aggregated tool list is a single page: send no cursor");
    const abort = new AbortController();
    ctx.res.once("close", () => abort.abort());
    const tools = await aggregateTools(core, ctx, abort.signal);
    writeJson(ctx.res, 200, resultMessage(id, { tools }));
    return;
  }
  if (method === "tools/call") {
    const { server, tool } = routeTool(core, ctx, params?.name);
    return audited(core, ctx, { server: server.name, tool, era: "legacy", session: s }, async () =>
      forward(core, ctx, {
        server,
        lane:
          server.isolation === "per_session"
            ? await aggregateOwnLane(core, s, server)
            : await core.upstreams.shared(server),
        id,
        method,
        params: { ...params, name: tool },
        session: s,
      }),
    );
  }
  throw new Refusal(
    200,
    ErrorCodes.MethodNotFound,
    `${trunc(method)} is not offered on /mcp, which aggregates tools only: use /mcp/<server>`,
  );
}

/** A `/mcp` session's own lane to a `per_session` server, opened on first use. */
function aggregateOwnLane(core: Core, s: Session, server: GatewayServer): Promise<Lane> {
  const lanes = (s.aggregateLanes ??= new Map<string, Promise<Lane>>());
  const open = lanes.get(server.name);
  if (open) return open;
  const p = core.upstreams.own(server);
  lanes.set(server.name, p);
  p.then(
    (lane) => {
      if (s.closed) return lane.close("session ended");
      lane.onNotification((n) => {
        if (n.method === "notifications/tools/list_changed" && !s.closed)
          s.stream?.send({ jsonrpc: "2.0", method: n.method });
      });
      const drop = () => {
        if (lanes.get(server.name) === p) lanes.delete(server.name);
      };
      lane.closed.then(drop, drop);
    },
    () => {
      if (lanes.get(server.name) === p) lanes.delete(server.name);
    },
  );
  return p;
}
