import type { Tool } from "@agentopia-toolboxes/dtma/api";
import type { DtmaClient } from "@agentopia-toolboxes/dtma/client";
import type { Logger } from "pino";
import type { GatewayServer, ServerDirectory } from "../mcp/deps";
import {
  createHttpLane,
  createStdioConnector,
  createStdioLane,
  createSupervisor,
  type CommonLaneOptions,
  type Lane,
} from "../upstream";

// The gateway's servers are the DTMA's tools: Docker is the only source of truth, so the backend
// keeps no list of its own and rebuilds this one after a restart from `GET /tools`. Each server
// has a supervisor that connects its lane on first use: for a stdio tool the DTMA's attachment,
// for an http tool an MCP session at the endpoint the DTMA reports on the tool network.

export interface RegistryDeps {
  dtma: DtmaClient;
  log: Logger;
  /** Cap of one message from a server (stdio line, http body or SSE event). */
  maxMessageBytes: number;
  /** How long the gateway's own initialize of a server may take. */
  initializeTimeoutMs: number;
  /** The backend's version, in the gateway's clientInfo toward servers. */
  version: string;
  refreshMs: number;
}

interface Entry {
  tool: Tool;
  server: GatewayServer;
}

export class ServerRegistry implements ServerDirectory {
  private readonly entries = new Map<string, Entry>();
  private timer: NodeJS.Timeout | undefined;
  private refreshing: Promise<Tool[]> | undefined;

  constructor(private readonly deps: RegistryDeps) {}

  get(name: string): GatewayServer | undefined {
    return this.entries.get(name)?.server;
  }

  list(): GatewayServer[] {
    return [...this.entries.values()].map((e) => e.server);
  }

  tool(name: string): Tool | undefined {
    return this.entries.get(name)?.tool;
  }

  /** Reads the DTMA's tools and reconciles (concurrent callers share one read). */
  refresh(): Promise<Tool[]> {
    this.refreshing ??= this.deps.dtma
      .listTools()
      .then((tools) => {
        const seen = new Set<string>();
        for (const tool of tools) {
          seen.add(tool.name);
          this.upsert(tool);
        }
        for (const name of [...this.entries.keys()]) if (!seen.has(name)) this.forget(name);
        return tools;
      })
      .finally(() => {
        this.refreshing = undefined;
      });
    return this.refreshing;
  }

  /** Takes the DTMA's current view of one tool; a new container gets a new supervisor. */
  upsert(tool: Tool): GatewayServer {
    const entry = this.entries.get(tool.name);
    if (entry && entry.tool.container_id === tool.container_id) {
      entry.tool = tool;
      if (tool.state !== "running") entry.server.supervisor.shutdown(`the server is ${tool.state}`);
      return entry.server;
    }
    entry?.server.supervisor.shutdown("the server was replaced");
    const created = this.create(tool);
    this.entries.set(tool.name, created);
    return created.server;
  }

  forget(name: string): void {
    const entry = this.entries.get(name);
    if (!entry) return;
    entry.server.supervisor.shutdown("the server was removed");
    this.entries.delete(name);
  }

  start(): void {
    this.timer = setInterval(() => {
      this.refresh().catch((err: unknown) =>
        this.deps.log.warn({ err: (err as Error).message }, "server list refresh failed"),
      );
    }, this.deps.refreshMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    for (const entry of this.entries.values()) entry.server.supervisor.shutdown("backend stopping");
    this.entries.clear();
  }

  private create(tool: Tool): Entry {
    const { log } = this.deps;
    const entry = { tool } as Entry;
    const laneOptions = {
      server: tool.name,
      maxMessageBytes: this.deps.maxMessageBytes,
      initializeTimeoutMs: this.deps.initializeTimeoutMs,
      clientVersion: this.deps.version,
      log: log.child({ server: tool.name }),
    };
    const http = () => this.httpLane(entry, laneOptions);
    // The main process's attachment: taken again after a break, to the same process (same
    // start time), it reuses that process's initialize.
    const connect =
      tool.transport.type === "stdio"
        ? createStdioConnector({ ...laneOptions, attach: () => this.deps.dtma.attach(tool.name) })
        : http;
    // A session's own lane: a new process (always initialized), or a new upstream session.
    const openSessionLane =
      tool.transport.type === "stdio"
        ? async () => {
            const { stream } = await this.deps.dtma.openLane(tool.name);
            return createStdioLane({ ...laneOptions, stream, forwardLogs: true });
          }
        : http;
    const supervisor = createSupervisor({
      server: tool.name,
      connect,
      openSessionLane,
      log: log.child({ server: tool.name }),
    });
    entry.server = {
      name: tool.name,
      transport: tool.transport.type,
      isolation: tool.isolation ?? "shared",
      get running() {
        return entry.tool.state === "running";
      },
      supervisor,
    };
    return entry;
  }

  /** An MCP session at the endpoint the DTMA reports now (it follows a redeploy). */
  private httpLane(entry: Entry, options: CommonLaneOptions): Promise<Lane> {
    const endpoint = entry.tool.endpoint;
    if (!endpoint) {
      return Promise.reject(
        new Error(`server '${entry.tool.name}' has no endpoint on the tool network`),
      );
    }
    return createHttpLane({ ...options, url: endpoint });
  }
}
