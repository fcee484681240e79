import path from "node:path";
import {
  ALLOWED_REGIONS,
  ALLOWED_SIZES,
  controlPlaneCidrProblem,
  DEFAULT_REGION,
  DEFAULT_SIZE,
  DIGEST_PIN_RULE,
  DIGEST_PINNED,
  IMAGE_REFERENCE,
  IMAGE_REFERENCE_RULE,
  REGIONS,
  SIZES,
} from "@agentopia-toolboxes/contract";
import ipaddr from "ipaddr.js";
import { z } from "zod";

/** Where the service keeps its embedded defaults when no external resource is configured. */
const optionalString = z
  .string()
  .trim()
  .transform((v) => (v === "" ? undefined : v))
  .optional();

const intFrom = (fallback: number, min: number, max: number) =>
  z.coerce.number().int().min(min).max(max).default(fallback);

const key32 = z
  .string()
  .trim()
  .refine((v) => decodeKey(v) !== undefined, "must be 32 bytes as 64 hex characters or base64")
  .transform((v) => decodeKey(v)!);

/** Accepts a 32-byte key written as hex or base64. */
export function decodeKey(text: string): Buffer | undefined {
  if (/^[0-9a-fA-F]{64}$/.test(text)) return Buffer.from(text, "hex");
  if (/^[A-Za-z0-9+/_-]+={0,2}$/.test(text)) {
    const buf = Buffer.from(text, "base64");
    if (buf.length === 32) return buf;
  }
  return undefined;
}

/** A JSON array of strings, each checked by `problem` (undefined: fine). */
const jsonList = (example: string, problem: (item: string) => string | undefined) =>
  z.string().transform((text, ctx) => {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    if (!Array.isArray(parsed) || !parsed.every((c) => typeof c === "string")) {
      ctx.addIssue({ code: "custom", message: `must be a JSON array, e.g. ${example}` });
      return z.NEVER;
    }
    const bad = parsed.find((item) => problem(item) !== undefined);
    if (bad !== undefined) {
      ctx.addIssue({ code: "custom", message: `${JSON.stringify(bad)}: ${problem(bad)}` });
      return z.NEVER;
    }
    return parsed;
  });

const oneOf = (allowed: readonly string[]) => (item: string) =>
  allowed.includes(item) ? undefined : `must be one of ${allowed.join(", ")}`;

const image = optionalString.pipe(
  z.string().regex(IMAGE_REFERENCE, IMAGE_REFERENCE_RULE).optional(),
);

/** A pg-boss (cron) schedule of five fields, or empty: never. */
const cron = z
  .string()
  .trim()
  .regex(
    /^$|^[\d*/,-]+( [\d*/,-]+){4}$/,
    'must be a cron schedule of five fields (e.g. "17 * * * *"), or empty for never',
  );

