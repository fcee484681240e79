import * as digitalocean from "@pulumi/digitalocean";
import * as pulumi from "@pulumi/pulumi";
import { environmentTag, TOOLBOX_TAG } from "@agentopia-toolboxes/contract";

export interface ToolboxPlatformArgs {
  /** Names the project, VPCs and the environment tag (the stack name). Required. */
  environment: string;
  /** Regions that get a VPC for toolboxes. Required (at least one). */
  regions: string[];
  /** The automation service's OpenSSH public key, registered with DigitalOcean. Required. */
  automationSshPublicKey: pulumi.Input<string>;
  /** A domain to create for toolbox host names (`<accountId>.<zone>`). Default: none. */
  dnsZone?: string;
}

/** DigitalOcean project environments: prod is "Production", anything else "Development". */
function projectEnvironment(environment: string): string {
  return environment === "prod" ? "Production" : "Development";
}

/**
 * What every toolbox of one environment shares: a VPC per region, the automation service's SSH
 * key, the toolbox and environment tags, a DigitalOcean project and, optionally, a DNS zone.
 */
export class ToolboxPlatform extends pulumi.ComponentResource {
  public readonly vpcIds: pulumi.Output<Record<string, string>>;
  public readonly projectId: pulumi.Output<string>;
  public readonly sshKeyFingerprint: pulumi.Output<string>;
  public readonly sshPublicKey: pulumi.Output<string>;
  public readonly environmentTag: string;
  public readonly dnsZone: pulumi.Output<string | undefined>;

  constructor(name: string, args: ToolboxPlatformArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agentopia:toolbox:ToolboxPlatform", name, {}, opts);
    if (args.regions.length === 0) {
      throw new pulumi.ResourceError("regions: at least one region is required", this);
    }
    const child = { parent: this };
    const prefix = `agentopia-toolboxes-${args.environment}`;

    const vpcs = args.regions.map(
      (region) =>
        [
          region,
          new digitalocean.Vpc(
            `${name}-vpc-${region}`,
            {
              name: `${prefix}-${region}`,
              region,
              description: `Agentopia toolboxes (${args.environment})`,
            },
            child,
          ),
        ] as const,
    );
    this.vpcIds = pulumi
      .all(vpcs.map(([region, vpc]) => vpc.id.apply((id) => [region, id] as const)))
      .apply((pairs) => Object.fromEntries(pairs));

    const key = new digitalocean.SshKey(
      `${name}-automation-key`,
      { name: `${prefix}-automation`, publicKey: args.automationSshPublicKey },
      child,
    );
    this.sshKeyFingerprint = key.fingerprint;
    this.sshPublicKey = key.publicKey;

    this.environmentTag = environmentTag(args.environment);
    new digitalocean.Tag(`${name}-tag-toolbox`, { name: TOOLBOX_TAG }, child);
    new digitalocean.Tag(`${name}-tag-env`, { name: this.environmentTag }, child);

    const project = new digitalocean.Project(
      `${name}-project`,
      {
        name: prefix,
        description: "Per-account Agentopia toolboxes",
        purpose: "Service or API",
        environment: projectEnvironment(args.environment),
      },
      child,
    );
    this.projectId = project.id;

    this.dnsZone = args.dnsZone
      ? new digitalocean.Domain(`${name}-dns-zone`, { name: args.dnsZone }, child).name
      : pulumi.output(undefined);

    this.registerOutputs({
      vpcIds: this.vpcIds,
      projectId: this.projectId,
      sshKeyFingerprint: this.sshKeyFingerprint,
      dnsZone: this.dnsZone,
    });
  }
}
