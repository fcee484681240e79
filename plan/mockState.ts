// What the providers would compute for a resource under the mocks (ids, addresses, tokens, keys,
// certificates, ports), deterministic, so dependent inputs resolve to realistic values.
import type * as pulumi from "@pulumi/pulumi";
import { createHash } from "node:crypto";
import { mockCertificates } from "./certificates";
import { testKeyPair } from "./testKeys";

/** A resource's id; a droplet's is a number (firewalls and reserved IPs take it as such). */
export function mockId(type: string, name: string): string {
  return type === "digitalocean:index/droplet:Droplet"
    ? String(parseInt(createHash("sha256").update(name).digest("hex").slice(0, 8), 16))
    : `${name}-id`;
}

/** The image id the mocks give a RemoteImage of `name` (what containers' `image` input holds). */
export function mockImageId(name: string): string {
  return `sha256:${createHash("sha256").update(name).digest("hex")}`;
}

/** Deterministic stand-in for a random value: the same resource and keepers give the same token. */
function stableToken(seed: string, length: number): string {
  let out = "";
  for (let i = 0; out.length < length; i++) {
    out += createHash("sha256")
      .update(`${seed}#${i}`)
      .digest("base64")
      .replace(/[^A-Za-z0-9]/g, "");
  }
  return out.slice(0, length);
}

/** A fixed start (evaluations stay deterministic) and the end the inputs ask for. */
function validity(inputs: Record<string, unknown>) {
  const start = Date.parse("2026-01-01T00:00:00Z");
  const hours = Number(inputs.validityPeriodHours ?? 0);
  return {
    validityStartTime: new Date(start).toISOString(),
    validityEndTime: new Date(start + hours * 3_600_000).toISOString(),
  };
}

/** Outputs the providers would compute, so dependent inputs resolve to realistic values. */
export function computedState(
  args: pulumi.runtime.MockResourceArgs,
  id: string,
): Record<string, unknown> {
  const inputs = args.inputs as Record<string, unknown>;
  switch (args.type) {
    case "digitalocean:index/droplet:Droplet":
      return {
        ipv4Address: "203.0.113.10",
        ipv6Address: "2001:db8::10",
        dropletUrn: `do:droplet:${id}`,
      };
    case "digitalocean:index/reservedIp:ReservedIp":
      return { ipAddress: "203.0.113.200", reservedIpUrn: `do:floatingip:${id}` };
    case "digitalocean:index/sshKey:SshKey":
      return { fingerprint: "a1:b2:c3:d4:e5:f6:07:18:29:3a:4b:5c:6d:7e:8f:90" };
    case "digitalocean:index/dnsRecord:DnsRecord":
      return { fqdn: `${String(inputs.name)}.${String(inputs.domain)}` };
    case "random:index/randomPassword:RandomPassword":
      return {
        result: stableToken(
          `${args.name}:${JSON.stringify(inputs.keepers ?? {})}`,
          Number(inputs.length),
        ),
      };
    case "tls:index/privateKey:PrivateKey": {
      if (inputs.algorithm !== "ED25519") {
        // The CA's and backends' keys: PEM, as the provider gives them.
        return { privateKeyPem: mockCertificates().key, publicKeyPem: "" };
      }
      const pair = testKeyPair("host");
      return { privateKeyOpenssh: pair.privateKey, publicKeyOpenssh: `${pair.publicKey}\n` };
    }
    case "tls:index/selfSignedCert:SelfSignedCert":
      return { certPem: mockCertificates().ca, ...validity(inputs) };
    case "tls:index/certRequest:CertRequest":
      return {
        certRequestPem:
          "-----BEGIN CERTIFICATE REQUEST-----\n(mock)\n-----END CERTIFICATE REQUEST-----\n",
      };
    case "tls:index/locallySignedCert:LocallySignedCert":
      // A new certificate for new inputs, as the provider issues one when it replaces it (a
      // renewal); what the program does with it does not parse it.
      return {
        certPem: `-----BEGIN CERTIFICATE-----\n${createHash("sha256").update(JSON.stringify(inputs)).digest("base64")}\n-----END CERTIFICATE-----\n`,
        readyForRenewal: false,
        ...validity(inputs),
      };
    case "docker:index/container:Container": {
      // Docker chooses an external port when none is given (≥ 32768), as the provider reports.
      const ports = (inputs.ports ?? []) as { internal: number; external?: number }[];
      const chosen =
        32768 +
        (parseInt(createHash("sha256").update(args.name).digest("hex").slice(0, 4), 16) % 28000);
      return { ports: ports.map((p) => ({ ...p, external: p.external ?? chosen })) };
    }
    case "docker:index/remoteImage:RemoteImage":
      return { imageId: mockImageId(String(inputs.name)) };
    default:
      return {};
  }
}
