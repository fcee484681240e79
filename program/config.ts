/**
 * Stack configuration, parsed and validated once into typed objects.
 *
 * Both programs (the operator program in `index.ts` and the per-account program the automation
 * service runs) read the `agentopia-toolboxes` namespace through the schemas below. A wrong value
 * stops the program with one line that names the key and what is allowed.
 */
import * as pulumi from "@pulumi/pulumi";
import {
  ACCOUNT_ID_PATTERN,
  ACCOUNT_ID_RULE,
  ALLOWED_SIZES,
  BACKEND_INGRESS,
  CONFIG_NAMESPACE,
  controlPlaneCidrProblem,
  DIGEST_PIN_RULE,
  DIGEST_PINNED,
  IMAGE_REFERENCE,
  IMAGE_REFERENCE_RULE,
  REGIONS,
  SIZES,
  type ToolboxProfile,
} from "@agentopia-toolboxes/contract";
import { z } from "zod";
import { TOOLBOX_DEFAULTS } from "../components/defaults";

export { ACCOUNT_ID_PATTERN, CONFIG_NAMESPACE, REGIONS, SIZES };

const DEFAULTS = TOOLBOX_DEFAULTS;

const accountId = z.string().regex(ACCOUNT_ID_PATTERN, ACCOUNT_ID_RULE);

/** The addresses allowed to reach SSH and the backend: never the whole internet. */
const cidr = z.string().superRefine((value, ctx) => {
  const problem = controlPlaneCidrProblem(value);
  if (problem !== undefined) ctx.addIssue({ code: "custom", message: problem });
});
const controlPlaneCidrs = z.array(cidr).min(1, "must list at least one CIDR");

const region = z.enum(REGIONS, { error: `must be one of ${REGIONS.join(", ")}` });
const size = z.enum(SIZES, { error: `must be one of ${SIZES.join(", ")}` });

const url = z.url({ protocol: /^https?$/, error: "must be an http(s) URL" });
const backendIngress = z.enum(BACKEND_INGRESS, {
  error: `must be one of ${BACKEND_INGRESS.join(", ")}`,
});

/** On droplets the DTMA's heartbeat, which carries its token, crosses the internet: TLS only. */
function requireHttpsOnDroplets(
  cfg: { target: string; agentopiaApiBaseUrl: string },
  ctx: z.RefinementCtx,
): void {
  if (cfg.target === "digitalocean" && !cfg.agentopiaApiBaseUrl.startsWith("https://")) {
    ctx.addIssue({
      code: "custom",
      path: ["agentopiaApiBaseUrl"],
      message:
        "must be an https:// URL for target digitalocean (the DTMA's heartbeat carries its token)",
    });
  }
}

const imageRef = z.string().regex(IMAGE_REFERENCE, IMAGE_REFERENCE_RULE);

const domain = z
  .string()
  .regex(
    /^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/,
    "must be a domain name",
  );

const images = z.object({ dtma: imageRef, backend: imageRef });

const toolbox = z.object({
  accountId,
  region: region.optional(),
  size: size.optional(),
  reservedIp: z.boolean().optional(),
  tokenGeneration: z.number().int().min(0).optional(),
});

const target = z.enum(["digitalocean", "local"], { error: "must be digitalocean or local" });

