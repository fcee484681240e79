import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface RunResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion; `input` goes to its standard input. */
export function run(command: string, args: string[], input?: string): RunResult {
  const result = spawnSync(command, args, { input, encoding: "utf8", timeout: 60_000 });
  if (result.error) throw result.error;
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** Whether an executable is on PATH. */
function hasCommand(name: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${name}`]).status === 0;
}

/**
 * Fails (never skips) when a tool the test relies on is missing, saying how to get it:
 * CI installs these, so their absence is a broken environment, not a reason to pass.
 */
export function requireCommand(name: string, debianPackage: string): void {
  if (!hasCommand(name)) {
    throw new Error(`${name} is not on PATH: install the Debian package ${debianPackage}`);
  }
}

/** A temporary directory, removed by the returned function. */
export function tempDir(prefix: string): { path: string; remove: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** A fresh ed25519 key pair made by ssh-keygen, generated at test time (never committed). */
export function sshKeygenEd25519(
  dir: string,
  name: string,
  comment = "",
): { privateKeyOpenssh: string; publicKeyOpenssh: string } {
  const file = join(dir, name);
  const result = run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", file]);
  if (result.status !== 0) throw new Error(`ssh-keygen failed: ${result.stderr}`);
  return {
    privateKeyOpenssh: readFileSync(file, "utf8"),
    publicKeyOpenssh: readFileSync(`${file}.pub`, "utf8"),
  };
}

/** `cloud-init schema --config-file F` on the given text. */
export function cloudInitSchema(yamlText: string): RunResult {
  const dir = tempDir("cloud-config-");
  try {
    const file = join(dir.path, "user-data.yaml");
    writeFileSync(file, yamlText);
    return run("cloud-init", ["schema", "--config-file", file]);
  } finally {
    dir.remove();
  }
}

/**
 * The top-level keys cloud-init's own cloud-config schema knows (the installed package's, every
 * module's properties). `cloud-init schema` does not report an unknown top-level key: a typo like
 * `pakages:` passes it and is ignored on the droplet, so the tests check keys against this.
 */
export function cloudConfigTopLevelKeys(): ReadonlySet<string> {
  const script = [
    "import json",
    "from cloudinit.config.schema import get_schema",
    "s = get_schema()",
    'keys = set(s.get("properties", {}))',
    'for part in s.get("allOf", []):',
    '    ref = part.get("$ref", "").split("/")[-1]',
    '    keys.update(s.get("$defs", {}).get(ref, {}).get("properties", {}))',
    '    keys.update(part.get("properties", {}))',
    "print(json.dumps(sorted(keys)))",
  ].join("\n");
  // The interpreter cloud-init itself runs on (its script's #! line).
  const launcher = run("sh", ["-c", 'head -n 1 "$(command -v cloud-init)"']).stdout;
  const python = /^#!\s*(\S+)/.exec(launcher)?.[1] ?? "python3";
  const result = run(python, ["-c", script]);
  if (result.status !== 0)
    throw new Error(`cloud-init's schema could not be read: ${result.stderr}`);
  return new Set(JSON.parse(result.stdout) as string[]);
}

/** shellcheck on a script read from standard input. */
export function shellcheck(script: string, shell: "sh" | "bash"): RunResult {
  return run("shellcheck", ["-s", shell, "-"], script);
}
