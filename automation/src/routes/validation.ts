import { z } from "zod";
import { HttpError } from "../auth/auth";
import { uuid } from "../ids";

/** What this environment offers: a request for anything else cannot succeed, so it is a 400. */
export interface Offer {
  regions: readonly string[];
  sizes: readonly string[];
}

const oneOf = (allowed: readonly string[], what: string) =>
  z
    .string()
    .refine((v) => allowed.includes(v), `must be one of the ${what} (${allowed.join(", ")})`);

export function provisionBody(offer: Offer) {
  return z
    .object({
      account_id: uuid,
      region: oneOf(offer.regions, "regions this environment offers").optional(),
      size: oneOf(offer.sizes, "sizes this environment offers").optional(),
    })
    .strict();
}

export const accountParams = z.object({ account_id: uuid });
export const operationParams = z.object({ id: uuid });

/** Parses input or throws a 400 naming the first offending field. */
export function parse<T>(schema: z.ZodType<T>, value: unknown, where: string): T {
  const result = schema.safeParse(value ?? {});
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const keys = issue.code === "unrecognized_keys" ? issue.keys : [];
  const field = [...issue.path.map(String), ...keys].join(".") || where;
  throw new HttpError(400, "invalid_request", `${field}: ${issue.message}`, field);
}