const envSchema = z
  .object({
    PORT: intFrom(8080, 0, 65535),
    HOST: z.string().trim().default("0.0.0.0"),
    DATA_DIR: z.string().trim().default("./.data"),
    DATABASE_URL: optionalString.pipe(z.url({ protocol: /^postgres(ql)?$/ }).optional()),
    SERVICE_TOKEN: optionalString.pipe(
      z.string().min(32, "must be at least 32 characters").optional(),
    ),
    SUPABASE_URL: optionalString.pipe(z.url({ protocol: /^https?$/ }).optional()),
    SUPABASE_ANON_KEY: optionalString,
    SUPABASE_JWT_SECRET: optionalString.pipe(
      z.string().min(32, "must be the project's JWT secret (at least 32 characters)").optional(),
    ),
    AUTH_FAILURES_PER_MINUTE: intFrom(30, 1, 100_000),
    EVENT_STREAMS_PER_USER: intFrom(10, 1, 10_000),
    EVENT_STREAMS_PER_SERVICE: intFrom(500, 1, 100_000),
    TRUST_PROXY: optionalString.pipe(
      z
        .string()
        .transform((v) => v.split(",").map((a) => a.trim()))
        .refine(
          (list) => list.every((a) => ipaddr.isValid(a) || ipaddr.isValidCIDR(a)),
          "must be a comma-separated list of IP addresses or CIDRs (the proxies in front)",
        )
        .optional(),
    ),
    PULUMI_BACKEND_URL: optionalString,
    PULUMI_CONFIG_PASSPHRASE: optionalString,
    PULUMI_SECRETS_PROVIDER: optionalString,
    PULUMI_INSTALL: z.enum(["0", "1"]).default("0"),
    PULUMI_HOME: optionalString,
    TOOLBOX_TARGET: z.enum(["local", "digitalocean"]).default("local"),
    TOKEN_ENCRYPTION_KEY: optionalString.pipe(key32.optional()),
    WORKER_CONCURRENCY: intFrom(4, 0, 256),
    HEARTBEAT_TIMEOUT_SECONDS: intFrom(180, 10, 86400),
    OPERATION_RETRY_LIMIT: intFrom(3, 0, 20),
    PUBLIC_BASE_URL: optionalString.pipe(z.url({ protocol: /^https?$/ }).optional()),
    PLATFORM_STACK: optionalString,
    CONTROL_PLANE_CIDRS: optionalString.pipe(
      jsonList('["203.0.113.0/24"]', controlPlaneCidrProblem).optional(),
    ),
    SSH_PRIVATE_KEY: optionalString.pipe(
      z
        .string()
        .regex(/-----BEGIN [A-Z ]*PRIVATE KEY-----/, "must be a PEM/OpenSSH private key")
        .optional(),
    ),
    DTMA_IMAGE: image,
    BACKEND_IMAGE: image,
    ALLOWED_REGIONS: optionalString.pipe(jsonList('["nyc3", "fra1"]', oneOf(REGIONS)).optional()),
    ALLOWED_SIZES: optionalString.pipe(jsonList('["s-1vcpu-1gb"]', oneOf(SIZES)).optional()),
    REQUIRE_DIGEST_PINS: z.enum(["0", "1"]).default("0"),
    DEFAULT_REGION: optionalString,
    DEFAULT_SIZE: optionalString,
    ENVIRONMENT: optionalString.pipe(
      z
        .string()
        .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, "must be a short lowercase name such as dev or prod")
        .optional(),
    ),
    CANARY_STACKS: optionalString.pipe(
      jsonList('["org/agentopia-toolboxes/dev"]', (s) =>
        s.trim() === "" ? "must not be empty" : undefined,
      ).optional(),
    ),
    CANARY_SYNC_SCHEDULE: cron.default("*/5 * * * *"),
    RECONCILE_SCHEDULE: cron.default(""),
    RECONCILE_HEARTBEAT_THRESHOLD_SECONDS: intFrom(3600, 60, 30 * 86400),
    DIGITALOCEAN_TOKEN: optionalString,
    DIGITALOCEAN_API_URL: optionalString.pipe(z.url({ protocol: /^https?$/ }).optional()),
    LOG_LEVEL: z
      .enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"])
      .default("info"),
  })
  .superRefine((env, ctx) => {
    if ((env.SUPABASE_URL === undefined) !== (env.SUPABASE_ANON_KEY === undefined)) {
      const missing = env.SUPABASE_URL === undefined ? "SUPABASE_URL" : "SUPABASE_ANON_KEY";
      ctx.addIssue({
        code: "custom",
        path: [missing],
        message: "is required when the other of SUPABASE_URL / SUPABASE_ANON_KEY is set",
      });
    }
    if (env.PULUMI_CONFIG_PASSPHRASE !== undefined && env.PULUMI_SECRETS_PROVIDER !== undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["PULUMI_SECRETS_PROVIDER"],
        message: "set either PULUMI_SECRETS_PROVIDER or PULUMI_CONFIG_PASSPHRASE, not both",
      });
    }
    // What the account program needs on DigitalOcean (program/config.ts), or the stack fails.
    if (env.TOOLBOX_TARGET === "digitalocean") {
      for (const name of [
        "PLATFORM_STACK",
        "SSH_PRIVATE_KEY",
        "PUBLIC_BASE_URL",
        "CONTROL_PLANE_CIDRS",
        "DTMA_IMAGE",
        "BACKEND_IMAGE",
      ] as const) {
        const value = env[name];
        if (value === undefined || (Array.isArray(value) && value.length === 0)) {
          ctx.addIssue({
            code: "custom",
            path: [name],
            message: "is required when TOOLBOX_TARGET=digitalocean",
          });
        }
      }
    }
    // A DTMA on a droplet sends its token to this URL across the internet: https only.
    if (
      env.TOOLBOX_TARGET === "digitalocean" &&
      env.PUBLIC_BASE_URL !== undefined &&
      !env.PUBLIC_BASE_URL.startsWith("https:")
    ) {
      ctx.addIssue({
        code: "custom",
        path: ["PUBLIC_BASE_URL"],
        message:
          "must be an https:// URL when TOOLBOX_TARGET=digitalocean (DTMAs send their token to it)",
      });
    }
    // The platform's profile says whether its environment requires pins (prod does).
    if (env.REQUIRE_DIGEST_PINS === "1") {
      for (const name of ["DTMA_IMAGE", "BACKEND_IMAGE"] as const) {
        const value = env[name];
        if (value !== undefined && !DIGEST_PINNED.test(value)) {
          ctx.addIssue({
            code: "custom",
            path: [name],
            message: `${DIGEST_PIN_RULE} because REQUIRE_DIGEST_PINS=1`,
          });
        }
      }
    }
    const regions: readonly string[] = env.ALLOWED_REGIONS ?? ALLOWED_REGIONS;
    const sizes: readonly string[] = env.ALLOWED_SIZES ?? ALLOWED_SIZES;
    if (regions.length === 0) {
      ctx.addIssue({ code: "custom", path: ["ALLOWED_REGIONS"], message: "must not be empty" });
    }
    if (sizes.length === 0) {
      ctx.addIssue({ code: "custom", path: ["ALLOWED_SIZES"], message: "must not be empty" });
    }
    if (env.DEFAULT_REGION !== undefined && !regions.includes(env.DEFAULT_REGION)) {
      ctx.addIssue({
        code: "custom",
        path: ["DEFAULT_REGION"],
        message: `must be one of the allowed regions (${regions.join(", ")})`,
      });
    }
    if (env.DEFAULT_SIZE !== undefined && !sizes.includes(env.DEFAULT_SIZE)) {
      ctx.addIssue({
        code: "custom",
        path: ["DEFAULT_SIZE"],
        message: `must be one of the allowed sizes (${sizes.join(", ")})`,
      });
    }
    // Locally the DTMA heartbeats from inside its container to host.docker.internal, which
    // reaches the docker bridge's address, not the host's loopback.
    if (
      env.TOOLBOX_TARGET === "local" &&
      env.PUBLIC_BASE_URL === undefined &&
      /^(127\.|localhost$|::1$)/.test(env.HOST)
    ) {
      ctx.addIssue({
        code: "custom",
        path: ["HOST"],
        message:
          "the local target's DTMA reaches the service as host.docker.internal; listen on 0.0.0.0 or set PUBLIC_BASE_URL",
      });
    }
  });

