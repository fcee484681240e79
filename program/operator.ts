/**
 * The operator program (`pulumi up -s dev|prod|local`): the shared platform and the toolboxes
 * listed in stack config. Per-account toolboxes requested by users live in their own stacks
 * (program/account.ts), so this list stays small.
 */
import * as pulumi from "@pulumi/pulumi";
import { AccountToolbox } from "../components/accountToolbox";
import { ToolboxPlatform } from "../components/platform";
import type { ToolboxProfile } from "@agentopia-toolboxes/contract";
import { pulumiConfigSource } from "./configSource";
import { parseOperatorConfig, type OperatorConfig } from "./operatorConfig";
import { toolboxProfileOf } from "./toolboxProfile";

export interface OperatorOutputs {
  environment: string;
  vpcIds?: pulumi.Output<Record<string, string>>;
  projectId?: pulumi.Output<string>;
  sshKeyFingerprint?: pulumi.Output<string>;
  sshPublicKey?: pulumi.Output<string>;
  environmentTag?: string;
  dnsZone?: pulumi.Output<string>;
  /** What account stacks of this environment read (program/account.ts). */
  toolboxProfile?: ToolboxProfile;
  /** The toolbox CA: its certificate (clients pin it), fingerprint, and key (secret; account stacks sign with it). */
  toolboxCaCertPem?: pulumi.Output<string>;
  toolboxCaSha256?: pulumi.Output<string>;
  toolboxCaKeyPem?: pulumi.Output<string>;
  toolboxes: Record<string, Record<string, pulumi.Output<string | undefined>>>;
}

export function operatorProgram(
  cfg: OperatorConfig = parseOperatorConfig(pulumiConfigSource()),
): OperatorOutputs {
  const environment = pulumi.getStack();
  const outputs: OperatorOutputs = { environment, toolboxes: {} };

  let platform: ToolboxPlatform | undefined;
  if (cfg.target === "digitalocean") {
    platform = new ToolboxPlatform("platform", {
      environment,
      regions: cfg.regions,
      automationSshPublicKey: cfg.automationSshPublicKey!,
      dnsZone: cfg.dnsZone,
    });
    Object.assign(outputs, {
      vpcIds: platform.vpcIds,
      projectId: platform.projectId,
      sshKeyFingerprint: platform.sshKeyFingerprint,
      sshPublicKey: platform.sshPublicKey,
      environmentTag: platform.environmentTag,
      toolboxProfile: toolboxProfileOf(cfg),
      toolboxCaCertPem: platform.caCertPem,
      toolboxCaSha256: platform.caSha256,
      toolboxCaKeyPem: platform.caKeyPem,
    });
    if (cfg.dnsZone) outputs.dnsZone = platform.dnsZone.apply((z) => z!);
  }

  for (const entry of cfg.toolboxes) {
    const region = entry.region ?? cfg.regions[0];
    const toolbox = new AccountToolbox(`acct-${entry.accountId}`, {
      accountId: entry.accountId,
      target: cfg.target,
      dtmaImage: cfg.images.dtma,
      backendImage: cfg.images.backend,
      agentopiaApiBaseUrl: cfg.agentopiaApiBaseUrl,
      tokenGeneration: entry.tokenGeneration,
      dtmaMemoryMb: cfg.dtmaMemoryMb,
      backendMemoryMb: cfg.backendMemoryMb,
      toolCaps: cfg.toolCaps,
      localDockerHost: cfg.localDockerHost,
      localBackendPort: cfg.localBackendPort,
      ...(platform && {
        region,
        size: entry.size ?? cfg.defaultSize,
        image: cfg.dropletImage,
        vpcId: platform.vpcIds.apply((ids) => ids[region]),
        projectId: platform.projectId,
        sshKeyIds: [platform.sshKeyFingerprint],
        authorizedKeys: [platform.sshPublicKey],
        sshPrivateKey: cfg.sshPrivateKey,
        controlPlaneCidrs: cfg.controlPlaneCidrs,
        backendTls: { caCertPem: platform.caCertPem, caKeyPem: platform.caKeyPem },
        backendIngress: cfg.backendIngress,
        tags: [platform.environmentTag],
        backups: cfg.backups,
        reservedIp: entry.reservedIp,
        dnsZone: cfg.dnsZone && platform.dnsZone.apply((z) => z!),
        swapMb: cfg.swapMb,
        sshStateDir: cfg.sshStateDir,
      }),
    });
    outputs.toolboxes[entry.accountId] = {
      dropletId: toolbox.dropletId,
      dropletName: toolbox.dropletName,
      ipv4: toolbox.ipv4,
      ipv6: toolbox.ipv6,
      backendUrl: toolbox.backendUrl,
      backendCaSha256: toolbox.backendCaSha256,
      backendCertNotAfter: toolbox.backendCertNotAfter,
      dtmaToken: toolbox.dtmaToken,
      backendApiToken: toolbox.backendApiToken,
      agentGatewayToken: toolbox.agentGatewayToken,
    };
  }
  return outputs;
}