const operatorSchema = z
  .object({
    target: target.default(DEFAULTS.target),
    regions: z.array(region).min(1, "must list at least one region").default([DEFAULTS.region]),
    defaultSize: size.default(DEFAULTS.size),
    /** Sizes the environment's toolboxes may have (exported in its toolbox profile). */
    sizes: z
      .array(size)
      .min(1, "must list at least one size")
      .default([...ALLOWED_SIZES]),
    dropletImage: z.string().min(1).default(DEFAULTS.dropletImage),
    backups: z.boolean().default(DEFAULTS.backups),
    controlPlaneCidrs: controlPlaneCidrs.optional(),
    automationSshPublicKey: z
      .string()
      .regex(/^ssh-(ed25519|rsa) [A-Za-z0-9+/=]+( .*)?$/, "must be an OpenSSH public key")
      .optional(),
    agentopiaApiBaseUrl: url,
    /** Who may reach the backend port (exported in the toolbox profile). */
    backendIngress: backendIngress.default("controlPlane"),
    dnsZone: domain.optional(),
    images,
    requireDigestPins: z.boolean().default(false),
    dtmaMemoryMb: z.number().int().min(96).max(1024).default(DEFAULTS.dtmaMemoryMb),
    backendMemoryMb: z.number().int().min(96).max(1024).default(DEFAULTS.backendMemoryMb),
    toolCaps: z
      .object({
        memoryMb: z.number().int().min(16).max(8192).default(DEFAULTS.toolCaps.memoryMb),
        cpus: z.number().positive().max(8).default(DEFAULTS.toolCaps.cpus),
        pids: z.number().int().min(16).max(4096).default(DEFAULTS.toolCaps.pids),
      })
      .prefault({}),
    swapMb: z.number().int().min(0).max(8192).default(DEFAULTS.swapMb),
    localDockerHost: z.string().min(1).optional(),
    localBackendPort: z.number().int().min(1024).max(65535).default(DEFAULTS.localBackendPort),
    sshStateDir: z.string().min(1).optional(),
    toolboxes: z.array(toolbox).default([]),
  })
  .superRefine((cfg, ctx) => {
    const seen = new Set<string>();
    cfg.toolboxes.forEach((t, i) => {
      if (seen.has(t.accountId)) {
        ctx.addIssue({
          code: "custom",
          path: ["toolboxes", i, "accountId"],
          message: `duplicates ${t.accountId}`,
        });
      }
      seen.add(t.accountId);
      if (t.size !== undefined && !cfg.sizes.includes(t.size)) {
        ctx.addIssue({
          code: "custom",
          path: ["toolboxes", i, "size"],
          message: `must be one of the environment's sizes (${cfg.sizes.join(", ")})`,
        });
      }
      if (t.region !== undefined && !cfg.regions.includes(t.region)) {
        ctx.addIssue({
          code: "custom",
          path: ["toolboxes", i, "region"],
          message: `must be one of the platform's regions (${cfg.regions.join(", ")})`,
        });
      }
    });
    if (cfg.target === "digitalocean") {
      for (const key of ["controlPlaneCidrs", "automationSshPublicKey"] as const) {
        if (cfg[key] === undefined) {
          ctx.addIssue({
            code: "custom",
            path: [key],
            message: "is required for target digitalocean",
          });
        }
      }
    }
    if (!cfg.sizes.includes(cfg.defaultSize)) {
      ctx.addIssue({
        code: "custom",
        path: ["defaultSize"],
        message: `must be one of the environment's sizes (${cfg.sizes.join(", ")})`,
      });
    }
    requireHttpsOnDroplets(cfg, ctx);
    if (cfg.target === "local" && cfg.backendIngress === "public") {
      ctx.addIssue({
        code: "custom",
        path: ["backendIngress"],
        message:
          "public needs the backend's TLS, which the local target does not have (it serves plain HTTP on loopback)",
      });
    }
    if (cfg.target === "local" && cfg.toolboxes.length > 1) {
      ctx.addIssue({
        code: "custom",
        path: ["toolboxes"],
        message: "the local target runs one toolbox (it publishes one backend port)",
      });
    }
    if (cfg.requireDigestPins) {
      for (const role of ["dtma", "backend"] as const) {
        if (!DIGEST_PINNED.test(cfg.images[role])) {
          ctx.addIssue({
            code: "custom",
            path: ["images", role],
            message: `${DIGEST_PIN_RULE} because requireDigestPins is on`,
          });
        }
      }
    }
  });

export type OperatorConfig = z.infer<typeof operatorSchema> & {
  /** Secret; required when the digitalocean target has toolboxes (readiness gate, Docker over SSH). */
  sshPrivateKey?: pulumi.Output<string>;
};
export type Images = z.infer<typeof images>;

/** Keys of the per-account stack the automation service creates. */
const accountSchema = z
  .object({
    accountId,
    target: target.default(DEFAULTS.target),
    region: region.default(DEFAULTS.region),
    size: size.default(DEFAULTS.size),
    platformStack: z.string().min(1).optional(),
    agentopiaApiBaseUrl: url,
    controlPlaneCidrs: controlPlaneCidrs.optional(),
    dtmaImage: imageRef.optional(),
    backendImage: imageRef.optional(),
    tokenGeneration: z.number().int().min(0).default(DEFAULTS.tokenGeneration),
    reservedIp: z.boolean().default(DEFAULTS.reservedIp),
    dnsZone: domain.optional(),
    localDockerHost: z.string().min(1).optional(),
    localBackendPort: z.number().int().min(1024).max(65535).optional(),
    sshStateDir: z.string().min(1).optional(),
  })
  .superRefine((cfg, ctx) => {
    requireHttpsOnDroplets(cfg, ctx);
    if (cfg.target === "digitalocean") {
      for (const key of [
        "platformStack",
        "controlPlaneCidrs",
        "dtmaImage",
        "backendImage",
      ] as const) {
        if (cfg[key] === undefined) {
          ctx.addIssue({
            code: "custom",
            path: [key],
            message: "is required for target digitalocean",
          });
        }
      }
    }
  });

