/**
 * The per-account program: stack `acct-<accountId>`, run by the automation service through the
 * Automation API as an inline program. It reads the platform's outputs from the operator stack
 * named in `platformStack` and declares one AccountToolbox.
 */
import { stackNameFor, type AccountStackOutput } from "@agentopia-toolboxes/contract";
import * as pulumi from "@pulumi/pulumi";
import { AccountToolbox } from "../components/accountToolbox";
import {
  parseAccountConfig,
  pulumiConfigSource,
  type AccountConfig,
  type AccountSecrets,
} from "./config";

/** Exactly the contract's output names (ACCOUNT_STACK_OUTPUTS): what the service stores. */
export interface AccountStackOutputs extends Record<AccountStackOutput, pulumi.Output<unknown>> {
  dropletId: pulumi.Output<string | undefined>;
  dropletName: pulumi.Output<string | undefined>;
  dropletUrn: pulumi.Output<string | undefined>;
  ipv4: pulumi.Output<string | undefined>;
  ipv6: pulumi.Output<string | undefined>;
  backendUrl: pulumi.Output<string>;
  dtmaToken: pulumi.Output<string>;
  dtmaTokenPrevious: pulumi.Output<string>;
  backendApiToken: pulumi.Output<string>;
  agentGatewayToken: pulumi.Output<string>;
}

export function accountToolbox(cfg: AccountConfig): AccountToolbox {
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
  const platform = new pulumi.StackReference("platform", { name: cfg.platformStack! });
  const text = (key: string) => platform.requireOutput(key).apply(String);
  return new AccountToolbox(name, {
    ...common,
    region: cfg.region,
    size: cfg.size,
    vpcId: platform.requireOutput("vpcIds").apply((ids: Record<string, string>) => {
      const id = ids[cfg.region];
      if (id === undefined) {
        throw new Error(
          `region: the platform stack ${cfg.platformStack} has no VPC in ${cfg.region}`,
        );
      }
      return id;
    }),
    projectId: text("projectId"),
    sshKeyIds: [text("sshKeyFingerprint")],
    authorizedKeys: [text("sshPublicKey")],
    sshPrivateKey: cfg.sshPrivateKey,
    controlPlaneCidrs: cfg.controlPlaneCidrs,
    tags: [text("environmentTag")],
    reservedIp: cfg.reservedIp,
    dnsZone: cfg.dnsZone,
    sshStateDir: cfg.sshStateDir,
  });
}

/**
 * The inline program the automation service runs, in its own process: settings come from stack
 * config, secrets through this argument (never config, whose values travel on a command line).
 */
export function accountProgram(secrets: AccountSecrets = {}): Promise<AccountStackOutputs> {
  const cfg = parseAccountConfig(pulumiConfigSource(), secrets);
  const toolbox = accountToolbox(cfg);
  return Promise.resolve({
    dropletId: toolbox.dropletId,
    dropletName: toolbox.dropletName,
    dropletUrn: toolbox.dropletUrn,
    ipv4: toolbox.ipv4,
    ipv6: toolbox.ipv6,
    backendUrl: toolbox.backendUrl,
    dtmaToken: toolbox.dtmaToken,
    dtmaTokenPrevious: toolbox.dtmaTokenPrevious,
    backendApiToken: toolbox.backendApiToken,
    agentGatewayToken: toolbox.agentGatewayToken,
  });
}
