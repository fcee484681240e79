import { parse } from "yaml";

/**
 * The cloud-config keys the renderer emits. `cloud-init schema` does not report unknown
 * top-level keys (a typo like `pakages:` passes and is silently ignored on the droplet).
 */
export const ALLOWED_TOP_LEVEL_KEYS: ReadonlySet<string> = new Set([
  "timezone",
  "bootcmd",
  "package_update",
  "package_upgrade",
  "packages",
  "swap",
  "disable_root",
  "ssh_pwauth",
  "allow_public_ssh_keys",
  "users",
  "ssh_deletekeys",
  "ssh_genkeytypes",
  "ssh_keys",
  "write_files",
  "runcmd",
]);

/** Top-level keys of a cloud-config document that are not in the allow-list, in document order. */
export function unknownTopLevelKeys(yamlText: string): string[] {
  const doc: unknown = parse(yamlText);
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
    throw new TypeError("cloud-config is not a YAML mapping");
  }
  return Object.keys(doc).filter((key) => !ALLOWED_TOP_LEVEL_KEYS.has(key));
}
