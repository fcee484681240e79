import { randomBytes } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";

/**
 * Reads a secret kept under the data folder, generating it (mode 0600) on first use. Returns
 * whether it was generated so the caller can log "generated <path>" — never the value.
 */
export async function localSecret(
  dataDir: string,
  name: string,
  make: () => string = () => randomBytes(32).toString("base64url"),
): Promise<{ value: string; file: string; generated: boolean }> {
  const dir = path.join(dataDir, "secrets");
  const file = path.join(dir, name);
  try {
    return { value: (await readFile(file, "utf8")).trim(), file, generated: false };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const value = make();
  // "wx": if another process generated it first, fail and re-read instead of overwriting.
  try {
    await writeFile(file, value + "\n", { mode: 0o600, flag: "wx" });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    return { value: (await readFile(file, "utf8")).trim(), file, generated: false };
  }
  return { value, file, generated: true };
}
