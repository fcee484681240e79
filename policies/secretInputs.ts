/**
 * "Secret-looking values are Pulumi secrets": a check CrossGuard cannot make, because the
 * analyzer hands policies every secret as plaintext with no mark (pulumi/pulumi-policy#241).
 * It runs where secretness is still visible: on the program evaluated under mocks
 * (plan/evaluate.ts reports which input paths were secrets), in the tests and `npm run plan`.
 */
import { record } from "./props";
import { isSecretName, scanUserData, secretKindOf } from "./secretScan";
import { DROPLET } from "./droplets";

export interface SecretInputs {
  type: string;
  inputs: Record<string, unknown>;
  /** Input paths (`envs`, `connection.privateKey`, `envs[2]`) that were Pulumi secrets. */
  secretPaths: string[];
}

export interface Exposure {
  /** Input path of the plaintext secret, e.g. `envs[6]`. */
  path: string;
  /** What it looks like, never the value. */
  kind: string;
}

/** Whether `path` is one of `secretPaths` or lies inside one. */
export function isUnderSecret(path: string, secretPaths: readonly string[]): boolean {
  return secretPaths.some(
    (p) => p === "" || p === path || path.startsWith(`${p}.`) || path.startsWith(`${p}[`),
  );
}

/** Why a string at `key` looks like a secret, or undefined. */
function secretLook(key: string, value: string): string | undefined {
  const assignment = /^([A-Za-z_][A-Za-z0-9_]*)=(.+)$/s.exec(value);
  if (assignment && isSecretName(assignment[1])) return `value of ${assignment[1]}`;
  if (isSecretName(key) && value !== "") return `value of ${key}`;
  return secretKindOf(value);
}

/**
 * Plaintext secrets among a resource's inputs. Droplet user-data is judged by the user-data
 * rules instead (the host key slot is allowed there): the real engine marks it secret because
 * it embeds the TLS provider's secret output, which mocks cannot reproduce.
 */
export function plaintextSecrets(resource: SecretInputs): Exposure[] {
  const found: Exposure[] = [];
  const visit = (value: unknown, path: string, key: string) => {
    if (isUnderSecret(path, resource.secretPaths)) return;
    if (typeof value === "string") {
      const kinds =
        resource.type === DROPLET && path === "userData"
          ? scanUserData(value).map((f) => `${f.kind} at ${f.where}`)
          : [secretLook(key, value)].filter((k): k is string => k !== undefined);
      for (const kind of kinds) found.push({ path, kind });
    } else if (Array.isArray(value)) {
      value.forEach((v, i) => visit(v, `${path}[${i}]`, key));
    } else {
      for (const [k, v] of Object.entries(record(value) ?? {}))
        visit(v, path ? `${path}.${k}` : k, k);
    }
  };
  visit(resource.inputs, "", "");
  return found;
}