export type AccountConfig = Omit<z.infer<typeof accountSchema>, "dtmaImage" | "backendImage"> & {
  /** Required on DigitalOcean; the local target defaults to what `npm run images:local` builds. */
  dtmaImage: string;
  backendImage: string;
  sshPrivateKey?: pulumi.Output<string>;
};

/** What the schemas read: the keys present in stack config, JSON values already decoded. */
export interface ConfigSource {
  /** Raw string value of `namespace:key`, or undefined. */
  get(key: string): string | undefined;
  /** The same value as a Pulumi secret, or undefined. */
  getSecret(key: string): pulumi.Output<string> | undefined;
}

export function pulumiConfigSource(): ConfigSource {
  const cfg = new pulumi.Config(CONFIG_NAMESPACE);
  return { get: (key) => cfg.get(key), getSecret: (key) => cfg.getSecret(key) };
}

/** Thrown for invalid configuration; Pulumi prints a RunError as one line, without a stack. */
export class ConfigError extends pulumi.RunError {}

function describeKey(path: readonly PropertyKey[]): string {
  const key = path
    .map((p, i) => (typeof p === "number" ? `[${p}]` : `${i === 0 ? "" : "."}${String(p)}`))
    .join("");
  return `${CONFIG_NAMESPACE}:${key}`;
}

/**
 * Reads the schema's keys from the source. Pulumi hands structured values (lists, objects,
 * numbers, booleans) to programs as JSON text; string keys are taken as they are, so an
 * account id such as "0123" is never turned into a number.
 */
function readKeys(
  source: ConfigSource,
  stringKeys: readonly string[],
  jsonKeys: readonly string[],
): { raw: Record<string, unknown>; errors: string[] } {
  const raw: Record<string, unknown> = {};
  const errors: string[] = [];
  for (const key of stringKeys) {
    const text = source.get(key);
    if (text !== undefined) raw[key] = text;
  }
  for (const key of jsonKeys) {
    const text = source.get(key);
    if (text === undefined) continue;
    try {
      raw[key] = JSON.parse(text) as unknown;
    } catch {
      errors.push(`${CONFIG_NAMESPACE}:${key}: is not a valid list, object, number or boolean`);
    }
  }
  return { raw, errors };
}

function parse<T>(
  schema: z.ZodType<T>,
  source: ConfigSource,
  stringKeys: readonly string[],
  jsonKeys: readonly string[],
): T {
  const { raw, errors } = readKeys(source, stringKeys, jsonKeys);
  if (errors.length > 0) throw new ConfigError(errors.join("\n"));
  const result = schema.safeParse(raw);
  if (result.success) return result.data;
  const lines = result.error.issues.map((issue) => {
    const missing = issue.code === "invalid_type" && issue.input === undefined;
    return `${describeKey(issue.path)}: ${missing ? "is required" : issue.message}`;
  });
  throw new ConfigError(lines.join("\n"));
}

const OPERATOR_STRING_KEYS = [
  "target",
  "backendIngress",
  "defaultSize",
  "dropletImage",
  "automationSshPublicKey",
  "agentopiaApiBaseUrl",
  "dnsZone",
  "localDockerHost",
  "sshStateDir",
] as const;
const OPERATOR_JSON_KEYS = [
  "regions",
  "sizes",
  "backups",
  "controlPlaneCidrs",
  "images",
  "requireDigestPins",
  "dtmaMemoryMb",
  "backendMemoryMb",
  "toolCaps",
  "swapMb",
  "localBackendPort",
  "toolboxes",
] as const;
const ACCOUNT_STRING_KEYS = [
  "accountId",
  "target",
  "region",
  "size",
  "platformStack",
  "agentopiaApiBaseUrl",
  "dtmaImage",
  "backendImage",
  "dnsZone",
  "localDockerHost",
  "sshStateDir",
] as const;
const ACCOUNT_JSON_KEYS = [
  "controlPlaneCidrs",
  "tokenGeneration",
  "reservedIp",
  "localBackendPort",
] as const;

/** Every key the account program reads: what the automation service may set. */
export const ACCOUNT_CONFIG_KEYS: readonly string[] = [
  ...ACCOUNT_STRING_KEYS,
  ...ACCOUNT_JSON_KEYS,
];

/**
 * Secrets the automation service hands the account program in-process (the program is an
 * inline program in the service's own process), never through stack config: config values
 * travel on the CLI's command line.
 */
export interface AccountSecrets {
  /** The automation service's SSH private key; required for target digitalocean. */
  sshPrivateKey?: string;
}

