/**
 * The local end-to-end harness: runs the pure container specs on a real Docker daemon with the
 * `docker` CLI, flag for flag what `ToolboxContainers` declares through the Pulumi provider.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { existsSync, statSync } from "node:fs";
import {
  DOCKER_SOCKET,
  toolboxContainers,
  type ContainerSpec,
  type NetworkSpec,
  type ToolboxContainers,
} from "../../components/containerSpecs";

export const DTMA_TEST_IMAGE = "agentopia/dtma:dev";

/**
 * The specs as the local target declares them (Docker-chosen subnets, the host reachable as
 * host.docker.internal, the socket's own group), with the DTMA image the tests build.
 */
export function localSpecs(
  accountId: string,
  dtmaToken: string,
  agentopiaApiBaseUrl: string,
): ToolboxContainers<string> {
  return toolboxContainers({
    accountId,
    dtmaImage: DTMA_TEST_IMAGE,
    backendImage: "agentopia/backend:local",
    agentopiaApiBaseUrl,
    tokens: { dtma: dtmaToken, dtmaPrevious: "", backendApi: "unused", agentGateway: "unused" },
    publishAddress: "127.0.0.1",
    publishPort: 0,
    fixedSubnets: false,
    reachHost: true,
    dockerSocketGid: existsSync(DOCKER_SOCKET) ? statSync(DOCKER_SOCKET).gid : 0,
    dtmaMemoryMb: 160,
    backendMemoryMb: 192,
    toolCaps: { memoryMb: 64, cpus: 0.5, pids: 64 },
  });
}

export function docker(args: string[]): string {
  return execFileSync("docker", args, {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
  }).trim();
}

export function createNetwork(net: NetworkSpec): void {
  const labels = Object.entries(net.labels).flatMap(([k, v]) => ["--label", `${k}=${v}`]);
  docker([
    "network",
    "create",
    "--driver",
    "bridge",
    ...labels,
    ...(net.subnet ? ["--subnet", net.subnet] : []),
    net.name,
  ]);
}

/** `docker create` arguments for a spec; secrets come from `envFile`, never argv. */
function createArgs(spec: ContainerSpec<string>, envFile: string): string[] {
  const [first] = spec.networks;
  const args = [
    "create",
    "--name",
    spec.name,
    "--restart",
    spec.restart,
    "--init",
    "--memory",
    `${spec.memoryMb}m`,
    "--memory-swap",
    `${spec.memoryMb}m`,
    "--log-driver",
    "json-file",
    ...Object.entries(spec.logOpts).flatMap(([k, v]) => ["--log-opt", `${k}=${v}`]),
    ...spec.capDrop.flatMap((c) => ["--cap-drop", c]),
    ...spec.securityOpts.flatMap((o) => ["--security-opt", o]),
    ...spec.groupAdd.flatMap((g) => ["--group-add", g]),
    ...Object.entries(spec.extraHosts).flatMap(([host, ip]) => ["--add-host", `${host}:${ip}`]),
    ...(spec.readOnlyRootfs ? ["--read-only"] : []),
    ...Object.entries(spec.tmpfs).flatMap(([path, opts]) => ["--tmpfs", `${path}:${opts}`]),
    ...Object.entries(spec.labels).flatMap(([k, v]) => ["--label", `${k}=${v}`]),
    ...Object.entries(spec.env).flatMap(([k, v]) => ["--env", `${k}=${v}`]),
    ...spec.mounts.flatMap((m) => [
      "--volume",
      `${m.hostPath}:${m.containerPath}${m.readOnly ? ":ro" : ""}`,
    ]),
    ...spec.ports.flatMap((p) => ["--publish", `${p.ip}:${p.external}:${p.internal}`]),
    ...healthArgs(spec.healthcheck.test, spec.healthcheck),
    ...(first
      ? ["--network", first.name, ...first.aliases.flatMap((a) => ["--network-alias", a])]
      : []),
    "--env-file",
    envFile,
    spec.image,
  ];
  // Further networks are connected before start (runSpec): `create` takes one.
  return args;
}

export function runSpec(spec: ContainerSpec<string>): void {
  const dir = mkdtempSync(join(tmpdir(), "harness-env-"));
  try {
    const envFile = join(dir, "env");
    const lines = Object.entries(spec.secretEnv).map(([k, v]) => `${k}=${v}\n`);
    writeFileSync(envFile, lines.join(""), { mode: 0o600 });
    docker(createArgs(spec, envFile));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  for (const net of spec.networks.slice(1)) {
    docker([
      "network",
      "connect",
      ...net.aliases.flatMap((a) => ["--alias", a]),
      net.name,
      spec.name,
    ]);
  }
  docker(["start", spec.name]);
}

export function imagePresent(image: string): boolean {
  try {
    docker(["image", "inspect", image]);
    return true;
  } catch {
    return false;
  }
}

/**
 * The daemon's bridge address (docker0), which `host.docker.internal` (host-gateway) names in a
 * container: a service the containers must reach listens there, not on every interface.
 * (docker0 is often down with no container on it, so Node's interface list omits it.)
 */
export function dockerBridgeAddress(): string {
  const address = /inet (\d+\.\d+\.\d+\.\d+)\//.exec(
    execFileSync("ip", ["-4", "-o", "addr", "show", "docker0"], { encoding: "utf8" }),
  )?.[1];
  if (!address) throw new Error("no docker0 address: is the Docker daemon running?");
  return address;
}

/**
 * `docker create` health flags for a check in exec form. The CLI takes the probe in shell form
 * (the argv quoted); it is probed every second so a test need not wait the production interval.
 */
export function healthArgs(
  test: string[],
  check: { timeout: string; retries: number; startPeriod: string },
): string[] {
  return [
    "--health-cmd",
    test
      .slice(1)
      .map((a) => JSON.stringify(a))
      .join(" "),
    "--health-interval",
    "1s",
    "--health-timeout",
    check.timeout,
    "--health-retries",
    String(check.retries),
    "--health-start-period",
    check.startPeriod,
  ];
}
