import { LABEL, MANAGED_BY } from "../tools/labels";
import type { ParsedSpec } from "../tools/spec";

// The sandbox every tool container gets (DESIGN.md, trust boundaries). Nothing in a deploy
// request can change these: the spec schema has no field that reaches them.

export interface SandboxInput {
  name: string;
  scope: string;
  /** The toolbox's account: labelled like its resident containers. */
  account?: string;
  spec: ParsedSpec;
  hash: string;
  resources: { memory_mb: number; cpus: number; pids: number };
  /** uid:gid the tool runs as (`toolUser`); default 65534:65534. */
  user?: string;
  toolNetwork: string;
}

const TMPFS_SIZE = "64m";

/** The image's user when it is a numeric uid other than 0, else nobody (65534). */
const NUMERIC_NON_ROOT = /^[1-9][0-9]*(?::[0-9]+)?$/;
const NOBODY = "65534:65534";

/**
 * Who a tool runs as: root only when asked (and allowed), an explicit numeric user, the image's
 * numeric non-root user, otherwise 65534. A user name is never taken: Docker resolves it from
 * the image's own /etc/passwd, where any name can be uid 0.
 */
export function toolUser(spec: ParsedSpec, imageUser: string | undefined): string {
  if (spec.run_as_root) return "0:0";
  if (spec.user) return spec.user;
  return imageUser && NUMERIC_NON_ROOT.test(imageUser) ? imageUser : NOBODY;
}

export function containerBody(input: SandboxInput): Record<string, unknown> {
  const { spec, resources } = input;
  const memory = resources.memory_mb * 1024 * 1024;
  const networkMode = spec.network === "none" ? "none" : input.toolNetwork;
  const env = { ...spec.env, ...spec.secrets };
  return {
    Image: spec.image,
    User: input.user ?? NOBODY,
    ...(spec.command ? { Cmd: spec.command } : {}),
    Env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
    Labels: {
      [LABEL.managedBy]: MANAGED_BY,
      [LABEL.scope]: input.scope,
      ...(input.account ? { [LABEL.account]: input.account } : {}),
      [LABEL.toolName]: input.name,
      [LABEL.instanceId]: spec.account_tool_instance_id ?? "",
      [LABEL.specHash]: input.hash,
      [LABEL.transport]: JSON.stringify(spec.transport),
      [LABEL.isolation]: spec.isolation,
      [LABEL.maxLanes]: String(spec.max_lanes),
      [LABEL.network]: spec.network,
      [LABEL.runAsRoot]: String(spec.run_as_root),
    },
    // stdio tools read from stdin; keep it open so they do not exit at start, and across
    // attachments: StdinOnce false means a closed attachment never closes the tool's stdin.
    OpenStdin: spec.transport.type === "stdio",
    StdinOnce: false,
    Tty: false,
    HostConfig: {
      Privileged: false,
      CapDrop: ["ALL"],
      SecurityOpt: ["no-new-privileges:true"],
      ReadonlyRootfs: true,
      // Nothing writable is executable: /tmp, and /dev (Docker's is exec) with /dev/shm under it.
      Tmpfs: {
        "/tmp": `rw,noexec,nosuid,nodev,size=${TMPFS_SIZE}`,
        "/dev": "rw,dev,noexec,nosuid,size=64k,mode=755",
        "/dev/shm": `rw,noexec,nosuid,nodev,size=${TMPFS_SIZE}`,
      },
      CgroupnsMode: "private",
      Memory: memory,
      MemorySwap: memory,
      NanoCpus: Math.round(resources.cpus * 1e9),
      PidsLimit: resources.pids,
      Init: true,
      RestartPolicy: { Name: "unless-stopped" },
      NetworkMode: networkMode,
      PortBindings: {},
      PublishAllPorts: false,
      Binds: [],
      Mounts: [],
      Devices: [],
      IpcMode: "private",
      LogConfig: { Type: "json-file", Config: { "max-size": "10m", "max-file": "3" } },
    },
    NetworkingConfig:
      networkMode === "none"
        ? {}
        : { EndpointsConfig: { [networkMode]: { Aliases: [input.name] } } },
  };
}
