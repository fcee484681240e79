// The 2026-07-28 era on the same endpoints: no session, every request carries its version and the
// client's capabilities in `_meta`, mirrored in headers the gateway checks against the body. The
// servers behind the gateway speak the sessionful era, so requests are translated: the client's
// `_meta` keys are stripped before the lane, and results get what 2026-07-28 requires
// (`resultType`, and `ttlMs`/`cacheScope` on cacheable ones). `server/discover` is built from the
// lane's cached initialize; `subscriptions/listen` replaces the GET stream and resources/subscribe.
import { mayUse } from "../auth/principal";
import type { JsonObject, JsonRpcId, JsonRpcNotification, Lane } from "../upstream/types";
import { ErrorCodes } from "../upstream/types";
import { aggregateIdentity, aggregateTools, routeTool } from "./aggregate";
import { audited, forward } from "./calls";
import type { Core, Ctx } from "./core";
import { writeJson, writeStatus } from "./core";
import { decodeMirrored, header } from "./headers";
import type { Incoming } from "./protocol";
import {
  AGGREGATE,
  isObject,
  META,
  metaOf,
  modernCapabilities,
  modernResult,
  MODERN_FORWARDED,
  MODERN_VERSIONS,
  NAME_SOURCE,
  Refusal,
  resultMessage,
  SUPPORTED_VERSIONS,
  trunc,
} from "./protocol";
import { SseStream } from "./sse";
import { resubscribe, type Subscriber } from "./upstream";

type Request = Extract<Incoming, { kind: "request" }>;

/**
 * `ttlMs` of results the gateway relays: the servers behind it give no freshness hint and the
 * gateway does not watch their lists, so 0 (re-fetch when needed; list changes are announced on
 * `subscriptions/listen`).
 */
const CACHE_TTL_MS = 0;
const MAX_LISTEN_URIS = 100;

const mismatch = (message: string): Refusal => new Refusal(400, ErrorCodes.HeaderMismatch, message);
const badMeta = (message: string): Refusal => new Refusal(400, ErrorCodes.InvalidParams, message);

/** The request's envelope and mirrored headers, as the transport requires; a 400 naming what is wrong. */
function checkEnvelope(ctx: Ctx, msg: Request): void {
  const meta = metaOf(msg.params);
  const version = meta?.[META.protocolVersion];
  if (typeof version !== "string")
    throw badMeta(`params._meta["${META.protocolVersion}"] must be a string`);
  const headerVersion = header(ctx.req, "mcp-protocol-version");
  if (headerVersion === undefined)
    throw mismatch(
      `the MCP-Protocol-Version header is required and must equal params._meta["${META.protocolVersion}"]`,
    );
  if (headerVersion !== version)
    throw mismatch(
      `Header mismatch: MCP-Protocol-Version "${trunc(headerVersion)}" does not match params._meta["${META.protocolVersion}"] "${trunc(version)}"`,
    );
  if (!MODERN_VERSIONS.includes(version))
    throw new Refusal(
      400,
      ErrorCodes.UnsupportedProtocolVersion,
      `Unsupported protocol version "${trunc(version)}" per request (served per request: ${MODERN_VERSIONS.join(", ")}; with initialize: the others)`,
      { supported: SUPPORTED_VERSIONS, requested: trunc(version) },
    );
  if (!isObject(meta![META.clientCapabilities]))
    throw badMeta(`params._meta["${META.clientCapabilities}"] must be an object`);
  const info = meta![META.clientInfo];
  if (info !== undefined && !isObject(info))
    throw badMeta(`params._meta["${META.clientInfo}"] must be an object`);
  const method = header(ctx.req, "mcp-method");
  if (method === undefined) throw mismatch("the Mcp-Method header is required");
  if (method !== msg.method)
    throw mismatch(
      `Header mismatch: Mcp-Method "${trunc(method)}" does not match the body's method "${trunc(msg.method)}"`,
    );
  const field = NAME_SOURCE[msg.method];
  if (!field) return;
  const value = msg.params?.[field];
  if (typeof value !== "string") throw badMeta(`params.${field} must be a string`);
  const raw = header(ctx.req, "mcp-name");
  if (raw === undefined) throw mismatch(`the Mcp-Name header is required for ${msg.method}`);
  const decoded = decodeMirrored(raw);
  if (decoded === undefined)
    throw mismatch(
      "Mcp-Name is neither a plain header value nor a valid =?base64?…?= sentinel of UTF-8",
    );
  if (decoded !== value)
    throw mismatch(
      `Header mismatch: Mcp-Name "${trunc(raw)}" does not match params.${field} "${trunc(value)}"`,
    );
}

