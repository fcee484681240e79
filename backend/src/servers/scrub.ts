/** Secrets shorter than this are not scrubbed (they would blank ordinary words). */
const MIN_SECRET_LENGTH = 6;

/** Replaces every occurrence of each known secret value in a text that leaves the service. */
export function scrub(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) {
    if (s.length >= MIN_SECRET_LENGTH) out = out.split(s).join("[redacted]");
  }
  return out;
}
