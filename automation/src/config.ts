import path from "node:path";
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

const cidrList = z.string().transform((text, ctx) => {
  try {
    const parsed: unknown = JSON.parse(text);
    if (Array.isArray(parsed) && parsed.every((c) => typeof c === "string" && isCidr(c))) {
      return parsed as string[];
    }
  } catch {
    // reported below
  }
  ctx.addIssue({ code: "custom", message: 'must be a JSON array of CIDRs, e.g. ["10.0.0.0/8"]' });
  return z.NEVER;
});

function isCidr(text: string): boolean {
  const [addr, bits, ...rest] = text.split("/");
  if (rest.length > 0 || addr === undefined || bits === undefined || !/^\d{1,3}$/.test(bits)) {
    return false;
  }
  const n = Number(bits);
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(addr)) {
    return n <= 32 && addr.split(".").every((o) => Number(o) <= 255);
  }
  return addr.includes(":") && /^[0-9a-fA-F:]+$/.test(addr) && n <= 128;
}

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
    CONTROL_PLANE_CIDRS: optionalString.pipe(cidrList.optional()),
    SSH_PRIVATE_KEY: optionalString,
    DTMA_IMAGE: optionalString,
    BACKEND_IMAGE: optionalString,
    DEFAULT_REGION: optionalString,
    DEFAULT_SIZE: optionalString,
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
    if (env.TOOLBOX_TARGET === "digitalocean") {
      for (const name of ["PLATFORM_STACK", "SSH_PRIVATE_KEY", "PUBLIC_BASE_URL"] as const) {
        if (env[name] === undefined) {
          ctx.addIssue({
            code: "custom",
            path: [name],
            message: "is required when TOOLBOX_TARGET=digitalocean",
          });
        }
      }
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
  supabase?: { url: string; anonKey: string };
  pulumi: {
    backendUrl: string;
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
  publicBaseUrl: string;
  platformStack?: string;
  controlPlaneCidrs: string[];
  sshPrivateKey?: string;
  dtmaImage?: string;
  backendImage?: string;
  defaultRegion?: string;
  defaultSize?: string;
  logLevel: string;
}

export class SettingsError extends Error {
  constructor(readonly lines: string[]) {
    super(lines.join("\n"));
  }
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
        ? { url: e.SUPABASE_URL, anonKey: e.SUPABASE_ANON_KEY }
        : undefined,
    pulumi: {
      backendUrl: e.PULUMI_BACKEND_URL ?? `file://${path.join(dataDir, "pulumi-state")}`,
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
    publicBaseUrl: (e.PUBLIC_BASE_URL ?? `http://127.0.0.1:${port}`).replace(/\/+$/, ""),
    platformStack: e.PLATFORM_STACK,
    controlPlaneCidrs: e.CONTROL_PLANE_CIDRS ?? [],
    sshPrivateKey: e.SSH_PRIVATE_KEY,
    dtmaImage: e.DTMA_IMAGE,
    backendImage: e.BACKEND_IMAGE,
    defaultRegion: e.DEFAULT_REGION,
    defaultSize: e.DEFAULT_SIZE,
    logLevel: e.LOG_LEVEL,
  };
}