export interface Settings {
  port: number;
  host: string;
  dataDir: string;
  /** Absent: the service starts an embedded Postgres under dataDir. */
  databaseUrl?: string;
  /** Absent: generated and stored under dataDir on first start. */
  serviceToken?: string;
  /** jwtSecret: the project's legacy JWT secret, to verify HS256 sessions locally. */
  supabase?: { url: string; anonKey: string; jwtSecret?: string };
  /** Failed authentications an address may have per minute before it gets 429. */
  authFailuresPerMinute: number;
  /** Proxies whose X-Forwarded-For names the caller (addresses or CIDRs); empty: none. */
  trustProxy: string[];
  /** Operations' event streams one user's sessions / the service token may hold at once. */
  eventStreamsPerUser: number;
  eventStreamsPerService: number;
  pulumi: {
    /** PULUMI_BACKEND_URL: where Pulumi keeps the stacks' state. */
    stateBackendUrl: string;
    passphrase?: string;
    secretsProvider?: string;
    install: boolean;
    home?: string;
  };
  target: "local" | "digitalocean";
  /** Absent: generated and stored under dataDir on first start. */
  tokenEncryptionKey?: Buffer;
  workerConcurrency: number;
  heartbeatTimeoutSeconds: number;
  retryLimit: number;
  /** Where DTMAs reach this service (`…/v1/heartbeat`). */
  publicBaseUrl: string;
  platformStack?: string;
  /** The regions and sizes requests may ask for: what the environment offers and the pack allows. */
  allowedRegions: readonly string[];
  allowedSizes: readonly string[];
  controlPlaneCidrs: string[];
  sshPrivateKey?: string;
  dtmaImage?: string;
  backendImage?: string;
  defaultRegion: string;
  defaultSize: string;
  /** Images must be pinned by digest (REQUIRE_DIGEST_PINS, or the platform's profile). */
  requireDigestPins: boolean;
  /** This service's environment: one upgrade at a time in it; its droplets' tag `env-<name>`. */
  environment: string;
  /** Operator stacks whose `toolboxes` output (their canaries) the service registers. */
  canaryStacks: string[];
  /** Cron schedules ("" = never) of the canary registration and the dry-run reconciliation. */
  canarySyncSchedule: string;
  reconcileSchedule: string;
  /** A toolbox without a heartbeat this long is a reconciliation finding. */
  reconcileHeartbeatThresholdSeconds: number;
  /** Read-only listing of toolbox droplets (and deleting one when asked); absent: droplets are not compared. */
  digitalocean?: { token: string; apiUrl: string };
  logLevel: string;
}

