import { X509Certificate } from "node:crypto";
import * as digitalocean from "@pulumi/digitalocean";
import * as pulumi from "@pulumi/pulumi";
import * as tls from "@pulumi/tls";
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
  /** Key algorithm of the toolbox CA: `ECDSA` (P-256) or `RSA` (3072 bits). Default `ECDSA`. */
  caAlgorithm?: "ECDSA" | "RSA";
  /** How long the toolbox CA's certificate is valid, hours. Default 87600 (10 years). */
  caValidityHours?: number;
}

const PLATFORM_CA_DEFAULTS = { algorithm: "ECDSA", validityHours: 87600 } as const;

/** SHA-256 fingerprint of a PEM certificate, as clients pin it (`AB:CD:…`). */
export function certificateSha256(pem: string): string {
  return new X509Certificate(pem).fingerprint256;
}

/** DigitalOcean project environments: prod is "Production", anything else "Development". */
function projectEnvironment(environment: string): string {
  return environment === "prod" ? "Production" : "Development";
}

/**
 * What every toolbox of one environment shares: a VPC per region, the automation service's SSH
 * key, the toolbox and environment tags, a DigitalOcean project, the private CA that signs every
 * toolbox backend's certificate and, optionally, a DNS zone.
 */
export class ToolboxPlatform extends pulumi.ComponentResource {
  public readonly vpcIds: pulumi.Output<Record<string, string>>;
  public readonly projectId: pulumi.Output<string>;
  public readonly sshKeyFingerprint: pulumi.Output<string>;
  public readonly sshPublicKey: pulumi.Output<string>;
  public readonly environmentTag: string;
  public readonly dnsZone: pulumi.Output<string | undefined>;
  /** The toolbox CA's certificate (PEM): the control plane and agents pin it. */
  public readonly caCertPem: pulumi.Output<string>;
  /** Its SHA-256 fingerprint. */
  public readonly caSha256: pulumi.Output<string>;
  /** The toolbox CA's private key (PEM, secret): only account stacks of this environment read it. */
  public readonly caKeyPem: pulumi.Output<string>;

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

    const caAlgorithm = args.caAlgorithm ?? PLATFORM_CA_DEFAULTS.algorithm;
    const caKey = new tls.PrivateKey(
      `${name}-ca-key`,
      caAlgorithm === "ECDSA"
        ? { algorithm: "ECDSA", ecdsaCurve: "P256" }
        : { algorithm: "RSA", rsaBits: 3072 },
      child,
    );
    const ca = new tls.SelfSignedCert(
      `${name}-ca`,
      {
        privateKeyPem: caKey.privateKeyPem,
        subject: {
          commonName: `Agentopia toolboxes CA (${args.environment})`,
          organization: "Agentopia",
        },
        isCaCertificate: true,
        validityPeriodHours: args.caValidityHours ?? PLATFORM_CA_DEFAULTS.validityHours,
        allowedUses: ["cert_signing", "crl_signing", "digital_signature"],
      },
      child,
    );
    this.caCertPem = ca.certPem;
    this.caSha256 = ca.certPem.apply(certificateSha256);
    this.caKeyPem = pulumi.secret(caKey.privateKeyPem);

    this.registerOutputs({
      caCertPem: this.caCertPem,
      caSha256: this.caSha256,
      caKeyPem: this.caKeyPem,
      vpcIds: this.vpcIds,
      projectId: this.projectId,
      sshKeyFingerprint: this.sshKeyFingerprint,
      dnsZone: this.dnsZone,
    });
  }
}
