import { isDockerState } from "@agentopia-toolboxes/contract/status";
import type { Isolation, Tool, ToolHealth, ToolState, Transport } from "../api";
import type { ContainerInspect } from "../docker/engine";
import { LABEL } from "./labels";
import { DEFAULT_LANES } from "./spec";

// Rebuilds a tool's public view from its container alone (labels + inspect), never from memory.

const HEALTH: ToolHealth[] = ["healthy", "unhealthy", "starting"];

export function toolFromContainer(c: ContainerInspect, now = Date.now()): Tool {
  const labels = c.Config.Labels ?? {};
  const name = labels[LABEL.toolName] ?? c.Name.replace(/^\//, "");
  const transport = parseTransport(labels[LABEL.transport]);
  const network = labels[LABEL.network] === "none" ? "none" : "egress";
  // Containers deployed before these labels existed are shared, with the default lanes.
  const isolation: Isolation = labels[LABEL.isolation] === "per_session" ? "per_session" : "shared";
  const maxLanes = Number(labels[LABEL.maxLanes] ?? NaN);
  const state: ToolState = isDockerState(c.State.Status) ? c.State.Status : "dead";
  const rawHealth = c.State.Health?.Status ?? "none";
  const health = (HEALTH as string[]).includes(rawHealth) ? (rawHealth as ToolHealth) : "none";
  const startedMs = Date.parse(c.State.StartedAt);
  const running = c.State.Running && Number.isFinite(startedMs) && startedMs > 0;
  const host = c.HostConfig;
  return {
    name,
    image: c.Config.Image,
    state,
    health,
    account_tool_instance_id: labels[LABEL.instanceId] || null,
    container_id: c.Id,
    spec_hash: labels[LABEL.specHash] ?? "",
    transport,
    isolation,
    max_lanes: Number.isSafeInteger(maxLanes) && maxLanes > 0 ? maxLanes : DEFAULT_LANES,
    network,
    user: c.Config.User || null,
    endpoint:
      transport.type === "http" && network === "egress"
        ? `http://${name}:${transport.port}${transport.path ?? "/"}`
        : null,
    resources: {
      memory_mb: Math.round(Number(host.Memory ?? 0) / (1024 * 1024)),
      cpus: Number(host.NanoCpus ?? 0) / 1e9,
      pids: Number(host.PidsLimit ?? 0),
    },
    created_at: c.Created,
    started_at: running ? c.State.StartedAt : null,
    uptime_seconds: running ? Math.max(0, Math.floor((now - startedMs) / 1000)) : 0,
    restarts: c.RestartCount,
  };
}

function parseTransport(label: string | undefined): Transport {
  try {
    const t = JSON.parse(label ?? "") as Transport;
    if (t.type === "http" && Number.isInteger(t.port)) return t;
  } catch {
    // a container without our label is shown as stdio
  }
  return { type: "stdio" };
}
