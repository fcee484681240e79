/** The body of `POST /v1/reconciliations`, and the kinds of mismatch a run reports. */
import { z } from "zod";

export const FINDING_KINDS = [
  "record_without_stack",
  "stack_without_record",
  "untracked_droplet",
  "stale_heartbeat",
] as const;
export type FindingKind = (typeof FINDING_KINDS)[number];

export const reconcileRequest = z
  .object({
    dry_run: z.boolean().default(true),
    act_on: z
      .array(z.enum(FINDING_KINDS))
      .max(FINDING_KINDS.length)
      .refine((k) => new Set(k).size === k.length, "has duplicates")
      .default([]),
    heartbeat_threshold_seconds: z
      .number()
      .int()
      .min(60)
      .max(30 * 86_400)
      .optional(),
  })
  .strict()
  .superRefine((v, ctx) => {
    if (v.dry_run && v.act_on.length > 0) {
      ctx.addIssue({
        code: "custom",
        path: ["dry_run"],
        message: "must be false to act on the kinds act_on names",
      });
    }
    if (!v.dry_run && v.act_on.length === 0) {
      ctx.addIssue({
        code: "custom",
        path: ["act_on"],
        message: "must name the kinds to act on when dry_run is false",
      });
    }
  });
export type ReconcileRequest = z.infer<typeof reconcileRequest>;
