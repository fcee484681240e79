/**
 * The per-account program's stack configuration: what the automation service sets on stack
 * `acct-<accountId>`, and the secrets it hands the program in-process.
 */
import * as pulumi from "@pulumi/pulumi";
import { z } from "zod";
import { TOOLBOX_DEFAULTS } from "../components/defaults";
import { ConfigError, parseConfig, type ConfigSource } from "./configSource";
import {
  accountId,
  controlPlaneCidrs,
  domain,
  imageRef,
  localBackendPort,
  region,
  requireHttpsOnDroplets,
  size,
  target,
  url,
} from "./configValues";

const DEFAULTS = TOOLBOX_DEFAULTS;

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
    localBackendPort: localBackendPort.optional(),
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

export function parseAccountConfig(
  source: ConfigSource,
  secrets: AccountSecrets = {},
): AccountConfig {
  const parsed = parseConfig(accountSchema, source, ACCOUNT_STRING_KEYS, ACCOUNT_JSON_KEYS);
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
