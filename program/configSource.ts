/**
 * Reading stack configuration: the `agentopia-toolboxes` namespace, parsed and validated once
 * into a typed object. A wrong value stops the program with one line that names the key and what
 * is allowed.
 */
import * as pulumi from "@pulumi/pulumi";
import { CONFIG_NAMESPACE } from "@agentopia-toolboxes/contract";
import type { z } from "zod";

/** What the schemas read: the keys present in stack config, JSON values already decoded. */
export interface ConfigSource {
  /** Raw string value of `namespace:key`, or undefined. */
  get(key: string): string | undefined;
  /** The same value as a Pulumi secret, or undefined. */
  getSecret(key: string): pulumi.Output<string> | undefined;
}

export function pulumiConfigSource(): ConfigSource {
  const cfg = new pulumi.Config(CONFIG_NAMESPACE);
  return { get: (key) => cfg.get(key), getSecret: (key) => cfg.getSecret(key) };
}

/** Thrown for invalid configuration; Pulumi prints a RunError as one line, without a stack. */
export class ConfigError extends pulumi.RunError {}

function describeKey(path: readonly PropertyKey[]): string {
  const key = path
    .map((p, i) => (typeof p === "number" ? `[${p}]` : `${i === 0 ? "" : "."}${String(p)}`))
    .join("");
  return `${CONFIG_NAMESPACE}:${key}`;
}

/**
 * Reads the schema's keys from the source. Pulumi hands structured values (lists, objects,
 * numbers, booleans) to programs as JSON text; string keys are taken as they are, so an
 * account id such as "0123" is never turned into a number.
 */
function readKeys(
  source: ConfigSource,
  stringKeys: readonly string[],
  jsonKeys: readonly string[],
): { raw: Record<string, unknown>; errors: string[] } {
  const raw: Record<string, unknown> = {};
  const errors: string[] = [];
  for (const key of stringKeys) {
    const text = source.get(key);
    if (text !== undefined) raw[key] = text;
  }
  for (const key of jsonKeys) {
    const text = source.get(key);
    if (text === undefined) continue;
    try {
      raw[key] = JSON.parse(text) as unknown;
    } catch {
      errors.push(`${CONFIG_NAMESPACE}:${key}: is not a valid list, object, number or boolean`);
    }
  }
  return { raw, errors };
}

export function parseConfig<T>(
  schema: z.ZodType<T>,
  source: ConfigSource,
  stringKeys: readonly string[],
  jsonKeys: readonly string[],
): T {
  const { raw, errors } = readKeys(source, stringKeys, jsonKeys);
  if (errors.length > 0) throw new ConfigError(errors.join("\n"));
  const result = schema.safeParse(raw);
  if (result.success) return result.data;
  const lines = result.error.issues.map((issue) => {
    const missing = issue.code === "invalid_type" && issue.input === undefined;
    return `${describeKey(issue.path)}: ${missing ? "is required" : issue.message}`;
  });
  throw new ConfigError(lines.join("\n"));
}