export async function modernPost(core: Core, ctx: Ctx, msg: Incoming): Promise<void> {
  // This revision defines no client notifications over HTTP (cancelling is closing the stream).
  if (msg.kind === "notification") return writeStatus(ctx.res, 202);
  if (msg.kind !== "request") return;
  checkEnvelope(ctx, msg);
  const { id, method } = msg;
  if (method === "server/discover") return discover(core, ctx, id);
  if (method === "subscriptions/listen") return listen(core, ctx, msg);
  if (ctx.endpoint === AGGREGATE) return aggregateRequest(core, ctx, msg);
  if (!MODERN_FORWARDED.has(method))
    throw new Refusal(404, ErrorCodes.MethodNotFound, `Method not found: ${trunc(method)}`);
  const server = ctx.server!;
  const run = async () =>
    forward(core, ctx, {
      server,
      // Per-request clients use the shared lane, whatever the server's isolation.
      lane: await core.upstreams.shared(server),
      id,
      method,
      params: msg.params,
      shape: (r) => modernResult(method, r, CACHE_TTL_MS),
      errorStatus,
    });
  if (method === "tools/call")
    return audited(
      core,
      ctx,
      { server: server.name, tool: String(msg.params!.name), era: "modern" },
      run,
    );
  await run();
}

/** An unknown method is a 404 in this revision (the body tells it from a missing endpoint). */
const errorStatus = (code: number): number => (code === ErrorCodes.MethodNotFound ? 404 : 200);

async function aggregateRequest(core: Core, ctx: Ctx, msg: Request): Promise<void> {
  const { id, method, params } = msg;
  if (method === "tools/list") {
    if (params?.cursor !== undefined)
      throw new Refusal(
        200,
        ErrorCodes.InvalidParams,
        "the aggregated tool list is a single page: send no cursor",
      );
    const abort = new AbortController();
    ctx.res.once("close", () => abort.abort());
    const tools = await aggregateTools(core, ctx, abort.signal);
    writeJson(ctx.res, 200, resultMessage(id, modernResult(method, { tools }, CACHE_TTL_MS)));
    return;
  }
  if (method === "tools/call") {
    const { server, tool } = routeTool(core, ctx, params?.name);
    return audited(core, ctx, { server: server.name, tool, era: "modern" }, async () =>
      forward(core, ctx, {
        server,
        lane: await core.upstreams.shared(server),
        id,
        method,
        params: { ...params, name: tool },
        shape: (r) => modernResult(method, r, CACHE_TTL_MS),
        errorStatus,
      }),
    );
  }
  throw new Refusal(
    404,
    ErrorCodes.MethodNotFound,
    `Method not found: ${trunc(method)} (/mcp aggregates tools only: use /mcp/<server>)`,
  );
}

async function discover(core: Core, ctx: Ctx, id: JsonRpcId): Promise<void> {
  let capabilities: JsonObject;
  let serverInfo: JsonObject;
  let instructions: string | undefined;
  if (ctx.server) {
    const init = (await core.upstreams.shared(ctx.server)).initialize;
    capabilities = modernCapabilities(init.capabilities);
    serverInfo = init.serverInfo;
    instructions = init.instructions;
  } else ({ capabilities, serverInfo, instructions } = aggregateIdentity(core.deps.version));
  const result: JsonObject = {
    resultType: "complete",
    supportedVersions: SUPPORTED_VERSIONS,
    capabilities,
    _meta: { [META.serverInfo]: serverInfo },
    ...(typeof instructions === "string" ? { instructions } : {}),
    ttlMs: CACHE_TTL_MS,
    cacheScope: "private",
  };
  writeJson(ctx.res, 200, resultMessage(id, result));
}

interface Filter {
  toolsListChanged?: boolean;
  promptsListChanged?: boolean;
  resourcesListChanged?: boolean;
  resourceSubscriptions?: string[];
}

function parseFilter(params: JsonObject | undefined): Filter {
  const f = params?.notifications;
  if (!isObject(f)) throw badMeta("params.notifications must be an object");
  const out: Filter = {};
  for (const key of ["toolsListChanged", "promptsListChanged", "resourcesListChanged"] as const) {
    const v = f[key];
    if (v === undefined) continue;
    if (typeof v !== "boolean") throw badMeta(`params.notifications.${key} must be a boolean`);
    out[key] = v;
  }
  const uris = f.resourceSubscriptions;
  if (uris !== undefined) {
    if (
      !Array.isArray(uris) ||
      uris.length > MAX_LISTEN_URIS ||
      !uris.every((u) => typeof u === "string" && u.length <= 4096)
    )
      throw badMeta(
        `params.notifications.resourceSubscriptions must be at most ${MAX_LISTEN_URIS} strings`,
      );
    out.resourceSubscriptions = [...new Set(uris as string[])];
  }
  return out;
}

