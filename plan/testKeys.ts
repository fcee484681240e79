import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const keyPairs = new Map<string, { privateKey: string; publicKey: string }>();

/**
 * A real ED25519 key pair in OpenSSH format (the cloud-init renderer validates its inputs),
 * one per purpose and process: "automation" stands for the operator's key, "host" for every
 * droplet's generated host key.
 */
export function testKeyPair(purpose: "automation" | "host" = "automation"): {
  privateKey: string;
  publicKey: string;
} {
  let pair = keyPairs.get(purpose);
  if (!pair) {
    const dir = mkdtempSync(join(tmpdir(), "agentopia-keys-"));
    try {
      const file = join(dir, "key");
      execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", purpose, "-f", file]);
      pair = {
        privateKey: readFileSync(file, "utf8"),
        publicKey: readFileSync(`${file}.pub`, "utf8").trim(),
      };
      keyPairs.set(purpose, pair);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  return pair;
}
