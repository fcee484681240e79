/**
 * The one scrubber: every error text and event that leaves the engine passes through it before it
 * is stored, streamed or logged (failures in queue/runOperation.ts, events in queue/eventSink.ts),
 * so no secret the service knows — the SSH key, the state passphrase, the service token, the
 * token encryption key, database and backend passwords, the toolbox's own tokens — ever reaches
 * an owner, a log or a table.
 */

/** A secret as the service holds it; binary keys are matched in every text form they take. */
export type Secret = string | Buffer | undefined | null;

export const REDACTED = "[secret]";

/** Lines shorter than this are not matched on their own (a PEM body line is 70). */
const MIN_LINE = 8;
/**
 * Secrets shorter than this are not scrubbed: replacing every "x" in a text would both ruin it
 * and reveal the secret by its gaps. `tooShort` lets the service warn about them at start-up.
 */
export const MIN_SECRET = 6;

/** Whether a secret is too short to be scrubbed without revealing it. */
export function tooShort(secret: Secret): boolean {
  return secret !== undefined && secret !== null && secret.length > 0 && secret.length < MIN_SECRET;
}

function textForms(secret: string): string[] {
  const forms = [secret, secret.trim(), JSON.stringify(secret).slice(1, -1)];
  forms.push(encodeURIComponent(secret));
  // A multi-line secret (a private key) may come back cut, wrapped or re-joined: each line too.
  for (const line of secret.split(/\r?\n/)) {
    if (line.trim().length >= MIN_LINE) forms.push(line.trim());
  }
  return forms;
}

function bufferForms(key: Buffer): string[] {
  const hex = key.toString("hex");
  const base64 = key.toString("base64");
  return [hex, hex.toUpperCase(), base64, base64.replace(/=+$/, ""), key.toString("base64url")];
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

export class SecretScrubber {
  private readonly pattern: RegExp | undefined;

  private constructor(private readonly needles: ReadonlySet<string>) {
    // Longest first: where two secrets overlap, the whole of the longer one goes.
    const sorted = [...needles].sort((a, b) => b.length - a.length);
    this.pattern = sorted.length > 0 ? new RegExp(sorted.map(escape).join("|"), "g") : undefined;
  }

  static of(secrets: Iterable<Secret>): SecretScrubber {
    return new SecretScrubber(new Set()).with(secrets);
  }

  /** This scrubber plus more secrets (a toolbox's tokens for one attempt). */
  with(secrets: Iterable<Secret>): SecretScrubber {
    const needles = new Set(this.needles);
    for (const secret of secrets) {
      if (secret === undefined || secret === null || secret.length < MIN_SECRET) continue;
      const forms = typeof secret === "string" ? textForms(secret) : bufferForms(secret);
      for (const form of forms) if (form.length > 0) needles.add(form);
    }
    return new SecretScrubber(needles);
  }

  text(text: string): string {
    return this.pattern ? text.replace(this.pattern, REDACTED) : text;
  }

  /** Every string inside a JSON-like value (event data), scrubbed; the shape is kept. */
  value<T>(value: T): T {
    if (typeof value === "string") return this.text(value) as T;
    if (Array.isArray(value)) return value.map((v: unknown) => this.value(v)) as T;
    if (value !== null && typeof value === "object") {
      return Object.fromEntries(
        Object.entries(value).map(([k, v]) => [this.text(k), this.value(v)]),
      ) as T;
    }
    return value;
  }
}

/** The password in a connection URL (`postgres://user:pw@host/db`), decoded, if any. */
export function urlPassword(url: string | undefined): string | undefined {
  if (url === undefined) return undefined;
  try {
    const password = new URL(url).password;
    return password === "" ? undefined : decodeURIComponent(password);
  } catch {
    return undefined;
  }
}
