import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import { statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  accountTag,
  dropletNameFor,
  TOOLBOX_TAG,
  type BackendIngress,
} from "@agentopia-toolboxes/contract";
import { DOCKER_GROUP_GID } from "../cloud-init";
import { BackendCertificate } from "./backendCertificate";
import { BACKEND_PORT, DOCKER_SOCKET, toolboxContainers } from "./containerSpecs";
import { TOOLBOX_DEFAULTS as D } from "./defaults";
import { certificateSha256 } from "./platform";
import { RotatingToken } from "./rotatingToken";
import { dockerSshOptions } from "./sshAccess";
import { ToolboxContainers } from "./toolboxContainers";
import { ToolboxDroplet } from "./toolboxDroplet";

type ToolboxTarget = "digitalocean" | "local";

export interface AccountToolboxArgs {
  /**
   * The Agentopia account. A plain string because it names the droplet, the containers and the
   * networks. Required.
   */
  accountId: string;
  /** Where the toolbox runs: a DigitalOcean droplet, or the local Docker daemon. Default `digitalocean`. */
  target?: ToolboxTarget;
  /** DTMA image reference (pinned by digest in prod). Plain: it is part of the container spec. Required. */
  dtmaImage: string;
  /** Backend image reference. Required. */
  backendImage: string;
  /** Base URL of the control plane API the DTMA heartbeats to (`<base>/heartbeat`). Required. */
  agentopiaApiBaseUrl: string;
  /** Bump to rotate every token of this toolbox without replacing the droplet. Default 0. */
  tokenGeneration?: pulumi.Input<number>;
  /** Memory limit of the DTMA container, MiB. Default 160. */
  dtmaMemoryMb?: number;
  /** Memory limit of the backend container, MiB. Default 192. */
  backendMemoryMb?: number;
  /** Caps the DTMA enforces on tool containers. Default 256 MiB, 1 CPU, 256 pids. */
  toolCaps?: { memoryMb: number; cpus: number; pids: number };

  /** digitalocean: region slug. Default `nyc3`. */
  region?: pulumi.Input<string>;
  /** digitalocean: droplet size slug. Default `s-1vcpu-512mb-10gb`. */
  size?: pulumi.Input<string>;
  /** digitalocean: droplet image. Default `ubuntu-24-04-x64`. */
  image?: pulumi.Input<string>;
  /** digitalocean: VPC id. Default: the region's default VPC. */
  vpcId?: pulumi.Input<string>;
  /** digitalocean: project to attach the droplet to. Default none. */
  projectId?: pulumi.Input<string>;
  /** digitalocean: DigitalOcean SSH key ids/fingerprints for root. Required for digitalocean. */
  sshKeyIds?: pulumi.Input<pulumi.Input<string>[]>;
  /** digitalocean: the same keys' public texts. Required for digitalocean. */
  authorizedKeys?: pulumi.Input<pulumi.Input<string>[]>;
  /** digitalocean: the automation service's private key (secret). Required for digitalocean. */
  sshPrivateKey?: pulumi.Input<string>;
  /** digitalocean: CIDRs for SSH and the backend port. Required for digitalocean. */
  controlPlaneCidrs?: pulumi.Input<pulumi.Input<string>[]>;
  /**
   * digitalocean: the platform CA that signs the backend's certificate (its key is secret), and
   * the certificate's validity and early renewal in hours (default 2160 and 720). Required for
   * digitalocean: the backend port crosses the internet and every request carries a token.
   */
  backendTls?: {
    caCertPem: pulumi.Input<string>;
    caKeyPem: pulumi.Input<string>;
    validityHours?: number;
    earlyRenewalHours?: number;
  };
  /**
   * Who may reach the backend port: `controlPlane` (only `controlPlaneCidrs`) or `public`
   * (anyone; needs `backendTls`). Default `controlPlane`.
   */
  backendIngress?: BackendIngress;
  /** digitalocean: extra droplet tags besides `agentopia-toolbox` and `account-<id>`. Default none. */
  tags?: pulumi.Input<string>[];
  /** digitalocean: droplet backups. Default false. */
  backups?: pulumi.Input<boolean>;
  /** digitalocean: reserved IP. Default false. */
  reservedIp?: boolean;
  /** digitalocean: DNS zone for `<accountId>.<zone>`. Default none. */
  dnsZone?: pulumi.Input<string>;
  /** digitalocean: swap MiB. Default 1024. */
  swapMb?: number;
  /** digitalocean: directory for the SSH files the Docker provider reads. Default `<tmp>/agentopia-toolboxes-ssh`. */
  sshStateDir?: string;

  /** local: Docker host. Default: the provider's default (DOCKER_HOST or the local socket). */
  localDockerHost?: string;
  /**
   * local: loopback port the backend is published on. Default: one Docker chooses, so several
   * toolboxes can share a daemon (`backendUrl` reports it).
   */
  localBackendPort?: number;
  /** local: GID owning the Docker socket. Default: read from /var/run/docker.sock, else 0. */
  localDockerSocketGid?: number;
}

