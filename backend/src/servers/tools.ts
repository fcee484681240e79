import type { JsonObject, Lane } from "../upstream/types";

/** At most this many pages of tools/list are read for one server (a server paging forever). */
const MAX_PAGES = 20;

class ToolsListFailed extends Error {}

/** Every tool a server offers, read through its lane (the same path agents use), all pages. */
export async function listAllTools(lane: Lane, timeoutMs: number): Promise<JsonObject[]> {
  const tools: JsonObject[] = [];
  let cursor: string | undefined;
  for (let page = 0; page < MAX_PAGES; page++) {
    const outcome = await lane.call("tools/list", cursor ? { cursor } : undefined, { timeoutMs });
    if ("error" in outcome)
      throw new ToolsListFailed(`tools/list failed: ${outcome.error.message}`);
    const items = outcome.result.tools;
    if (Array.isArray(items)) {
      for (const t of items) if (t && typeof t === "object") tools.push(t as JsonObject);
    }
    const next = outcome.result.nextCursor;
    if (typeof next !== "string" || next === "") break;
    cursor = next;
  }
  return tools;
}
