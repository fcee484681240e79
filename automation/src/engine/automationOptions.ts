import { existsSync } from "node:fs";
import path from "node:path";
import { CONFIG_NAMESPACE, PROJECT_NAME } from "@agentopia-toolboxes/contract";
import type { ConfigMap, LocalWorkspaceOptions } from "@pulumi/pulumi/automation";
import type { ToolboxStackConfig } from "./types";

/** Pure option builders for the Automation API engine, kept apart so tests can check them. */

export interface AutomationEngineSettings {
  /** Repository root: holds `program/account.ts` and, once it exists, `policies/`. */
  repoRoot: string;
  /** Parent of the per-stack work directories. */
  workRoot: string;
  /** Pulumi's state backend (PULUMI_BACKEND_URL), not a toolbox's gateway URL. */
  stateBackendUrl: string;
  passphrase?: string;
  secretsProvider?: string;
  pulumiHome?: string;
  /** digitalocean only; handed to the inline program in-process, never set as config. */
  sshPrivateKey?: string;
}

/** The policy pack directory to enforce, once `policies/PulumiPolicy.yaml` exists. */
export function policyPacksFor(repoRoot: string): string[] {
  const dir = path.join(repoRoot, "policies");
  return existsSync(path.join(dir, "PulumiPolicy.yaml")) ? [dir] : [];
}

export function workDirFor(settings: AutomationEngineSettings, stackName: string): string {
  return path.join(settings.workRoot, stackName);
}

/** Environment for the CLI: state backend, secrets, and no update checks or interactive prompts. */
function engineEnvVars(settings: AutomationEngineSettings): Record<string, string> {
  const env: Record<string, string> = {
    PULUMI_BACKEND_URL: settings.stateBackendUrl,
    PULUMI_SKIP_UPDATE_CHECK: "true",
    PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK: "true",
  };
  if (settings.passphrase !== undefined) env.PULUMI_CONFIG_PASSPHRASE = settings.passphrase;
  if (settings.pulumiHome !== undefined) env.PULUMI_HOME = settings.pulumiHome;
  return env;
}

/** Workspace options for one stack (the program and CLI are added by the engine). */
export function workspaceOptions(
  settings: AutomationEngineSettings,
  stackName: string,
): LocalWorkspaceOptions {
  const opts: LocalWorkspaceOptions = {
    workDir: workDirFor(settings, stackName),
    projectSettings: {
      name: PROJECT_NAME,
      runtime: "nodejs",
      backend: { url: settings.stateBackendUrl },
    },
    envVars: engineEnvVars(settings),
  };
  if (settings.pulumiHome !== undefined) opts.pulumiHome = settings.pulumiHome;
  if (settings.secretsProvider !== undefined) opts.secretsProvider = settings.secretsProvider;
  return opts;
}

/**
 * Stack config in the `agentopia-toolboxes` namespace, as the account program reads it. It holds
 * no secret: `pulumi config set-all` receives it on its command line (visible in `ps`, echoed in
 * its errors). On DigitalOcean the SSH key and the pinned known_hosts the Docker provider reads
 * are written under `sshStateDir`, inside the stack's work directory, so they go with the stack.
 */
export function pulumiConfigMap(config: ToolboxStackConfig, sshStateDir?: string): ConfigMap {
  const key = (k: string) => `${CONFIG_NAMESPACE}:${k}`;
  const map: ConfigMap = {
    [key("accountId")]: { value: config.accountId },
    [key("target")]: { value: config.target },
    [key("agentopiaApiBaseUrl")]: { value: config.agentopiaApiBaseUrl },
    [key("tokenGeneration")]: { value: String(config.tokenGeneration) },
  };
  // An empty list is no list: the program requires CIDRs only where there is a firewall.
  if (config.controlPlaneCidrs.length > 0) {
    map[key("controlPlaneCidrs")] = { value: JSON.stringify(config.controlPlaneCidrs) };
  }
  const optional = {
    region: config.region,
    size: config.size,
    platformStack: config.platformStack,
    dtmaImage: config.dtmaImage,
    backendImage: config.backendImage,
  };
  for (const [k, v] of Object.entries(optional)) {
    if (v !== undefined) map[key(k)] = { value: v };
  }
  if (config.target === "digitalocean" && sshStateDir !== undefined) {
    map[key("sshStateDir")] = { value: sshStateDir };
  }
  return map;
}

/** Options for `up`/`preview`: policy packs enforced, events streamed, no ANSI colour. */
export function updateOptions<E>(policyPacks: string[], onEvent: (e: E) => void) {
  return { onEvent, color: "never" as const, ...(policyPacks.length > 0 ? { policyPacks } : {}) };
}

/** Finds the `pulumi` executable on PATH, or undefined. */
export function findOnPath(command: string, pathVar = process.env.PATH ?? ""): string | undefined {
  for (const dir of pathVar.split(path.delimiter)) {
    if (dir === "") continue;
    const candidate = path.join(dir, command);
    if (existsSync(candidate)) return candidate;
  }
  return undefined;
}
