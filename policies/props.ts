/**
 * Narrowing helpers for resource properties. CrossGuard hands policies plain JSON (`any`);
 * reading it through these keeps the policies type-safe and tolerant of absent fields.
 */

export type Props = Record<string, unknown>;

export function record(value: unknown): Props | undefined {
  return typeof value === "object" && value !== null && !Array.isArray(value)
    ? (value as Props)
    : undefined;
}

function list(value: unknown): unknown[] {
  return Array.isArray(value) ? (value as unknown[]) : [];
}

export function text(value: unknown): string | undefined {
  return typeof value === "string" ? value : undefined;
}

export function texts(value: unknown): string[] {
  return list(value).filter((v): v is string => typeof v === "string");
}

export function records(value: unknown): Props[] {
  return list(value)
    .map(record)
    .filter((v): v is Props => v !== undefined);
}

/** The stack a URN belongs to: `urn:pulumi:<stack>::<project>::<type>::<name>`. */
export function stackOfUrn(urn: string): string | undefined {
  const match = /^urn:pulumi:([^:]+)::/.exec(urn);
  return match?.[1];
}