export class SettingsError extends Error {
  constructor(readonly lines: string[]) {
    super(lines.join("\n"));
  }
}

/**
 * Locally the DTMA runs in a container on this machine's daemon and reaches the host as
 * `host.docker.internal` (its spec maps it to the host gateway); a droplet needs PUBLIC_BASE_URL.
 */
function defaultPublicBaseUrl(target: "local" | "digitalocean", port: number): string {
  return target === "local" ? `http://host.docker.internal:${port}` : `http://127.0.0.1:${port}`;
}

/** Parses the environment once; each mistake becomes one line naming its variable. */
export function loadSettings(env: NodeJS.ProcessEnv): Settings {
  const result = envSchema.safeParse(env);
  if (!result.success) {
    throw new SettingsError(
      result.error.issues.map((i) => `${String(i.path[0] ?? "environment")}: ${i.message}`),
    );
  }
  const e = result.data;
  const dataDir = path.resolve(e.DATA_DIR);
  const port = e.PORT;
  return {
    port,
    host: e.HOST,
    dataDir,
    databaseUrl: e.DATABASE_URL,
    serviceToken: e.SERVICE_TOKEN,
    supabase:
      e.SUPABASE_URL && e.SUPABASE_ANON_KEY
        ? { url: e.SUPABASE_URL, anonKey: e.SUPABASE_ANON_KEY, jwtSecret: e.SUPABASE_JWT_SECRET }
        : undefined,
    authFailuresPerMinute: e.AUTH_FAILURES_PER_MINUTE,
    trustProxy: e.TRUST_PROXY ?? [],
    eventStreamsPerUser: e.EVENT_STREAMS_PER_USER,
    eventStreamsPerService: e.EVENT_STREAMS_PER_SERVICE,
    pulumi: {
      stateBackendUrl: e.PULUMI_BACKEND_URL ?? `file://${path.join(dataDir, "pulumi-state")}`,
      passphrase: e.PULUMI_CONFIG_PASSPHRASE,
      secretsProvider: e.PULUMI_SECRETS_PROVIDER,
      install: e.PULUMI_INSTALL === "1",
      home: e.PULUMI_HOME,
    },
    target: e.TOOLBOX_TARGET,
    tokenEncryptionKey: e.TOKEN_ENCRYPTION_KEY,
    workerConcurrency: e.WORKER_CONCURRENCY,
    heartbeatTimeoutSeconds: e.HEARTBEAT_TIMEOUT_SECONDS,
    retryLimit: e.OPERATION_RETRY_LIMIT,
    publicBaseUrl: (e.PUBLIC_BASE_URL ?? defaultPublicBaseUrl(e.TOOLBOX_TARGET, port)).replace(
      /\/+$/,
      "",
    ),
    allowedRegions: e.ALLOWED_REGIONS ?? ALLOWED_REGIONS,
    allowedSizes: e.ALLOWED_SIZES ?? ALLOWED_SIZES,
    platformStack: e.PLATFORM_STACK,
    controlPlaneCidrs: e.CONTROL_PLANE_CIDRS ?? [],
    sshPrivateKey: e.SSH_PRIVATE_KEY,
    dtmaImage: e.DTMA_IMAGE,
    backendImage: e.BACKEND_IMAGE,
    defaultRegion: e.DEFAULT_REGION ?? DEFAULT_REGION,
    defaultSize: e.DEFAULT_SIZE ?? DEFAULT_SIZE,
    requireDigestPins: e.REQUIRE_DIGEST_PINS === "1",
    environment: e.ENVIRONMENT ?? e.PLATFORM_STACK?.split("/").pop() ?? e.TOOLBOX_TARGET,
    canaryStacks: e.CANARY_STACKS ?? (e.PLATFORM_STACK ? [e.PLATFORM_STACK] : []),
    canarySyncSchedule: e.CANARY_SYNC_SCHEDULE,
    reconcileSchedule: e.RECONCILE_SCHEDULE,
    reconcileHeartbeatThresholdSeconds: e.RECONCILE_HEARTBEAT_THRESHOLD_SECONDS,
    digitalocean: e.DIGITALOCEAN_TOKEN
      ? {
          token: e.DIGITALOCEAN_TOKEN,
          apiUrl: (e.DIGITALOCEAN_API_URL ?? "https://api.digitalocean.com").replace(/\/+$/, ""),
        }
      : undefined,
    logLevel: e.LOG_LEVEL,
  };
}
