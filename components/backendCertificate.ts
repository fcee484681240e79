import * as pulumi from "@pulumi/pulumi";
import * as tls from "@pulumi/tls";

export interface BackendCertificateArgs {
  /** The certificate's common name (the droplet's name). Required. */
  commonName: string;
  /** Addresses the backend is reached on: the droplet's IPv4 and IPv6, a reserved IP. Required. */
  ipAddresses: pulumi.Input<pulumi.Input<string>[]>;
  /** Host names it is reached on (`<accountId>.<zone>`). Default none. */
  dnsNames?: pulumi.Input<pulumi.Input<string>[]>;
  /** The platform CA's certificate (PEM). Required. */
  caCertPem: pulumi.Input<string>;
  /** The platform CA's private key (PEM, secret). Required. */
  caKeyPem: pulumi.Input<string>;
  /** How long a certificate is valid, hours. Default 2160 (90 days). */
  validityHours?: number;
  /** A routine `pulumi up` this many hours before expiry issues a new one. Default 720 (30 days). */
  earlyRenewalHours?: number;
}

const BACKEND_CERT_DEFAULTS = { validityHours: 2160, earlyRenewalHours: 720 } as const;

/**
 * The backend's TLS key and a certificate signed by the platform CA for the addresses and name
 * the toolbox is reached on. Bounded validity with early renewal: a routine `pulumi up` inside
 * the renewal window replaces the certificate, and with it only the backend container.
 */
export class BackendCertificate extends pulumi.ComponentResource {
  /** The leaf certificate (PEM). */
  public readonly certPem: pulumi.Output<string>;
  /** Its private key (PEM, secret). */
  public readonly keyPem: pulumi.Output<string>;
  /** RFC 3339 end of validity. */
  public readonly notAfter: pulumi.Output<string>;

  constructor(name: string, args: BackendCertificateArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agentopia:toolbox:BackendCertificate", name, {}, opts);
    const validityHours = args.validityHours ?? BACKEND_CERT_DEFAULTS.validityHours;
    const earlyRenewalHours = args.earlyRenewalHours ?? BACKEND_CERT_DEFAULTS.earlyRenewalHours;
    if (earlyRenewalHours >= validityHours) {
      throw new pulumi.ResourceError(
        `earlyRenewalHours: must be less than validityHours (${validityHours})`,
        this,
      );
    }
    const child = { parent: this };
    const key = new tls.PrivateKey(
      `${name}-key`,
      { algorithm: "ECDSA", ecdsaCurve: "P256" },
      child,
    );
    const request = new tls.CertRequest(
      `${name}-csr`,
      {
        privateKeyPem: pulumi.secret(key.privateKeyPem),
        subject: { commonName: args.commonName, organization: "Agentopia toolbox" },
        ipAddresses: args.ipAddresses,
        dnsNames: args.dnsNames ?? [],
      },
      child,
    );
    const cert = new tls.LocallySignedCert(
      `${name}-cert`,
      {
        certRequestPem: request.certRequestPem,
        caCertPem: args.caCertPem,
        caPrivateKeyPem: pulumi.secret(args.caKeyPem),
        validityPeriodHours: validityHours,
        earlyRenewalHours,
        allowedUses: ["digital_signature", "key_encipherment", "server_auth"],
      },
      child,
    );
    this.certPem = cert.certPem;
    this.keyPem = pulumi.secret(key.privateKeyPem);
    this.notAfter = cert.validityEndTime;
    this.registerOutputs({ certPem: this.certPem, keyPem: this.keyPem, notAfter: this.notAfter });
  }
}
