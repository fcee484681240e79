import * as command from "@pulumi/command";
import * as digitalocean from "@pulumi/digitalocean";
import * as pulumi from "@pulumi/pulumi";
import * as tls from "@pulumi/tls";
import { dropletNameFor, type BackendIngress } from "@agentopia-toolboxes/contract";
import { renderCloudConfig } from "../cloud-init";
import { BACKEND_PORT, CONTROL_SUBNET, DTMA_PORT, TOOLS_SUBNET } from "./containerSpecs";
import { inboundRules, outboundRules, type CloudFirewallRule } from "./firewallRules";
import { READINESS_SCRIPT } from "./readinessGate";

export interface ToolboxDropletArgs {
  /** The Agentopia account; names the droplet `tbx-<accountId>`. Required. */
  accountId: string;
  /** DigitalOcean region slug. Required. */
  region: pulumi.Input<string>;
  /** Droplet size slug. Required. */
  size: pulumi.Input<string>;
  /** Droplet image slug (the cloud-init renderer targets Ubuntu 24.04). Required. */
  image: pulumi.Input<string>;
  /** VPC to place the droplet in. Default: the region's default VPC. */
  vpcId?: pulumi.Input<string>;
  /** DigitalOcean project to attach the droplet (and reserved IP) to. Default: none. */
  projectId?: pulumi.Input<string>;
  /** DigitalOcean SSH key ids or fingerprints for root. Required (at least one). */
  sshKeyIds: pulumi.Input<pulumi.Input<string>[]>;
  /** The same keys' OpenSSH public texts, written by cloud-init. Required (at least one). */
  authorizedKeys: pulumi.Input<pulumi.Input<string>[]>;
  /** The automation service's private key, for the readiness gate (secret). Required. */
  sshPrivateKey: pulumi.Input<string>;
  /** CIDRs allowed to reach SSH (and the backend port, unless its ingress is public). Required, never the whole internet. */
  controlPlaneCidrs: pulumi.Input<pulumi.Input<string>[]>;
  /** Who may reach the backend port: the control plane's CIDRs, or everyone (TLS only). Default `controlPlane`. */
  backendIngress?: BackendIngress;
  /** Tags for the droplet (the account and platform tags). Default none. */
  tags?: pulumi.Input<pulumi.Input<string>[]>;
  /** Weekly droplet backups. Required. */
  backups: pulumi.Input<boolean>;
  /** Give the toolbox a reserved IP that survives droplet replacement. Required. */
  reservedIp: boolean;
  /** DigitalOcean domain for an A record `<accountId>.<zone>`. Default: no record. */
  dnsZone?: pulumi.Input<string>;
  /** Swap file size in MiB. Required. */
  swapMb: number;
}

function toDoRules(rules: CloudFirewallRule[], direction: "source" | "destination") {
  return rules.map((r) => ({
    protocol: r.protocol,
    portRange: r.portRange,
    [direction === "source" ? "sourceAddresses" : "destinationAddresses"]: r.addresses,
  }));
}

/**
 * The droplet half of a toolbox: pinned host key, droplet with cloud-init, cloud firewall,
 * optional reserved IP and DNS record, project attachment, and the readiness gate that the
 * containers wait on.
 */
export class ToolboxDroplet extends pulumi.ComponentResource {
  public readonly droplet: digitalocean.Droplet;
  public readonly hostPublicKey: pulumi.Output<string>;
  /** The address the toolbox is reached on: the reserved IP when there is one. */
  public readonly address: pulumi.Output<string>;
  public readonly hostname: pulumi.Output<string>;
  public readonly ready: command.remote.Command;

  constructor(name: string, args: ToolboxDropletArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agentopia:toolbox:ToolboxDroplet", name, {}, opts);
    const child = { parent: this };

    // Generated here, so the first SSH connection can already be verified against it.
    const hostKey = new tls.PrivateKey(`${name}-host-key`, { algorithm: "ED25519" }, child);
    this.hostPublicKey = hostKey.publicKeyOpenssh.apply((k) => k.trim());

    const userData = pulumi
      .all([hostKey.privateKeyOpenssh, this.hostPublicKey, args.authorizedKeys])
      .apply(([privateKeyOpenssh, publicKeyOpenssh, authorizedKeys]) =>
        renderCloudConfig({
          hostKey: { privateKeyOpenssh, publicKeyOpenssh },
          authorizedKeys,
          dtmaPort: DTMA_PORT,
          backendPort: BACKEND_PORT,
          controlSubnet: CONTROL_SUBNET,
          toolsSubnet: TOOLS_SUBNET,
          swapMb: args.swapMb,
        }),
      );

    this.droplet = new digitalocean.Droplet(
      `${name}-droplet`,
      {
        name: dropletNameFor(args.accountId),
        region: args.region,
        size: args.size,
        image: args.image,
        vpcUuid: args.vpcId,
        monitoring: true,
        ipv6: true,
        backups: args.backups,
        sshKeys: args.sshKeyIds,
        tags: args.tags,
        userData,
        gracefulShutdown: true,
      },
      child,
    );

    new digitalocean.Firewall(
      `${name}-firewall`,
      {
        name: dropletNameFor(args.accountId),
        dropletIds: [this.droplet.id.apply(Number)],
        inboundRules: pulumi
          .output(args.controlPlaneCidrs)
          .apply((cidrs) => toDoRules(inboundRules(cidrs, args.backendIngress), "source")),
        outboundRules: toDoRules(outboundRules(), "destination"),
      },
      child,
    );

    let reserved: digitalocean.ReservedIp | undefined;
    if (args.reservedIp) {
      reserved = new digitalocean.ReservedIp(
        `${name}-reserved-ip`,
        { region: args.region, dropletId: this.droplet.id.apply(Number) },
        child,
      );
    }
    this.address = reserved ? reserved.ipAddress : this.droplet.ipv4Address;

    if (args.dnsZone !== undefined) {
      const record = new digitalocean.DnsRecord(
        `${name}-dns`,
        { domain: args.dnsZone, name: args.accountId, type: "A", value: this.address, ttl: 300 },
        child,
      );
      this.hostname = record.fqdn;
    } else {
      this.hostname = this.address;
    }

    if (args.projectId !== undefined) {
      new digitalocean.ProjectResources(
        `${name}-project`,
        {
          project: args.projectId,
          resources: reserved
            ? [this.droplet.dropletUrn, reserved.reservedIpUrn]
            : [this.droplet.dropletUrn],
        },
        child,
      );
    }

    this.ready = new command.remote.Command(
      `${name}-ready`,
      {
        connection: {
          host: this.droplet.ipv4Address,
          user: "root",
          privateKey: args.sshPrivateKey,
          hostKey: this.hostPublicKey,
          // A new droplet needs a minute or two before sshd answers.
          dialErrorLimit: 60,
          perDialTimeout: 10,
        },
        create: READINESS_SCRIPT,
        triggers: [this.droplet.id],
      },
      { parent: this, dependsOn: [this.droplet] },
    );

    this.registerOutputs({
      dropletId: this.droplet.id,
      address: this.address,
      hostname: this.hostname,
      hostPublicKey: this.hostPublicKey,
    });
  }
}
