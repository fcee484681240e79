/**
 * The one definition of a toolbox's resident containers (DTMA and backend) and their networks.
 *
 * Pure: no Pulumi, no Docker. `ToolboxContainers` (AccountToolbox's part) maps it onto
 * `docker.Container`/`docker.Network` and the local end-to-end harness (tests/harness/dockerCli.ts)
 * onto `docker` CLI arguments, so what CI runs on a real daemon is what Pulumi declares. Secret
 * values are generic (`S`): Pulumi passes `Output<string>`, the harness passes plain strings.
 */

import {
  BACKEND_ALIAS,
  BACKEND_PORT,
  BACKEND_TLS_ENV,
  CONTROL_SUBNET,
  DTMA_ALIAS,
  DTMA_PORT,
  LABEL_ACCOUNT,
  LABEL_MANAGED_BY,
  LABEL_ROLE,
  TOOLS_SUBNET,
  containerNameFor,
  dtmaScopeFor,
  networkNameFor,
  type ResidentRole,
} from "@agentopia-toolboxes/contract";

export { BACKEND_PORT, CONTROL_SUBNET, DTMA_PORT, TOOLS_SUBNET };
export const DOCKER_SOCKET = "/var/run/docker.sock";

type ContainerRole = ResidentRole;

export interface NetworkSpec {
  /**
   * Key the component uses to name the Pulumi resource (`${name}-net-<key>`). Tools get no
   * declared network: the DTMA gives each its own (decision 0026).
   */
  key: "control";
  name: string;
  /** Undefined: let Docker choose (several toolboxes on one local daemon). */
  subnet?: string;
  labels: Record<string, string>;
}

export interface ContainerSpec<S> {
  role: ContainerRole;
  name: string;
  image: string;
  /** Plain settings; never secret. */
  env: Record<string, string>;
  /** Secret settings: reach the container only through the Docker API. */
  secretEnv: Record<string, S>;
  ports: { internal: number; external: number; ip: string }[];
  mounts: { hostPath: string; containerPath: string; readOnly: boolean }[];
  networks: { name: string; aliases: string[] }[];
  healthcheck: {
    test: string[];
    interval: string;
    timeout: string;
    startPeriod: string;
    retries: number;
  };
  memoryMb: number;
  /** Supplementary groups by GID (the DTMA runs as a non-root user in the socket's group). */
  groupAdd: string[];
  /** Extra /etc/hosts entries (`host-gateway` is Docker's name for the host). */
  extraHosts: Record<string, string>;
  restart: "unless-stopped";
  init: true;
  readOnlyRootfs: boolean;
  tmpfs: Record<string, string>;
  capDrop: string[];
  securityOpts: string[];
  logOpts: { "max-size": string; "max-file": string };
  labels: Record<string, string>;
}

export interface ToolboxContainersInput<S> {
  accountId: string;
  dtmaImage: string;
  backendImage: string;
  agentopiaApiBaseUrl: string;
  tokens: {
    dtma: S;
    /** The DTMA token of the previous generation, accepted during a rotation. */
    dtmaPrevious: S;
    backendApi: S;
    agentGateway: S;
  };
  /** Address the backend port is published on: all interfaces on a droplet, loopback locally. */
  publishAddress: string;
  /** Host port for the backend. */
  publishPort: number;
  /** Fixed subnets on droplets (the host firewall names them); Docker's choice locally. */
  fixedSubnets: boolean;
  /**
   * Let the DTMA reach the host as `host.docker.internal` (locally, where the control plane it
   * heartbeats to runs on the host). Never on droplets: containers must not reach the host.
   */
  reachHost: boolean;
  /** GID owning the Docker socket on the host: fixed by cloud-init on droplets. */
  dockerSocketGid: number;
  dtmaMemoryMb: number;
  backendMemoryMb: number;
  /** Caps the DTMA enforces on every tool container. */
  toolCaps: { memoryMb: number; cpus: number; pids: number };
  /**
   * The backend's certificate and key, base64 of PEM (one line: safe in any env transport):
   * the backend then serves only HTTPS. Absent: plain HTTP (the local target on loopback).
   */
  backendTls?: { cert: S; key: S };
}

export interface ToolboxContainers<S> {
  networks: NetworkSpec[];
  dtma: ContainerSpec<S>;
  backend: ContainerSpec<S>;
}

const LOG_OPTS = { "max-size": "10m", "max-file": "3" } as const;

/**
 * A health check that needs nothing but the Node runtime both images already have. It speaks TLS
 * when the container has TLS material (the backend on a droplet) and skips verifying the
 * certificate: it sends no token and only asks the process inside its own container for /health.
 */
function httpHealthcheck(port: number): ContainerSpec<never>["healthcheck"] {
  const probe =
    "require(process.env.TLS_CERT?'node:https':'node:http')" +
    `.get({host:'127.0.0.1',port:${port},path:'/health',rejectUnauthorized:false,timeout:4000},` +
    "r=>process.exit(r.statusCode===200?0:1)).on('error',()=>process.exit(1))";
  return {
    test: ["CMD", "node", "-e", probe],
    interval: "15s",
    timeout: "5s",
    startPeriod: "20s",
    retries: 3,
  };
}

