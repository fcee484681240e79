/**
 * Container policies for the resident containers Pulumi declares on a toolbox (the DTMA and the
 * backend): only the DTMA holds the Docker socket, no fleet credential reaches a container, and
 * each one restarts, rotates its logs, has a memory limit and, in prod, a digest-pinned image.
 */
import { CONTENT_ADDRESSED, LABEL_ACCOUNT, LABEL_ROLE } from "@agentopia-toolboxes/contract";
import { record, records, stackOfUrn, text, texts, type Props } from "./props";
import { fleetCredentialIn } from "./secretScan";
import { configOf, type ResourcePolicy, type StackPolicy } from "./types";

export const CONTAINER = "docker:index/container:Container";
export const REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage";
export const ROLE_LABEL = LABEL_ROLE;
export const ACCOUNT_LABEL = LABEL_ACCOUNT;

export function labelOf(props: Props, label: string): string | undefined {
  const entry = records(props["labels"]).find((l) => l["label"] === label);
  return entry ? text(entry["value"]) : undefined;
}

/** `NAME=value` entries of a container's environment. */
export function envEntries(props: Props): { name: string; value: string }[] {
  return texts(props["envs"]).map((entry) => {
    const at = entry.indexOf("=");
    return at < 0
      ? { name: entry, value: "" }
      : { name: entry.slice(0, at), value: entry.slice(at + 1) };
  });
}

const DOCKER_SOCKET = /(?:^|\/)docker\.sock$/;

/** Host paths a container binds: `volumes[].hostPath` and bind `mounts[].source`. */
function hostBinds(props: Props): string[] {
  const volumes = records(props["volumes"]).map((v) => text(v["hostPath"]));
  const mounts = records(props["mounts"])
    .filter((m) => (text(m["type"]) ?? "bind") === "bind")
    .map((m) => text(m["source"]));
  return [...volumes, ...mounts].filter((p): p is string => p !== undefined);
}

export const containerDockerSocket: ResourcePolicy = {
  name: "container-docker-socket-dtma-only",
  description: `Only the DTMA (label ${ROLE_LABEL}=dtma) mounts the Docker socket: it is root on the host.`,
  enforcementLevel: "mandatory",
  severity: "critical",
  validateResource: (args, report) => {
    if (args.type !== CONTAINER) return;
    const role = labelOf(args.props, ROLE_LABEL);
    for (const path of hostBinds(args.props).filter((p) => DOCKER_SOCKET.test(p))) {
      if (role !== "dtma") {
        report(`mounts the Docker socket ${path} but its ${ROLE_LABEL} is ${role ?? "(unset)"}.`);
      }
    }
  },
};

export const containerFleetCredentials: ResourcePolicy = {
  name: "container-no-fleet-credentials",
  description:
    "No container's environment holds a fleet-wide credential (a DigitalOcean token, a Supabase service-role key, a Pulumi token).",
  enforcementLevel: "mandatory",
  severity: "critical",
  validateResource: (args, report) => {
    if (args.type !== CONTAINER) return;
    for (const { name, value } of envEntries(args.props)) {
      const reason = fleetCredentialIn(name, value);
      if (reason !== undefined) report(`${reason}.`);
    }
  },
};

const RESTART_POLICIES = ["always", "unless-stopped", "on-failure"];

export const containerRestart: ResourcePolicy = {
  name: "container-restart-policy",
  description:
    "Resident containers restart after a crash or a reboot (always, unless-stopped or on-failure).",
  enforcementLevel: "mandatory",
  severity: "medium",
  validateResource: (args, report) => {
    if (args.type !== CONTAINER) return;
    const restart = text(args.props["restart"]);
    if (restart === undefined || !RESTART_POLICIES.includes(restart)) {
      report(`restart is ${restart ?? "(unset)"}; use one of ${RESTART_POLICIES.join(", ")}.`);
    }
  },
};

