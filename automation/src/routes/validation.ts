import { z } from "zod";
import { HttpError } from "../auth/auth";

export const uuid = z
  .string()
  .regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i, "must be a UUID");
const slug = z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, "must be a lowercase slug");

export const provisionBody = z
  .object({ account_id: uuid, region: slug.optional(), size: slug.optional() })
  .strict();

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