const KIND: Record<string, keyof Filter> = {
  "notifications/tools/list_changed": "toolsListChanged",
  "notifications/prompts/list_changed": "promptsListChanged",
  "notifications/resources/list_changed": "resourcesListChanged",
};

/**
 * `subscriptions/listen`: a long-lived SSE answer. First the acknowledgement with the subset the
 * gateway honours, then only the notifications asked for, each tagged with the subscription id
 * (the request's id). The client closing the stream ends the subscription.
 */
async function listen(core: Core, ctx: Ctx, msg: Request): Promise<void> {
  const { id } = msg;
  const asked = parseFilter(msg.params);
  const max = core.deps.limits.maxSessionsPerServer;
  if (core.store.count(ctx.endpoint) + core.listenCount(ctx.endpoint) >= max)
    throw new Refusal(
      503,
      ErrorCodes.Unavailable,
      `${ctx.endpoint === AGGREGATE ? "/mcp" : `server "${ctx.endpoint}"`} has ${max} sessions and listen streams, its limit (maxSessionsPerServer)`,
      undefined,
      { "retry-after": "5" },
    );
  const honoured: Filter = {};
  const subs = new Map<string, Lane>();
  if (!ctx.server) {
    if (asked.toolsListChanged) honoured.toolsListChanged = true;
  } else {
    const lane = await core.upstreams.shared(ctx.server);
    const caps = lane.initialize.capabilities;
    const flag = (kind: string, name: string): boolean => {
      const cap = caps[kind];
      return isObject(cap) && cap[name] === true;
    };
    if (asked.toolsListChanged && flag("tools", "listChanged")) honoured.toolsListChanged = true;
    if (asked.promptsListChanged && flag("prompts", "listChanged"))
      honoured.promptsListChanged = true;
    if (asked.resourcesListChanged && flag("resources", "listChanged"))
      honoured.resourcesListChanged = true;
    if (asked.resourceSubscriptions?.length && flag("resources", "subscribe")) {
      const opts = { timeoutMs: core.deps.limits.requestTimeoutMs };
      const results = await Promise.all(
        asked.resourceSubscriptions.map(async (uri) => ({
          uri,
          ok: "result" in (await lane.subscribe(uri, opts)),
        })),
      );
      for (const r of results) if (r.ok) subs.set(r.uri, lane);
      honoured.resourceSubscriptions = [...subs.keys()];
    }
  }
  if (ctx.res.destroyed) {
    release(core, subs);
    return;
  }
  const stream = new SseStream(ctx.res, core.keepAlive);
  const tag = (n: JsonRpcNotification): unknown => ({
    jsonrpc: "2.0",
    method: n.method,
    params: {
      ...(n.params ?? {}),
      _meta: { ...(isObject(n.params?._meta) ? n.params._meta : {}), [META.subscriptionId]: id },
    },
  });
  stream.send(
    tag({
      jsonrpc: "2.0",
      method: "notifications/subscriptions/acknowledged",
      params: { notifications: honoured },
    }),
  );
  const principal = ctx.principal;
  const subscriber: Subscriber & { close(): void } = {
    offer(n, server) {
      if (stream.closed) return;
      const kind = KIND[n.method];
      if (ctx.endpoint === AGGREGATE) {
        if (kind === "toolsListChanged" && honoured.toolsListChanged && mayUse(principal, server))
          stream.send(tag({ jsonrpc: "2.0", method: n.method }));
        return;
      }
      if (
        kind
          ? honoured[kind] === true
          : n.method === "notifications/resources/updated" &&
            typeof n.params?.uri === "string" &&
            subs.has(n.params.uri)
      )
        stream.send(tag(n));
    },
    laneReplaced(_server, old, lane) {
      for (const [uri, on] of subs)
        if (on === old)
          resubscribe(subs, uri, lane, () => stream.closed, core.deps.limits.requestTimeoutMs);
    },
    close() {
      // The server ends the subscription: a result signals a graceful end.
      stream.end(
        resultMessage(id, { resultType: "complete", _meta: { [META.subscriptionId]: id } }),
      );
    },
  };
  core.hub.add(ctx.endpoint, subscriber);
  let set = core.listens.get(ctx.endpoint);
  if (!set) core.listens.set(ctx.endpoint, (set = new Set()));
  set.add(subscriber);
  const endpoint = ctx.endpoint;
  stream.whenClosed(() => {
    core.hub.remove(endpoint, subscriber);
    const open = core.listens.get(endpoint);
    open?.delete(subscriber);
    if (open?.size === 0) core.listens.delete(endpoint);
    release(core, subs);
  });
}

function release(core: Core, subs: Map<string, Lane>): void {
  const opts = { timeoutMs: core.deps.limits.requestTimeoutMs };
  for (const [uri, lane] of subs) if (core.upstreams.isOpen(lane)) void lane.unsubscribe(uri, opts);
  subs.clear();
}
