/**
 * Recognises secrets by their look: token formats, secret-named variables with a literal value,
 * private keys and long random strings. Findings name where a secret is and what kind it is,
 * never the value, so a policy message can be printed and posted on a pull request.
 */
import { parseDocument } from "yaml";

export interface SecretFinding {
  /** What was recognised, e.g. "DigitalOcean token" or "value of DTMA_BEARER_TOKEN". */
  kind: string;
  /** Where it is: a YAML path, a line number or a variable name. */
  where: string;
}

const TOKEN_FORMATS: readonly (readonly [string, RegExp])[] = [
  ["private key", /-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----/],
  ["DigitalOcean token", /\bdo[opr]_v1_[a-f0-9]{64}\b/],
  ["Supabase secret key", /\bsb_secret_[A-Za-z0-9_-]{16,}/],
  ["Supabase access token", /\bsbp_[a-f0-9]{40}\b/],
  ["JSON Web Token", /\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}/],
  ["GitHub token", /\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})/],
  ["Pulumi access token", /\bpul-[a-f0-9]{40}\b/],
];

/** Variable names whose value is a credential (`DTMA_BEARER_TOKEN`, `PASSWORD`, `db_password`). */
const SECRET_NAME =
  /(?:^|_)(?:TOKEN|SECRET|PASSWORD|PASSWD|PASSPHRASE|API_?KEY|PRIVATE_KEY|SECRET_KEY|ACCESS_KEY|SERVICE_ROLE_KEY|CREDENTIALS?)$/i;

export function isSecretName(name: string): boolean {
  return SECRET_NAME.test(name);
}

/** Values that name or refer to a secret instead of being one. */
function isReference(value: string): boolean {
  return (
    value === "" ||
    value.startsWith("$") ||
    /^[|>][-+]?$/.test(value) || // a YAML block scalar follows on the next lines
    /^(?:true|false|yes|no|null|~|\d+)$/i.test(value) ||
    /^<[^>]*>$/.test(value)
  );
}

function entropy(value: string): number {
  const counts = new Map<string, number>();
  for (const ch of value) counts.set(ch, (counts.get(ch) ?? 0) + 1);
  let bits = 0;
  for (const n of counts.values()) bits -= (n / value.length) * Math.log2(n / value.length);
  return bits;
}

/** A run of base64/base64url characters that is long, mixed and close to random. */
function isRandomLooking(candidate: string): boolean {
  if (/^[a-fA-F0-9]+$/.test(candidate)) return candidate.length >= 32 && entropy(candidate) >= 3;
  if (candidate.length < 32 || !/[a-z]/.test(candidate) || !/[A-Z]/.test(candidate)) return false;
  // Random base64 of 32+ chars scores about 4.8 bits a char; camelCase words stay near 4.
  return entropy(candidate) >= (/[0-9]/.test(candidate) ? 4.2 : 4.4);
}

/** Public keys and content digests are long and random by nature and are not secrets. */
const NOT_SECRET = [
  /(?:ssh-(?:ed25519|rsa|dss)|ecdsa-sha2-nistp\d+|sk-ssh-ed25519@openssh\.com)\s+[A-Za-z0-9+/=]+/g,
  /\bsha(?:1|256|384|512)[:=][a-fA-F0-9]+/gi,
  /-----BEGIN (?:PUBLIC KEY|CERTIFICATE)-----[\s\S]*?-----END (?:PUBLIC KEY|CERTIFICATE)-----/g,
];

function withoutPublicMaterial(value: string): string {
  return NOT_SECRET.reduce((acc, pattern) => acc.replace(pattern, " "), value);
}

/** The kind of secret a single value looks like (an env value, a config value), if any. */
export function secretKindOf(value: string): string | undefined {
  for (const [kind, pattern] of TOKEN_FORMATS) if (pattern.test(value)) return kind;
  const rest = withoutPublicMaterial(value);
  const candidates = rest.match(/[A-Za-z0-9+/_-]{32,}={0,2}/g) ?? [];
  if (candidates.some(isRandomLooking)) return "random-looking token";
  return undefined;
}

