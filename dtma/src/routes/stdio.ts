import type { Route } from "@agentopia-toolboxes/servicekit/http";
import type { StdioAttachments } from "../stdio/attachments";

// Upgrade routes (`Connection: Upgrade`, `Upgrade: mcp-stdio`): servicekit checks the token
// first and answers 426 to a request without the upgrade.
export function stdioRoutes(deps: { stdio: StdioAttachments }): Route[] {
  return [
    { method: "POST", path: "/tools/:name/attach", upgrade: (ctx) => deps.stdio.attach(ctx) },
    { method: "POST", path: "/tools/:name/lanes", upgrade: (ctx) => deps.stdio.openLane(ctx) },
  ];
}
