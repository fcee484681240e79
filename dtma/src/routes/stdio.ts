import type { Route } from "@agentopia-toolboxes/servicekit/http";
import { STDIO_UPGRADE } from "../api";
import type { StdioAttachments } from "../stdio/attachments";

// Upgrade routes (`Connection: Upgrade`, `Upgrade: mcp-stdio`): servicekit checks the token
// first and answers 426 to a request without the upgrade.
export function stdioRoutes(deps: { stdio: StdioAttachments }): Route[] {
  return [
    {
      method: "POST",
      path: "/tools/:name/attach",
      protocol: STDIO_UPGRADE,
      upgrade: (ctx) => deps.stdio.attach(ctx),
    },
    {
      method: "POST",
      path: "/tools/:name/lanes",
      protocol: STDIO_UPGRADE,
      upgrade: (ctx) => deps.stdio.openLane(ctx),
    },
  ];
}