const ASSIGNMENT = /\b([A-Za-z_][A-Za-z0-9_]*)["']?\s*(?:=|:\s)\s*(["']?)([^\s"'#,;]*)/g;

/** Every secret in a free text (a script, a file body), located by line. */
function scanText(body: string, where = ""): SecretFinding[] {
  const findings: SecretFinding[] = [];
  const prefix = where === "" ? "" : `${where} `;
  body.split("\n").forEach((line, i) => {
    const at = `${prefix}line ${i + 1}`;
    for (const match of line.matchAll(ASSIGNMENT)) {
      const [, name = "", , value = ""] = match;
      if (isSecretName(name) && !isReference(value)) {
        findings.push({ kind: `value of ${name}`, where: at });
      }
    }
    const kind = secretKindOf(line);
    if (kind !== undefined) findings.push({ kind, where: at });
  });
  return findings;
}

function walkStrings(value: unknown, path: string, visit: (path: string, s: string) => void) {
  if (typeof value === "string") visit(path, value);
  else if (Array.isArray(value)) value.forEach((v, i) => walkStrings(v, `${path}[${i}]`, visit));
  else if (typeof value === "object" && value !== null) {
    for (const [k, v] of Object.entries(value)) walkStrings(v, path ? `${path}.${k}` : k, visit);
  }
}

/** cloud-init keys that set a password, whatever the value looks like. */
const PASSWORD_KEY = /^(?:password|passwd|plain_text_passwd|hashed_passwd)$/;

function passwordKeys(value: unknown, path: string, out: SecretFinding[]) {
  if (Array.isArray(value)) value.forEach((v, i) => passwordKeys(v, `${path}[${i}]`, out));
  else if (typeof value === "object" && value !== null) {
    for (const [k, v] of Object.entries(value)) {
      const at = path ? `${path}.${k}` : k;
      if (PASSWORD_KEY.test(k) && typeof v === "string" && v !== "") {
        out.push({ kind: "password", where: at });
      } else if (path === "chpasswd" && k === "list" && v) {
        out.push({ kind: "password list", where: at });
      } else passwordKeys(v, at, out);
    }
  }
}

/**
 * Secrets in droplet user-data. A `#cloud-config` document is read as YAML so that the one
 * allowed secret, the droplet's own SSH host key (`ssh_keys.ed25519_private`), is skipped and
 * base64 `write_files` bodies are decoded before scanning; anything else is scanned as text.
 */
export function scanUserData(userData: string): SecretFinding[] {
  if (!userData.startsWith("#cloud-config")) return scanText(userData);
  const doc = parseDocument(userData);
  if (doc.errors.length > 0) return scanText(userData);
  doc.deleteIn(["ssh_keys", "ed25519_private"]);
  const config: unknown = doc.toJS();
  const findings: SecretFinding[] = [];
  passwordKeys(config, "", findings);
  walkStrings(config, "", (path, s) => {
    const key = /([A-Za-z0-9_]+)$/.exec(path)?.[1] ?? "";
    if (isSecretName(key) && !isReference(s))
      findings.push({ kind: `value of ${key}`, where: path });
    const file = /^write_files\[(\d+)\]\.content$/.exec(path);
    const encoding = file ? doc.getIn(["write_files", Number(file[1]), "encoding"]) : undefined;
    const body =
      encoding === "b64" || encoding === "base64" ? Buffer.from(s, "base64").toString("utf8") : s;
    findings.push(...scanText(body, path));
  });
  return findings;
}

/** Env names that hold a fleet-wide credential: one of these on a droplet compromises them all. */
const FLEET_CREDENTIAL_NAMES: ReadonlySet<string> = new Set([
  "DIGITALOCEAN_TOKEN",
  "DIGITALOCEAN_ACCESS_TOKEN",
  "DO_TOKEN",
  "DO_API_TOKEN",
  "SUPABASE_SERVICE_ROLE_KEY",
  "SUPABASE_SERVICE_KEY",
  "SUPABASE_SECRET_KEY",
  "PULUMI_ACCESS_TOKEN",
]);

function jwtRole(value: string): string | undefined {
  const payload = /\beyJ[A-Za-z0-9_-]+\.(eyJ[A-Za-z0-9_-]+)\./.exec(value)?.[1];
  if (payload === undefined) return undefined;
  try {
    const claims: unknown = JSON.parse(Buffer.from(payload, "base64url").toString("utf8"));
    const role = (claims as { role?: unknown }).role;
    return typeof role === "string" ? role : undefined;
  } catch {
    return undefined;
  }
}

/** Why an env entry (`NAME=value`) carries a fleet credential, or undefined. */
export function fleetCredentialIn(name: string, value: string): string | undefined {
  if (FLEET_CREDENTIAL_NAMES.has(name.toUpperCase())) return `${name} is a fleet credential`;
  if (/\bdo[opr]_v1_[a-f0-9]{64}\b/.test(value)) return `${name} holds a DigitalOcean token`;
  if (/\bsb_secret_/.test(value)) return `${name} holds a Supabase secret key`;
  if (/\bsbp_[a-f0-9]{40}\b/.test(value)) return `${name} holds a Supabase access token`;
  if (/\bpul-[a-f0-9]{40}\b/.test(value)) return `${name} holds a Pulumi access token`;
  if (jwtRole(value) === "service_role") return `${name} holds a Supabase service-role key`;
  return undefined;
}
