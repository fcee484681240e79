import {
  createCipheriv,
  createDecipheriv,
  createHash,
  randomBytes,
  timingSafeEqual,
} from "node:crypto";

/** The tokens a toolbox's stack outputs and only the control plane may read back. */
export interface ToolboxTokens {
  dtmaToken: string;
  dtmaTokenPrevious: string;
  backendApiToken: string;
  agentGatewayToken: string;
}

const VERSION = "v1";

/** AES-256-GCM with a random 96-bit IV; the output names its version so keys can rotate later. */
export class TokenCipher {
  constructor(private readonly key: Buffer) {
    if (key.length !== 32) throw new Error("token encryption key must be 32 bytes");
  }

  encrypt(tokens: ToolboxTokens, accountId: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv("aes-256-gcm", this.key, iv);
    // Binding the account id stops a ciphertext being copied to another row.
    cipher.setAAD(Buffer.from(accountId));
    const body = Buffer.concat([cipher.update(JSON.stringify(tokens), "utf8"), cipher.final()]);
    const tag = cipher.getAuthTag();
    return [VERSION, iv, tag, body]
      .map((p) => (typeof p === "string" ? p : p.toString("base64")))
      .join(":");
  }

  decrypt(envelope: string, accountId: string): ToolboxTokens {
    const [version, iv, tag, body] = envelope.split(":");
    if (version !== VERSION || !iv || !tag || !body) throw new Error("unknown token envelope");
    const decipher = createDecipheriv("aes-256-gcm", this.key, Buffer.from(iv, "base64"));
    decipher.setAAD(Buffer.from(accountId));
    decipher.setAuthTag(Buffer.from(tag, "base64"));
    const text = Buffer.concat([decipher.update(Buffer.from(body, "base64")), decipher.final()]);
    return JSON.parse(text.toString("utf8")) as ToolboxTokens;
  }
}

export function sha256Hex(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

/** Constant-time comparison of two secrets of any length (compares their digests). */
export function secretEquals(a: string, b: string): boolean {
  return timingSafeEqual(
    createHash("sha256").update(a).digest(),
    createHash("sha256").update(b).digest(),
  );
}
