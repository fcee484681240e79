/**
 * The per-account program: stack `acct-<accountId>`, run by the automation service through the
 * Automation API as an inline program. It reads the platform's outputs from the operator stack
 * named in `platformStack` (VPCs, key, tags, the toolbox profile and CA) and declares one
 * AccountToolbox.
 */
import { stackNameFor, type AccountStackOutput } from "@agentopia-toolboxes/contract";
import * as pulumi from "@pulumi/pulumi";
import { AccountToolbox } from "../components/accountToolbox";
import { parseAccountConfig, type AccountConfig, type AccountSecrets } from "./accountConfig";
import { pulumiConfigSource } from "./configSource";
import { checkAgainstProfile } from "./toolboxProfile";

/** The contract's output names (ACCOUNT_STACK_OUTPUTS); the droplet's only where there is one. */
export type AccountStackOutputs = Partial<Record<AccountStackOutput, pulumi.Output<unknown>>>;

/** The toolbox of one account: on DigitalOcean inside its environment's platform and profile. */
export async function accountToolbox(cfg: AccountConfig): Promise<AccountToolbox> {
  const common = {
    accountId: cfg.accountId,
    target: cfg.target,
    dtmaImage: cfg.dtmaImage,
    backendImage: cfg.backendImage,
    agentopiaApiBaseUrl: cfg.agentopiaApiBaseUrl,
    tokenGeneration: cfg.tokenGeneration,
  };
  const name = stackNameFor(cfg.accountId);
  if (cfg.target === "local") {
    return new AccountToolbox(name, {
      ...common,
      localDockerHost: cfg.localDockerHost,
      localBackendPort: cfg.localBackendPort,
    });
  }
  const platformStack = cfg.platformStack!;
  const platform = new pulumi.StackReference("platform", { name: platformStack });
  // Plain values: they shape the container specs and the droplet, not just resource inputs.
  const profile = checkAgainstProfile(
    cfg,
    platformStack,
    (await platform.getOutputDetails("toolboxProfile")).value,
  );
  const text = (key: string) => platform.requireOutput(key).apply(String);
  const dnsZone = cfg.dnsZone ?? profile.dnsZone;
  return new AccountToolbox(name, {
    ...common,
    region: cfg.region,
    size: cfg.size,
    image: profile.dropletImage,
    backups: profile.backups,
    dtmaMemoryMb: profile.dtmaMemoryMb,
    backendMemoryMb: profile.backendMemoryMb,
    swapMb: profile.swapMb,
    toolCaps: profile.toolCaps,
    vpcId: platform.requireOutput("vpcIds").apply((ids: Record<string, string>) => {
      const id = ids[cfg.region];
      if (id === undefined) {
        throw new Error(`region: the platform stack ${platformStack} has no VPC in ${cfg.region}`);
      }
      return id;
    }),
    projectId: text("projectId"),
    sshKeyIds: [text("sshKeyFingerprint")],
    authorizedKeys: [text("sshPublicKey")],
    sshPrivateKey: cfg.sshPrivateKey,
    controlPlaneCidrs: cfg.controlPlaneCidrs,
    // The environment's CA signs this toolbox's backend certificate (its key stays secret
    // through the stack reference).
    backendTls: { caCertPem: text("toolboxCaCertPem"), caKeyPem: text("toolboxCaKeyPem") },
    backendIngress: profile.backendIngress,
    tags: [text("environmentTag")],
    reservedIp: cfg.reservedIp,
    dnsZone,
    sshStateDir: cfg.sshStateDir,
  });
}

/**
 * The inline program the automation service runs, in its own process: settings come from stack
 * config, secrets through this argument (never config, whose values travel on a command line).
 */
export async function accountProgram(secrets: AccountSecrets = {}): Promise<AccountStackOutputs> {
  const cfg = parseAccountConfig(pulumiConfigSource(), secrets);
  const toolbox = await accountToolbox(cfg);
  const droplet =
    cfg.target === "digitalocean"
      ? {
          dropletId: toolbox.dropletId,
          dropletName: toolbox.dropletName,
          dropletUrn: toolbox.dropletUrn,
          ipv4: toolbox.ipv4,
          ipv6: toolbox.ipv6,
          backendCaCertPem: toolbox.backendCaCertPem,
          backendCaSha256: toolbox.backendCaSha256,
          backendCertNotAfter: toolbox.backendCertNotAfter,
        }
      : {};
  return {
    ...droplet,
    backendUrl: toolbox.backendUrl,
    dtmaToken: toolbox.dtmaToken,
    dtmaTokenPrevious: toolbox.dtmaTokenPrevious,
    backendApiToken: toolbox.backendApiToken,
    agentGatewayToken: toolbox.agentGatewayToken,
  };
}