/** The local socket's group, so the non-root DTMA can use it. */
function localSocketGid(): number {
  try {
    return statSync(DOCKER_SOCKET).gid;
  } catch {
    return 0;
  }
}

const REQUIRED_FOR_DIGITALOCEAN = [
  "sshKeyIds",
  "authorizedKeys",
  "sshPrivateKey",
  "controlPlaneCidrs",
  "backendTls",
] as const;

/** Base64 of a PEM text: one line, which every env transport carries intact. */
const base64 = (pem: pulumi.Output<string>) => pem.apply((p) => Buffer.from(p).toString("base64"));

/**
 * One account's toolbox: its tokens, its host (a droplet behind a firewall, or the local Docker
 * daemon) and, once the host is ready, the DTMA and backend containers on private networks.
 */
export class AccountToolbox extends pulumi.ComponentResource {
  public readonly dropletId: pulumi.Output<string | undefined>;
  /** `tbx-<accountId>`; undefined on the local target. */
  public readonly dropletName: pulumi.Output<string | undefined>;
  public readonly dropletUrn: pulumi.Output<string | undefined>;
  public readonly ipv4: pulumi.Output<string | undefined>;
  public readonly ipv6: pulumi.Output<string | undefined>;
  public readonly backendUrl: pulumi.Output<string>;
  /** The CA that signed the backend's certificate (PEM), its SHA-256 fingerprint, and when the certificate expires; undefined locally. */
  public readonly backendCaCertPem: pulumi.Output<string | undefined>;
  public readonly backendCaSha256: pulumi.Output<string | undefined>;
  public readonly backendCertNotAfter: pulumi.Output<string | undefined>;
  public readonly dtmaToken: pulumi.Output<string>;
  public readonly dtmaTokenPrevious: pulumi.Output<string>;
  public readonly backendApiToken: pulumi.Output<string>;
  public readonly agentGatewayToken: pulumi.Output<string>;