export const containerLogRotation: ResourcePolicy = {
  name: "container-log-rotation",
  description:
    'Container logs are rotated: logDriver "local", or "json-file" with logOpts max-size and max-file.',
  enforcementLevel: "mandatory",
  severity: "medium",
  validateResource: (args, report) => {
    if (args.type !== CONTAINER) return;
    const driver = text(args.props["logDriver"]);
    const opts = record(args.props["logOpts"]) ?? {};
    if (driver === "local") return;
    if (driver !== "json-file") {
      report(`logDriver is ${driver ?? "(unset)"}; use "local" or "json-file" with rotation.`);
      return;
    }
    for (const opt of ["max-size", "max-file"]) {
      if (text(opts[opt]) === undefined) report(`logOpts.${opt} must be set for json-file logs.`);
    }
  },
};

export const containerMemory: ResourcePolicy = {
  name: "container-memory-limit",
  description: "Every container has a memory limit, so one cannot starve the droplet.",
  enforcementLevel: "mandatory",
  severity: "high",
  validateResource: (args, report) => {
    if (args.type !== CONTAINER) return;
    const memory: unknown = args.props["memory"];
    if (typeof memory !== "number" || memory <= 0) report("memory (MB) must be set above 0.");
  },
};

export const containerImageDigest: ResourcePolicy = {
  name: "container-image-digest",
  description:
    "Images are pinned by digest in prod (stacks listed in pinnedStacks) or wherever requireDigestPins is true.",
  enforcementLevel: "mandatory",
  severity: "high",
  configSchema: {
    properties: {
      requireDigestPins: { type: "boolean", default: false },
      pinnedStacks: { type: "array", items: { type: "string" }, default: ["prod"] },
    },
  },
  validateResource: (args, report) => {
    const field = args.type === CONTAINER ? "image" : args.type === REMOTE_IMAGE ? "name" : "";
    if (field === "") return;
    const { requireDigestPins, pinnedStacks } = configOf(args, {
      requireDigestPins: false,
      pinnedStacks: ["prod"],
    });
    const stack = stackOfUrn(args.urn) ?? "";
    if (!requireDigestPins && !pinnedStacks.includes(stack)) return;
    const image = text(args.props[field]) ?? "";
    if (!CONTENT_ADDRESSED.test(image)) {
      report(`${field} ${image || "(unset)"} is not pinned by digest (…@sha256:<64 hex>).`);
    }
  },
};

const STACK_REFERENCE = "pulumi:pulumi:StackReference";

/** The image a Container (`image`) or RemoteImage (`name`) names, or undefined for others. */
function imageOf(type: string, props: Props): { field: string; image: string } | undefined {
  const field = type === CONTAINER ? "image" : type === REMOTE_IMAGE ? "name" : "";
  return field === "" ? undefined : { field, image: text(props[field]) ?? "" };
}

export const accountImageDigest: StackPolicy = {
  name: "account-stack-image-digest",
  description:
    "An account stack whose platform stack (its StackReference) is in pinnedStacks pins every image by digest, like its platform.",
  enforcementLevel: "mandatory",
  severity: "high",
  configSchema: {
    properties: {
      pinnedStacks: { type: "array", items: { type: "string" }, default: ["prod"] },
    },
  },
  validateStack: (args, report) => {
    const { pinnedStacks } = configOf(args, { pinnedStacks: ["prod"] });
    const platform = args.resources
      .filter((r) => r.type === STACK_REFERENCE)
      .map((r) => text(r.props["name"]) ?? "")
      .find((name) => pinnedStacks.includes(name.split("/").pop() ?? ""));
    if (platform === undefined) return;
    for (const r of args.resources) {
      const named = imageOf(r.type, r.props);
      if (named !== undefined && !CONTENT_ADDRESSED.test(named.image)) {
        report(
          `${r.name}: ${named.field} ${named.image || "(unset)"} is not pinned by digest; its platform ${platform} requires pins.`,
          r.urn,
        );
      }
    }
  },
};

export const containerPolicies = [
  containerDockerSocket,
  containerFleetCredentials,
  containerRestart,
  containerLogRotation,
  containerMemory,
  containerImageDigest,
];
