import { z } from "zod";

/**
 * A UUID as Postgres's uuid type takes it: zod's guid, 8-4-4-4-12 hex digits in any casing (its
 * `uuid` would also demand RFC 9562 version and variant digits, which Postgres does not).
 * Canonicalised to lowercase where it enters (issue 13, item 6): Postgres returns uuids in
 * lowercase, the stack is named after the id and the token ciphertext is bound to it, so every
 * layer below sees the one spelling.
 */
export const uuid = z.guid("must be a UUID").toLowerCase();

export function isUuid(value: string): boolean {
  return uuid.safeParse(value).success;
}