export function toolboxContainers<S>(input: ToolboxContainersInput<S>): ToolboxContainers<S> {
  const common = {
    [LABEL_ACCOUNT]: input.accountId,
    [LABEL_MANAGED_BY]: "pulumi",
  };
  const control: NetworkSpec = {
    key: "control",
    name: networkNameFor(input.accountId, "control"),
    subnet: input.fixedSubnets ? CONTROL_SUBNET : undefined,
    labels: common,
  };
  // Each egress tool gets a network of its own from the DTMA, named `<this>.<tool>`, shared only
  // with the backend (decision 0026); on droplets its subnet comes from TOOLS_SUBNET, which the
  // host firewall names.
  const toolNetworkPrefix = networkNameFor(input.accountId, "tools");
  const backendName = containerNameFor(input.accountId, "backend");
  const hardening = {
    restart: "unless-stopped" as const,
    init: true as const,
    readOnlyRootfs: true,
    tmpfs: { "/tmp": "rw,noexec,nosuid,size=16m" },
    capDrop: ["ALL"],
    securityOpts: ["no-new-privileges:true"],
    logOpts: { ...LOG_OPTS },
  };

  const dtma: ContainerSpec<S> = {
    role: "dtma",
    name: containerNameFor(input.accountId, "dtma"),
    image: input.dtmaImage,
    env: {
      PORT: String(DTMA_PORT),
      AGENTOPIA_API_BASE_URL: input.agentopiaApiBaseUrl,
      DTMA_TOOL_NETWORK: toolNetworkPrefix,
      ...(input.fixedSubnets ? { DTMA_TOOL_SUBNET_POOL: TOOLS_SUBNET } : {}),
      DTMA_GATEWAY_CONTAINER: backendName,
      // Keeps this toolbox's tools apart from another's on a shared daemon (local target).
      DTMA_SCOPE: dtmaScopeFor(input.accountId),
      // Its tool containers carry the account label like these resident containers.
      DTMA_ACCOUNT_ID: input.accountId,
      // Reported in its heartbeats: what a fleet upgrade waits to see (issue 11).
      DTMA_IMAGE: input.dtmaImage,
      DTMA_MAX_TOOL_MEMORY_MB: String(input.toolCaps.memoryMb),
      DTMA_MAX_TOOL_CPUS: String(input.toolCaps.cpus),
      DTMA_MAX_TOOL_PIDS: String(input.toolCaps.pids),
    },
    secretEnv: {
      DTMA_BEARER_TOKEN: input.tokens.dtma,
      DTMA_BEARER_TOKEN_PREVIOUS: input.tokens.dtmaPrevious,
    },
    // The DTMA is private: no published port, reachable only on the control network.
    ports: [],
    mounts: [{ hostPath: DOCKER_SOCKET, containerPath: DOCKER_SOCKET, readOnly: false }],
    networks: [{ name: control.name, aliases: [DTMA_ALIAS] }],
    healthcheck: httpHealthcheck(DTMA_PORT),
    memoryMb: input.dtmaMemoryMb,
    groupAdd: [String(input.dockerSocketGid)],
    extraHosts: input.reachHost ? { "host.docker.internal": "host-gateway" } : {},
    ...hardening,
    labels: { ...common, [LABEL_ROLE]: "dtma" },
  };

  const backend: ContainerSpec<S> = {
    role: "backend",
    name: backendName,
    image: input.backendImage,
    env: {
      PORT: String(BACKEND_PORT),
      DTMA_URL: `http://${DTMA_ALIAS}:${DTMA_PORT}`,
      // Reported by its GET /status (issue 11).
      BACKEND_IMAGE: input.backendImage,
    },
    secretEnv: {
      INTERNAL_API_SECRET: input.tokens.backendApi,
      AGENT_GATEWAY_TOKEN: input.tokens.agentGateway,
      DTMA_BEARER_TOKEN: input.tokens.dtma,
      ...(input.backendTls && {
        [BACKEND_TLS_ENV.cert]: input.backendTls.cert,
        [BACKEND_TLS_ENV.key]: input.backendTls.key,
      }),
    },
    ports: [{ internal: BACKEND_PORT, external: input.publishPort, ip: input.publishAddress }],
    mounts: [],
    // Control network to drive the DTMA; the DTMA connects it to each tool's own network.
    networks: [{ name: control.name, aliases: [BACKEND_ALIAS] }],
    healthcheck: httpHealthcheck(BACKEND_PORT),
    memoryMb: input.backendMemoryMb,
    groupAdd: [],
    extraHosts: {},
    ...hardening,
    labels: { ...common, [LABEL_ROLE]: "backend" },
  };

  return { networks: [control], dtma, backend };
}
