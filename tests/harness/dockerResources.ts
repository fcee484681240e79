/**
 * Pulumi Docker resources, as the program declares them, created on a real daemon with the
 * `docker` CLI: a `docker:index/network:Network` or `docker:index/container:Container`'s inputs
 * (evaluated under mocks) become the same network or container. Every input is mapped or refused:
 * an input the component gains and this file does not know fails the test instead of being
 * silently dropped. Secrets (the `envs` list) go through an env file, never argv.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { docker, healthArgs } from "./dockerCli";

export { docker };

export const NETWORK = "docker:index/network:Network";
export const CONTAINER = "docker:index/container:Container";
export const REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage";

type Inputs = Record<string, unknown>;
const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);
type Label = { label: string; value: string };

function refuseUnknown(kind: string, inputs: Inputs, known: string[]): void {
  const unknown = Object.keys(inputs).filter((k) => inputs[k] !== undefined && !known.includes(k));
  if (unknown.length > 0) {
    throw new Error(`${kind} input(s) ${unknown.join(", ")} have no docker CLI mapping here`);
  }
}

const labelArgs = (labels: unknown) =>
  ((labels ?? []) as Label[]).flatMap((l) => ["--label", `${l.label}=${l.value}`]);

export function createNetwork(inputs: Inputs): void {
  refuseUnknown("network", inputs, ["name", "driver", "ipamConfigs", "labels"]);
  const subnets = ((inputs.ipamConfigs ?? []) as { subnet?: string }[]).flatMap((c) =>
    c.subnet ? ["--subnet", c.subnet] : [],
  );
  docker([
    "network",
    "create",
    "--driver",
    str(inputs.driver) ?? "bridge",
    ...labelArgs(inputs.labels),
    ...subnets,
    String(inputs.name),
  ]);
}

const CONTAINER_INPUTS = [
  "name",
  "image",
  "envs",
  "ports",
  "volumes",
  "networksAdvanced",
  "healthcheck",
  "memory",
  "memorySwap",
  "groupAdds",
  "hosts",
  "restart",
  "init",
  "readOnly",
  "tmpfs",
  "capabilities",
  "securityOpts",
  "logDriver",
  "logOpts",
  "labels",
  "wait",
  "waitTimeout",
];

/**
 * Creates and starts a container from its inputs; `image` is the reference to run (the program's
 * input is the RemoteImage's id). The health check runs every second instead of its declared
 * interval, so a test need not wait for production timing; everything else is as declared.
 */
export function createContainer(inputs: Inputs, image: string): void {
  refuseUnknown("container", inputs, CONTAINER_INPUTS);
  const name = String(inputs.name);
  const networks = (inputs.networksAdvanced ?? []) as { name: string; aliases?: string[] }[];
  const health = inputs.healthcheck as
    { tests: string[]; timeout: string; startPeriod: string; retries: number } | undefined;
  const ports = (inputs.ports ?? []) as { internal: number; external?: number; ip?: string }[];
  const volumes = (inputs.volumes ?? []) as {
    hostPath: string;
    containerPath: string;
    readOnly?: boolean;
  }[];
  const [first, ...rest] = networks;
  const args = [
    "create",
    "--name",
    name,
    ...(str(inputs.restart) ? ["--restart", str(inputs.restart)!] : []),
    ...(inputs.init ? ["--init"] : []),
    ...(inputs.memory !== undefined ? ["--memory", `${Number(inputs.memory)}m`] : []),
    ...(inputs.memorySwap !== undefined ? ["--memory-swap", `${Number(inputs.memorySwap)}m`] : []),
    ...(str(inputs.logDriver) ? ["--log-driver", str(inputs.logDriver)!] : []),
    ...Object.entries((inputs.logOpts ?? {}) as Record<string, string>).flatMap(([k, v]) => [
      "--log-opt",
      `${k}=${v}`,
    ]),
    ...((inputs.capabilities as { drops?: string[] } | undefined)?.drops ?? []).flatMap((c) => [
      "--cap-drop",
      c,
    ]),
    ...((inputs.securityOpts ?? []) as string[]).flatMap((o) => ["--security-opt", o]),
    ...((inputs.groupAdds ?? []) as string[]).flatMap((g) => ["--group-add", g]),
    ...((inputs.hosts ?? []) as { host: string; ip: string }[]).flatMap((h) => [
      "--add-host",
      `${h.host}:${h.ip}`,
    ]),
    ...(inputs.readOnly ? ["--read-only"] : []),
    ...Object.entries((inputs.tmpfs ?? {}) as Record<string, string>).flatMap(([p, o]) => [
      "--tmpfs",
      `${p}:${o}`,
    ]),
    ...labelArgs(inputs.labels),
    ...volumes.flatMap((v) => [
      "--volume",
      `${v.hostPath}:${v.containerPath}${v.readOnly ? ":ro" : ""}`,
    ]),
    // No external port: Docker chooses one, as the provider lets it.
    ...ports.flatMap((p) => [
      "--publish",
      `${p.ip ? `${p.ip}:` : ""}${p.external ?? ""}:${p.internal}`,
    ]),
    ...(health ? healthArgs(health.tests, health) : []),
    ...(first
      ? ["--network", first.name, ...(first.aliases ?? []).flatMap((a) => ["--network-alias", a])]
      : []),
  ];
  const dir = mkdtempSync(join(tmpdir(), "stand-in-env-"));
  try {
    const envFile = join(dir, "env");
    writeFileSync(envFile, ((inputs.envs ?? []) as string[]).map((e) => `${e}\n`).join(""), {
      mode: 0o600,
    });
    docker([...args, "--env-file", envFile, image]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  for (const net of rest) {
    docker([
      "network",
      "connect",
      ...(net.aliases ?? []).flatMap((a) => ["--alias", a]),
      net.name,
      name,
    ]);
  }
  docker(["start", name]);
}

/** Waits, as `wait: true` does, until the container's health check passes. */
export async function waitHealthy(name: string, timeoutSeconds: number): Promise<void> {
  const deadline = Date.now() + timeoutSeconds * 1000;
  let health = "";
  while (Date.now() < deadline) {
    health = docker([
      "inspect",
      "--format",
      "{{if .State.Health}}{{.State.Health.Status}}{{end}}",
      name,
    ]);
    if (health === "healthy" || health === "") return;
    if (health === "unhealthy") break;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(
    `${name} is ${health || "not healthy"}:\n${docker(["logs", "--tail", "30", name])}`,
  );
}

/** The host port Docker published `internal` on, for each port input. */
export function publishedPorts(
  name: string,
  ports: { internal: number; external?: number; ip?: string }[],
): { internal: number; external: number; ip?: string }[] {
  return ports.map((p) => {
    const out = docker(["port", name, `${p.internal}/tcp`]);
    const external = Number(/:(\d+)\s*$/m.exec(out)?.[1]);
    if (!Number.isInteger(external) || external <= 0) throw new Error(`no published port: ${out}`);
    return { ...p, external };
  });
}

/** Removes containers and networks, ignoring those already gone. */
export function removeAll(containers: string[], networks: string[]): void {
  for (const args of [
    ...(containers.length > 0 ? [["rm", "-f", ...containers]] : []),
    ...networks.map((n) => ["network", "rm", n]),
  ]) {
    try {
      docker(args);
    } catch (err) {
      if (!/No such|not found/i.test(String((err as { stderr?: unknown }).stderr ?? err)))
        throw err;
    }
  }
}
