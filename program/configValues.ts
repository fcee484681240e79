/**
 * The values stack configuration is made of (the operator's, an account's, and the platform's
 * toolbox profile an account stack reads), each with the message a wrong one gets.
 */
import {
  ACCOUNT_ID_PATTERN,
  ACCOUNT_ID_RULE,
  BACKEND_INGRESS,
  controlPlaneCidrProblem,
  IMAGE_REFERENCE,
  IMAGE_REFERENCE_RULE,
  REGIONS,
  SIZES,
} from "@agentopia-toolboxes/contract";
import { z } from "zod";

export const accountId = z.string().regex(ACCOUNT_ID_PATTERN, ACCOUNT_ID_RULE);

/** The addresses allowed to reach SSH and the backend: never the whole internet. */
const cidr = z.string().superRefine((value, ctx) => {
  const problem = controlPlaneCidrProblem(value);
  if (problem !== undefined) ctx.addIssue({ code: "custom", message: problem });
});
export const controlPlaneCidrs = z.array(cidr).min(1, "must list at least one CIDR");

export const region = z.enum(REGIONS, { error: `must be one of ${REGIONS.join(", ")}` });
export const size = z.enum(SIZES, { error: `must be one of ${SIZES.join(", ")}` });

export const url = z.url({ protocol: /^https?$/, error: "must be an http(s) URL" });
export const backendIngress = z.enum(BACKEND_INGRESS, {
  error: `must be one of ${BACKEND_INGRESS.join(", ")}`,
});

/** On droplets the DTMA's heartbeat, which carries its token, crosses the internet: TLS only. */
export function requireHttpsOnDroplets(
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

export const imageRef = z.string().regex(IMAGE_REFERENCE, IMAGE_REFERENCE_RULE);

export const domain = z
  .string()
  .regex(
    /^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/,
    "must be a domain name",
  );

export const target = z.enum(["digitalocean", "local"], { error: "must be digitalocean or local" });

/** Memory limit of the DTMA or backend container, MiB. */
export const containerMemoryMb = z.number().int().min(96).max(1024);
/** Swap on the droplet, MiB (0: none). */
export const swapMb = z.number().int().min(0).max(8192);
/** The caps the DTMA enforces on one tool container. */
export const toolMemoryMb = z.number().int().min(16).max(8192);
export const toolCpus = z.number().positive().max(8);
export const toolPids = z.number().int().min(16).max(4096);
/** The loopback port of the local target's backend. */
export const localBackendPort = z.number().int().min(1024).max(65535);
