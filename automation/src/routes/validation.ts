import type {
  FastifyBaseLogger,
  FastifyInstance,
  FastifySchemaCompiler,
  FastifyTypeProvider,
  RawReplyDefaultExpression,
  RawRequestDefaultExpression,
  RawServerDefault,
} from "fastify";
import { z } from "zod";
import { HttpError } from "../auth/auth";
import { uuid } from "../ids";

// A route declares the zod schemas of its input in `schema` (params, querystring, body); fastify
// checks them before the handler runs, after the guard, and the handler sees what they parsed.
// The same schemas are the OpenAPI document's (openapi.ts), so it cannot say otherwise.

/** Types a route's `req.params`, `req.query` and `req.body` from its zod schemas. */
export interface ZodTypeProvider extends FastifyTypeProvider {
  validator: this["schema"] extends z.ZodType ? z.output<this["schema"]> : unknown;
  serializer: this["schema"] extends z.ZodType ? z.input<this["schema"]> : unknown;
}

/** The app as the route modules register on it. */
export type RouteApp = FastifyInstance<
  RawServerDefault,
  RawRequestDefaultExpression,
  RawReplyDefaultExpression,
  FastifyBaseLogger,
  ZodTypeProvider
>;

/** What names a request part in a refusal when zod's issue names no field. */
const PART: Record<string, string> = { body: "body", querystring: "query", params: "path" };

/**
 * fastify's validator for every route schema: the value zod parsed (defaults applied, ids
 * lowercased), or a 400 naming the first offending field. An absent body is an empty one.
 */
export const zodValidatorCompiler: FastifySchemaCompiler<z.ZodType> =
  ({ schema, httpPart }) =>
  (value: unknown) => {
    const result = schema.safeParse(value ?? {});
    if (result.success) return { value: result.data };
    const issue = result.error.issues[0];
    const keys = issue.code === "unrecognized_keys" ? issue.keys : [];
    const field = [...issue.path.map(String), ...keys].join(".") || PART[httpPart ?? "body"];
    return { error: new HttpError(400, "invalid_request", `${field}: ${issue.message}`, field) };
  };

/** What this environment offers: a request for anything else cannot succeed, so it is a 400. */
export interface Offer {
  regions: readonly string[];
  sizes: readonly string[];
}

const oneOf = (allowed: readonly string[], what: string) =>
  z
    .string()
    .refine((v) => allowed.includes(v), `must be one of the ${what} (${allowed.join(", ")})`)
    .describe(`one of the ${what}: ${allowed.join(", ")}`);

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
