/**
 * The droplet in a box: one toolbox's DTMA and backend started on the real Docker daemon from the
 * container specs Pulumi declares (`components/containerSpecs.ts`, through the local harness's
 * `docker` CLI mapping), with freshly generated tokens and the backend published on loopback.
 */
import { randomBytes } from "node:crypto";
import { existsSync, statSync } from "node:fs";
import {
  BACKEND_PORT,
  DOCKER_SOCKET,
  toolboxContainers,
  type ToolboxContainers,
} from "../../components/containerSpecs";
import { createNetwork, docker, DTMA_TEST_IMAGE, runSpec } from "./dockerCli";

export const BACKEND_TEST_IMAGE = "agentopia/backend:dev";

interface ToolboxTokens {
  dtma: string;
  backendApi: string;
  agentGateway: string;
}

export interface Toolbox {
  accountId: string;
  specs: ToolboxContainers<string>;
  tokens: ToolboxTokens;
  /** http://127.0.0.1:<published port> */
  backendUrl: string;
  /** Prefix of the tools' own networks (`<prefix>.<tool>`), which the DTMA creates. */
  toolNetwork: string;
  /** Restarts the backend container and waits until it is healthy (Docker picks a new port). */
  restartBackend(): Promise<void>;
  remove(): void;
}

const token = () => randomBytes(48).toString("base64url").slice(0, 64);

export function imagePresent(image: string): boolean {
  try {
    docker(["image", "inspect", image]);
    return true;
  } catch {
    return false;
  }
}

/** Waits until the container's health check says healthy (or fails, with its last log lines). */
export async function waitHealthy(name: string, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let health = "";
  while (Date.now() < deadline) {
    health = docker(["inspect", "--format", "{{.State.Health.Status}}", name]);
    if (health === "healthy") return;
    if (health === "unhealthy") break;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(
    `${name} is ${health || "not healthy"}:\n${docker(["logs", "--tail", "30", name])}`,
  );
}

/** The loopback port Docker chose for the backend. */
function publishedPort(container: string, internal: number): number {
  const out = docker(["port", container, `${internal}/tcp`]);
  const port = Number(/:(\d+)\s*$/m.exec(out)?.[1]);
  if (!Number.isInteger(port) || port <= 0) throw new Error(`no published port in '${out}'`);
  return port;
}

/**
 * Starts a toolbox the way the local target declares it (Docker-chosen subnets and host port,
 * the socket's own group), heartbeating to `agentopiaApiBaseUrl`.
 */
export async function startToolbox(opts: {
  agentopiaApiBaseUrl?: string;
  dtmaImage?: string;
  backendImage?: string;
  /** Backend settings beyond the spec's (e.g. a benchmark lifts the rate limit). */
  backendEnv?: Record<string, string>;
  /** Secret backend settings beyond the spec's (TLS material): through the env file, never argv. */
  backendSecretEnv?: Record<string, string>;
}): Promise<Toolbox> {
  const accountId = `box-${randomBytes(3).toString("hex")}`;
  const tokens = { dtma: token(), backendApi: token(), agentGateway: token() };
  const specs = toolboxContainers({
    accountId,
    dtmaImage: opts.dtmaImage ?? DTMA_TEST_IMAGE,
    backendImage: opts.backendImage ?? BACKEND_TEST_IMAGE,
    agentopiaApiBaseUrl: opts.agentopiaApiBaseUrl ?? "http://127.0.0.1:9/v1",
    tokens: { ...tokens, dtmaPrevious: "" },
    publishAddress: "127.0.0.1",
    publishPort: 0,
    fixedSubnets: false,
    reachHost: true,
    dockerSocketGid: existsSync(DOCKER_SOCKET) ? statSync(DOCKER_SOCKET).gid : 0,
    dtmaMemoryMb: 160,
    backendMemoryMb: 192,
    toolCaps: { memoryMb: 256, cpus: 1, pids: 256 },
  });
  Object.assign(specs.backend.env, opts.backendEnv);
  Object.assign(specs.backend.secretEnv, opts.backendSecretEnv);
  const toolNetwork = specs.dtma.env.DTMA_TOOL_NETWORK;
  // With TLS material the backend speaks only HTTPS.
  const scheme = specs.backend.secretEnv.TLS_CERT ? "https" : "http";
  const backendUrl = () =>
    `${scheme}://127.0.0.1:${publishedPort(specs.backend.name, BACKEND_PORT)}`;
  const toolbox: Toolbox = {
    accountId,
    specs,
    tokens,
    backendUrl: "",
    toolNetwork,
    async restartBackend() {
      docker(["restart", "-t", "5", specs.backend.name]);
      await waitHealthy(specs.backend.name);
      toolbox.backendUrl = backendUrl();
    },
    remove() {
      // The DTMA's tools and their networks carry its scope; the resident ones their names.
      const scope = `label=agentopia.dtma-scope=${specs.dtma.env.DTMA_SCOPE}`;
      const tools = docker(["ps", "-aq", "--filter", scope]).split("\n").filter(Boolean);
      const toolNets = docker(["network", "ls", "-q", "--filter", scope]).split("\n");
      for (const args of [
        ["rm", "-f", specs.backend.name, specs.dtma.name, ...tools],
        ...[...toolNets.filter(Boolean), ...specs.networks.map((n) => n.name)].map((n) => [
          "network",
          "rm",
          n,
        ]),
      ]) {
        try {
          docker(args);
        } catch {
          // already gone
        }
      }
    },
  };
  try {
    for (const net of specs.networks) createNetwork(net);
    runSpec(specs.dtma);
    await waitHealthy(specs.dtma.name);
    runSpec(specs.backend);
    await waitHealthy(specs.backend.name);
    toolbox.backendUrl = backendUrl();
    return toolbox;
  } catch (err) {
    toolbox.remove();
    throw err;
  }
}
