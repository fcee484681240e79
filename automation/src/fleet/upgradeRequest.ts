/** The body of `POST /v1/upgrades`: the images, the waves and the health gate's settings. */
import {
  DIGEST_PIN_RULE,
  DIGEST_PINNED,
  IMAGE_REFERENCE,
  IMAGE_REFERENCE_RULE,
} from "@agentopia-toolboxes/contract";
import { z } from "zod";
import { uuid } from "../ids";

/** What the upgrade needs of the service's settings. */
export interface UpgradeSettings {
  environment: string;
  requireDigestPins: boolean;
}

const image = (pins: boolean) =>
  z
    .string()
    .regex(IMAGE_REFERENCE, IMAGE_REFERENCE_RULE)
    .refine(
      (v) => !pins || DIGEST_PINNED.test(v),
      `${DIGEST_PIN_RULE} (this environment requires pins)`,
    )
    .describe(
      pins ? "image reference, pinned by digest (this environment requires it)" : "image reference",
    );

/** The body of `POST /v1/upgrades`; every field is checked and named when wrong. */
export function upgradeRequest(settings: UpgradeSettings) {
  return z
    .object({
      dtma_image: image(settings.requireDigestPins),
      backend_image: image(settings.requireDigestPins),
      canary_accounts: z.array(uuid).min(1).max(1000).optional(),
      canary_count: z
        .number()
        .int()
        .min(0)
        .max(100_000)
        .optional()
        .describe("not with canary_accounts"),
      waves: z
        .array(z.number().min(0.001).max(100))
        .min(1)
        .max(20)
        .refine(
          (w) => w.every((p, i) => i === 0 || p > w[i - 1]),
          "must be strictly increasing cumulative percentages",
        )
        .refine((w) => w[w.length - 1] === 100, "must end with 100 (every toolbox)")
        .default([1, 10, 50, 100])
        .describe("cumulative percentages of the toolboxes after the canaries, ending with 100"),
      max_failure_ratio: z.number().min(0).max(1).default(0.1),
      health_deadline_seconds: z.number().int().min(5).max(86_400).default(600),
      rollback: z.enum(["failed", "wave"]).default("failed"),
      on_busy: z.enum(["wait", "skip"]).default("wait"),
      busy_wait_seconds: z.number().int().min(0).max(86_400).default(900),
      concurrency: z
        .number()
        .int()
        .min(1)
        .max(10_000)
        .optional()
        .describe("most toolboxes upgrading at once (default: the workers' slots)"),
    })
    .strict()
    .superRefine((v, ctx) => {
      if (v.canary_accounts !== undefined && v.canary_count !== undefined) {
        ctx.addIssue({
          code: "custom",
          path: ["canary_count"],
          message: "give canary_accounts or canary_count, not both",
        });
      }
      if (v.canary_accounts && new Set(v.canary_accounts).size !== v.canary_accounts.length) {
        ctx.addIssue({ code: "custom", path: ["canary_accounts"], message: "has duplicates" });
      }
    });
}

export type UpgradePlan = z.infer<ReturnType<typeof upgradeRequest>>;
