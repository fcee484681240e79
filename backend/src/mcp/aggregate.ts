// `/mcp`: one endpoint over every server the caller may use. Only tools are aggregated: tools/list
// merges every allowed, running server's tools (all pages) as `<server>__<tool>`, and tools/call
// goes to the server the prefix names. Server names are DNS labels (no `_`), so the first `__`
// splits a name unambiguously. A server that is down is left out of the list, not an error.
import { mayUse } from "../auth/principal";
import type { JsonObject } from "../upstream/types";
import { ErrorCodes } from "../upstream/types";
import { callLane } from "./calls";
import type { Core, Ctx } from "./core";
import type { GatewayServer } from "./deps";
import { isObject, NAMESPACE_SEPARATOR, Refusal, SERVER_NAME } from "./protocol";

const MAX_PAGES = 100;

const AGGREGATE_INSTRUCTIONS =
  "The tools of every MCP server this token may use on this toolbox, each named " +
  "<server>__<tool>. Only tools are offered here; prompts and resources are on /mcp/<server>.";

/** The gateway's own initialize/discover identity for `/mcp`. */
export function aggregateIdentity(version: string): {
  capabilities: JsonObject;
  serverInfo: { name: string; version: string };
  instructions: string;
} {
  return {
    capabilities: { tools: { listChanged: true } },
    serverInfo: { name: "agentopia-toolbox-gateway", version },
    instructions: AGGREGATE_INSTRUCTIONS,
  };
}

/** The servers the caller may use and that run, by name (deterministic order). */
function usableServers(core: Core, ctx: Ctx): GatewayServer[] {
  return core.deps.servers
    .list()
    .filter((s) => s.running && SERVER_NAME.test(s.name) && mayUse(ctx.principal, s.name))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** Every tool of every usable server, namespaced; servers that fail are left out (and logged). */
export async function aggregateTools(
  core: Core,
  ctx: Ctx,
  signal: AbortSignal,
): Promise<JsonObject[]> {
  const lists = await Promise.all(
    usableServers(core, ctx).map(async (server) => {
      try {
        return await serverTools(core, server, signal);
      } catch (err) {
        core.log.info(
          { server: server.name, reason: err instanceof Error ? err.message : "unknown" },
          "server left out of the aggregated tool list",
        );
        return [];
      }
    }),
  );
  return lists.flat();
}

async function serverTools(
  core: Core,
  server: GatewayServer,
  signal: AbortSignal,
): Promise<JsonObject[]> {
  const lane = await core.upstreams.shared(server);
  const tools: JsonObject[] = [];
  const cursors = new Set<string>();
  let cursor: string | undefined;
  for (let page = 0; page < MAX_PAGES; page++) {
    const outcome = await callLane(core, lane, "tools/list", cursor ? { cursor } : undefined, {
      signal,
    });
    if ("error" in outcome) throw new Error(`tools/list failed: ${outcome.error.message}`);
    const list = outcome.result.tools;
    if (Array.isArray(list))
      for (const t of list)
        if (isObject(t) && typeof t.name === "string")
          tools.push({ ...t, name: `${server.name}${NAMESPACE_SEPARATOR}${t.name}` });
    const next = outcome.result.nextCursor;
    if (typeof next !== "string" || next === "" || cursors.has(next)) break;
    cursors.add(next);
    cursor = next;
  }
  return tools;
}

/** The server and tool a namespaced name names, if the caller may use that server. */
export function routeTool(
  core: Core,
  ctx: Ctx,
  name: unknown,
): { server: GatewayServer; tool: string } {
  if (typeof name !== "string")
    throw new Refusal(200, ErrorCodes.InvalidParams, "params.name must be a string");
  const at = name.indexOf(NAMESPACE_SEPARATOR);
  const serverName = at > 0 ? name.slice(0, at) : "";
  const tool = at > 0 ? name.slice(at + NAMESPACE_SEPARATOR.length) : "";
  const server =
    SERVER_NAME.test(serverName) && tool !== "" && mayUse(ctx.principal, serverName)
      ? core.deps.servers.get(serverName)
      : undefined;
  if (!server)
    throw new Refusal(
      200,
      ErrorCodes.InvalidParams,
      `unknown tool "${name.slice(0, 200)}": tools here are named <server>${NAMESPACE_SEPARATOR}<tool> (see tools/list)`,
    );
  return { server, tool };
}