export function parseOperatorConfig(source: ConfigSource): OperatorConfig {
  const cfg: OperatorConfig = parse(
    operatorSchema,
    source,
    OPERATOR_STRING_KEYS,
    OPERATOR_JSON_KEYS,
  );
  cfg.sshPrivateKey = source.getSecret("sshPrivateKey");
  if (
    cfg.target === "digitalocean" &&
    cfg.toolboxes.length > 0 &&
    cfg.sshPrivateKey === undefined
  ) {
    throw new ConfigError(
      `${CONFIG_NAMESPACE}:sshPrivateKey: is required (as a secret) when toolboxes are listed for target digitalocean`,
    );
  }
  return cfg;
}

export function parseAccountConfig(
  source: ConfigSource,
  secrets: AccountSecrets = {},
): AccountConfig {
  const parsed = parse(accountSchema, source, ACCOUNT_STRING_KEYS, ACCOUNT_JSON_KEYS);
  const cfg: AccountConfig = {
    ...parsed,
    dtmaImage: parsed.dtmaImage ?? DEFAULTS.localImages.dtma,
    backendImage: parsed.backendImage ?? DEFAULTS.localImages.backend,
    sshPrivateKey:
      secrets.sshPrivateKey === undefined ? undefined : pulumi.secret(secrets.sshPrivateKey),
  };
  if (cfg.target === "digitalocean" && cfg.sshPrivateKey === undefined) {
    throw new ConfigError(
      "sshPrivateKey: is required for target digitalocean (the automation service passes it to the program in-process)",
    );
  }
  return cfg;
}

const profileSchema = z.object({
  regions: z.array(region).min(1),
  sizes: z.array(size).min(1),
  dropletImage: z.string().min(1),
  backups: z.boolean(),
  dtmaMemoryMb: z.number().int().min(96).max(1024),
  backendMemoryMb: z.number().int().min(96).max(1024),
  swapMb: z.number().int().min(0).max(8192),
  toolCaps: z.object({
    memoryMb: z.number().int().min(16).max(8192),
    cpus: z.number().positive().max(8),
    pids: z.number().int().min(16).max(4096),
  }),
  dnsZone: domain.optional(),
  requireDigestPins: z.boolean(),
  // Platforms exported before TLS had no ingress setting: the control plane only.
  backendIngress: backendIngress.default("controlPlane"),
});

/** The environment's profile, as the operator program exports it for account stacks. */
export function toolboxProfileOf(cfg: OperatorConfig): ToolboxProfile {
  return {
    regions: cfg.regions,
    sizes: cfg.sizes,
    dropletImage: cfg.dropletImage,
    backups: cfg.backups,
    dtmaMemoryMb: cfg.dtmaMemoryMb,
    backendMemoryMb: cfg.backendMemoryMb,
    swapMb: cfg.swapMb,
    toolCaps: cfg.toolCaps,
    ...(cfg.dnsZone !== undefined ? { dnsZone: cfg.dnsZone } : {}),
    requireDigestPins: cfg.requireDigestPins,
    backendIngress: cfg.backendIngress,
  };
}

/**
 * Checks an account stack against its platform's profile: a malformed profile, a region or size
 * the environment does not offer, or unpinned images where pins are required stop the program
 * with one line naming the key.
 */
export function checkAgainstProfile(
  cfg: AccountConfig,
  platformStack: string,
  value: unknown,
): ToolboxProfile {
  const result = profileSchema.safeParse(value);
  if (!result.success) {
    const issue = result.error.issues[0];
    throw new ConfigError(
      `${CONFIG_NAMESPACE}:platformStack: ${platformStack} exports no valid toolboxProfile (${issue.path.join(".")}: ${issue.message}); run pulumi up on it`,
    );
  }
  const profile = result.data;
  const lines: string[] = [];
  if (!profile.regions.includes(cfg.region)) {
    lines.push(`${CONFIG_NAMESPACE}:region: ${platformStack} offers ${profile.regions.join(", ")}`);
  }
  if (!profile.sizes.includes(cfg.size)) {
    lines.push(`${CONFIG_NAMESPACE}:size: ${platformStack} offers ${profile.sizes.join(", ")}`);
  }
  if (profile.requireDigestPins) {
    for (const key of ["dtmaImage", "backendImage"] as const) {
      if (!DIGEST_PINNED.test(cfg[key])) {
        lines.push(
          `${CONFIG_NAMESPACE}:${key}: ${DIGEST_PIN_RULE} (${platformStack} requires pins)`,
        );
      }
    }
  }
  if (lines.length > 0) throw new ConfigError(lines.join("\n"));
  return profile;
}