  constructor(name: string, args: AccountToolboxArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agentopia:toolbox:AccountToolbox", name, {}, opts);
    const target = args.target ?? D.target;
    if (target === "digitalocean") {
      for (const key of REQUIRED_FOR_DIGITALOCEAN) {
        if (args[key] === undefined) {
          throw new pulumi.ResourceError(`${key}: required when target is digitalocean`, this);
        }
      }
    }
    if ((args.backendIngress ?? "controlPlane") === "public" && args.backendTls === undefined) {
      throw new pulumi.ResourceError(
        "backendIngress: public needs backendTls (a public backend port must speak only TLS)",
        this,
      );
    }
    const child = { parent: this };
    const generation = args.tokenGeneration ?? D.tokenGeneration;

    const dtmaToken = new RotatingToken(`${name}-dtma-token`, { generation }, child);
    const randomToken = (part: string) =>
      new random.RandomPassword(
        `${name}-${part}`,
        {
          length: 64,
          special: false,
          keepers: { generation: pulumi.output(generation).apply(String) },
        },
        child,
      ).result;
    this.dtmaToken = dtmaToken.current;
    this.dtmaTokenPrevious = dtmaToken.previous;
    this.backendApiToken = pulumi.secret(randomToken("backend-api-token"));
    this.agentGatewayToken = pulumi.secret(randomToken("agent-gateway-token"));

    const specsWith = (backendTls?: { cert: pulumi.Output<string>; key: pulumi.Output<string> }) =>
      toolboxContainers({
        accountId: args.accountId,
        dtmaImage: args.dtmaImage,
        backendImage: args.backendImage,
        agentopiaApiBaseUrl: args.agentopiaApiBaseUrl,
        tokens: {
          dtma: this.dtmaToken,
          dtmaPrevious: this.dtmaTokenPrevious,
          backendApi: this.backendApiToken,
          agentGateway: this.agentGatewayToken,
        },
        publishAddress: target === "local" ? "127.0.0.1" : "0.0.0.0",
        publishPort: target === "local" ? (args.localBackendPort ?? 0) : BACKEND_PORT,
        fixedSubnets: target === "digitalocean",
        reachHost: target === "local",
        dockerSocketGid:
          target === "digitalocean"
            ? DOCKER_GROUP_GID
            : (args.localDockerSocketGid ?? localSocketGid()),
        dtmaMemoryMb: args.dtmaMemoryMb ?? D.dtmaMemoryMb,
        backendMemoryMb: args.backendMemoryMb ?? D.backendMemoryMb,
        toolCaps: args.toolCaps ?? D.toolCaps,
        ...(backendTls && { backendTls }),
      });

    if (target === "digitalocean") {
      const host = new ToolboxDroplet(
        `${name}-host`,
        {
          accountId: args.accountId,
          region: args.region ?? D.region,
          size: args.size ?? D.size,
          image: args.image ?? D.dropletImage,
          vpcId: args.vpcId,
          projectId: args.projectId,
          sshKeyIds: args.sshKeyIds!,
          authorizedKeys: args.authorizedKeys!,
          sshPrivateKey: args.sshPrivateKey!,
          controlPlaneCidrs: args.controlPlaneCidrs!,
          backendIngress: args.backendIngress ?? "controlPlane",
          tags: [TOOLBOX_TAG, accountTag(args.accountId), ...(args.tags ?? [])],
          backups: args.backups ?? D.backups,
          reservedIp: args.reservedIp ?? D.reservedIp,
          dnsZone: args.dnsZone,
          swapMb: args.swapMb ?? D.swapMb,
        },
        child,
      );
      // Signed for every address and name the backend is reached on; after the droplet, so a
      // new certificate never touches it.
      const tlsArgs = args.backendTls!;
      const certificate = new BackendCertificate(
        `${name}-tls`,
        {
          commonName: dropletNameFor(args.accountId),
          ipAddresses: pulumi
            .all([host.droplet.ipv4Address, host.address, host.droplet.ipv6Address])
            .apply((ips) => [...new Set(ips.filter((ip) => ip !== undefined && ip !== ""))]),
          dnsNames: args.dnsZone === undefined ? [] : [host.hostname],
          caCertPem: tlsArgs.caCertPem,
          caKeyPem: tlsArgs.caKeyPem,
          ...(tlsArgs.validityHours !== undefined && { validityHours: tlsArgs.validityHours }),
          ...(tlsArgs.earlyRenewalHours !== undefined && {
            earlyRenewalHours: tlsArgs.earlyRenewalHours,
          }),
        },
        child,
      );
      const specs = specsWith({
        cert: base64(certificate.certPem),
        key: pulumi.secret(base64(certificate.keyPem)),
      });
      const provider = new docker.Provider(
        `${name}-docker`,
        {
          host: pulumi.interpolate`ssh://root@${host.droplet.ipv4Address}`,
          sshOpts: dockerSshOptions({
            dir: args.sshStateDir ?? join(tmpdir(), D.sshStateDirName),
            name: dropletNameFor(args.accountId),
            host: host.droplet.ipv4Address,
            hostPublicKey: host.hostPublicKey,
            privateKey: args.sshPrivateKey!,
          }),
        },
        { parent: this, dependsOn: [host.ready] },
      );
      const containers = new ToolboxContainers(
        `${name}-containers`,
        { specs, provider, dependsOn: [host.ready], deletedWith: host.droplet },
        child,
      );
      this.dropletId = host.droplet.id;
      this.dropletName = host.droplet.name;
      this.dropletUrn = host.droplet.dropletUrn;
      this.ipv4 = host.address;
      this.ipv6 = host.droplet.ipv6Address;
      this.backendUrl = pulumi.interpolate`https://${host.hostname}:${BACKEND_PORT}`;
      this.backendCaCertPem = pulumi.output(tlsArgs.caCertPem);
      this.backendCaSha256 = this.backendCaCertPem.apply((pem) => certificateSha256(pem!));
      this.backendCertNotAfter = certificate.notAfter;
      this.registerChildOutputs(containers);
    } else {
      const provider = new docker.Provider(`${name}-docker`, { host: args.localDockerHost }, child);
      const containers = new ToolboxContainers(
        `${name}-containers`,
        { specs: specsWith(), provider },
        child,
      );
      this.dropletId = pulumi.output(undefined);
      this.dropletName = pulumi.output(undefined);
      this.dropletUrn = pulumi.output(undefined);
      this.ipv4 = pulumi.output(undefined);
      this.ipv6 = pulumi.output(undefined);
      this.backendUrl = pulumi.interpolate`http://127.0.0.1:${containers.backendPort}`;
      this.backendCaCertPem = pulumi.output(undefined);
      this.backendCaSha256 = pulumi.output(undefined);
      this.backendCertNotAfter = pulumi.output(undefined);
      this.registerChildOutputs(containers);
    }
  }

  private registerChildOutputs(containers: ToolboxContainers): void {
    this.registerOutputs({
      dropletId: this.dropletId,
      dropletName: this.dropletName,
      dropletUrn: this.dropletUrn,
      ipv4: this.ipv4,
      ipv6: this.ipv6,
      backendUrl: this.backendUrl,
      backendCaCertPem: this.backendCaCertPem,
      backendCaSha256: this.backendCaSha256,
      backendCertNotAfter: this.backendCertNotAfter,
      dtmaContainer: containers.dtma.name,
      backendContainer: containers.backend.name,
      dtmaToken: this.dtmaToken,
      dtmaTokenPrevious: this.dtmaTokenPrevious,
      backendApiToken: this.backendApiToken,
      agentGatewayToken: this.agentGatewayToken,
    });
  }
}
