import { z } from "zod";
import type { ToolSpec } from "../api";
import { TOOL_NAME_PATTERN, TOOL_NAME_RULE } from "../api";
import { HttpError } from "../http/errors";

// The deploy body, validated strictly: unknown keys (privileged, binds, devices, cap_add,
// network_mode, ...) are refused, so no request can loosen the sandbox.

export interface Caps {
  memoryMb: number;
  cpus: number;
  pids: number;
}

// image[:tag][@digest], lowercase repository path, optional registry host[:port]; never flag-like.
const IMAGE_PATTERN =
  /^(?:[a-zA-Z0-9][a-zA-Z0-9.-]*(?::[0-9]+)?\/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[\w][\w.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
const NO_NUL = /^[^\0]*$/;

const envMap = z
  .record(
    z.string().regex(ENV_NAME, "environment variable names are letters, digits and '_'"),
    z.string().max(32_768).regex(NO_NUL, "must not contain NUL"),
  )
  .refine((m) => Object.keys(m).length <= 200, "at most 200 variables");

const transport = z.discriminatedUnion("type", [
  z.strictObject({ type: z.literal("stdio") }),
  z.strictObject({
    type: z.literal("http"),
    port: z.number().int().min(1).max(65535),
    path: z
      .string()
      .regex(/^\/[\x21-\x7e]{0,255}$/, "must start with '/' and be printable ASCII")
      .default("/mcp"),
  }),
]);

export function specSchema(caps: Caps) {
  return z
    .strictObject({
      image: z
        .string()
        .max(512)
        .regex(IMAGE_PATTERN, "must be an image reference like registry/name:tag"),
      command: z
        .array(z.string().max(4096).regex(NO_NUL, "must not contain NUL"))
        .max(64)
        .optional(),
      env: envMap.optional(),
      secrets: envMap.optional(),
      transport,
      resources: z
        .strictObject({
          memory_mb: z.number().int().min(8).max(caps.memoryMb).optional(),
          cpus: z.number().min(0.01).max(caps.cpus).optional(),
          pids: z.number().int().min(8).max(caps.pids).optional(),
        })
        .optional(),
      network: z.enum(["none", "egress"]).default("egress"),
      account_tool_instance_id: z
        .string()
        .regex(/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/, "must be an id (letters, digits, '-', '_')")
        .nullable()
        .optional(),
      pull: z.enum(["missing", "always"]).default("missing"),
      registry_auth: z
        .strictObject({
          username: z.string().max(512).optional(),
          password: z.string().max(4096).optional(),
          identitytoken: z.string().max(8192).optional(),
          serveraddress: z.string().max(512).optional(),
        })
        .optional(),
    })
    .superRefine((spec, ctx) => {
      const secretNames = Object.keys(spec.secrets ?? {});
      for (const key of secretNames) {
        if (spec.env && key in spec.env) {
          ctx.addIssue({ code: "custom", path: ["secrets", key], message: "also set in env" });
        }
      }
    });
}

export type ParsedSpec = z.output<ReturnType<typeof specSchema>>;

/** Bad input: 400 naming the field. */
export class ValidationError extends HttpError {
  constructor(field: string, message: string) {
    super(400, "invalid_request", message, field);
  }
}

export function validateName(name: string): void {
  if (!TOOL_NAME_PATTERN.test(name)) throw new ValidationError("name", TOOL_NAME_RULE);
}

/** Parses a deploy body; throws ValidationError naming the first offending field. */
export function parseSpec(body: unknown, caps: Caps): ParsedSpec {
  const result = specSchema(caps).safeParse(body);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  let path = issue.path.map(String).join(".");
  let message = issue.message;
  if (issue.code === "unrecognized_keys") {
    path = [...issue.path.map(String), issue.keys[0]].join(".");
    message = "is not allowed (the sandbox settings cannot be changed)";
  }
  if (issue.code === "too_big" && issue.path[0] === "resources") {
    message = `exceeds this toolbox's cap (${String(issue.maximum)})`;
  }
  throw new ValidationError(path || "body", message);
}

export type { ToolSpec };
