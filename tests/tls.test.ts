/**
 * Transport security for the toolbox's public port, under Pulumi's mocks (issue 10): the platform
 * holds a CA; every DigitalOcean toolbox gets its own key and a certificate signed by it for its
 * addresses and name; the material reaches only the backend's environment (secret), never
 * user-data; renewal replaces the backend container and leaves the droplet; `public` ingress
 * opens only the backend port and needs TLS; the heartbeat URL is https on droplets.
 */
import * as pulumi from "@pulumi/pulumi";
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { BACKEND_PORT } from "@agentopia-toolboxes/contract";
import { AccountToolbox } from "../components/accountToolbox";
import { mockCertificates } from "../plan/certificates";
import { buildPlan, SECRET } from "../plan/plan";
import { operatorProgram } from "../program/operator";
import {
  evaluateProgram,
  evaluateStack,
  type EvaluatedResource,
  type Evaluation,
} from "../plan/evaluate";
import { testKeyPair } from "../plan/testKeys";
import { runPack } from "../policies/runPack";
import { policies } from "../policies/all";
import { evaluateForPack } from "../policies/programResources";

const byType = (ev: Evaluation, type: string) => ev.resources.filter((r) => r.type === type);
const one = (ev: Evaluation, type: string, suffix = ""): EvaluatedResource => {
  const found = byType(ev, type).filter((r) => r.name.endsWith(suffix));
  assert.equal(found.length, 1, `${type} ${suffix}: ${found.map((r) => r.name).join(", ")}`);
  return found[0];
};
const envOf = (c: EvaluatedResource) =>
  Object.fromEntries(
    (c.inputs.envs as string[]).map((e) => [
      e.slice(0, e.indexOf("=")),
      e.slice(e.indexOf("=") + 1),
    ]),
  );

/** A droplet toolbox's arguments, without its TLS material. */
const dropletToolbox = (accountId: string) => ({
  accountId,
  dtmaImage: "ghcr.io/agentopia/dtma:1",
  backendImage: "ghcr.io/agentopia/backend:1",
  agentopiaApiBaseUrl: "https://cp.example/v1",
  sshKeyIds: ["fp"],
  authorizedKeys: [testKeyPair().publicKey],
  sshPrivateKey: pulumi.secret(testKeyPair().privateKey),
  controlPlaneCidrs: ["198.51.100.0/28"],
});

const KEY = "tls:index/privateKey:PrivateKey";
const SELF_SIGNED = "tls:index/selfSignedCert:SelfSignedCert";
const CSR = "tls:index/certRequest:CertRequest";
const SIGNED = "tls:index/locallySignedCert:LocallySignedCert";
const CONTAINER = "docker:index/container:Container";
const DROPLET = "digitalocean:index/droplet:Droplet";
const FIREWALL = "digitalocean:index/firewall:Firewall";

describe("TLS for the backend's port, under mocks", function () {
  this.timeout(120_000);

  it("the platform holds a CA: ECDSA P-256, self-signed for 10 years, its key secret at the input", async () => {
    const ev = await evaluateStack("dev");
    const ca = one(ev, SELF_SIGNED, "platform-ca");
    assert.equal(ca.inputs.isCaCertificate, true);
    assert.equal(ca.inputs.validityPeriodHours, 87600);
    assert.deepEqual([...(ca.inputs.allowedUses as string[])].sort(), [
      "cert_signing",
      "crl_signing",
      "digital_signature",
    ]);
    assert.ok(ca.secretPaths.includes("privateKeyPem"));
    const key = one(ev, KEY, "platform-ca-key");
    assert.deepEqual([key.inputs.algorithm, key.inputs.ecdsaCurve], ["ECDSA", "P256"]);
    // The CA certificate is a plain output (the control plane pins it), its fingerprint too.
    assert.equal(ev.outputs.toolboxCaCertPem, mockCertificates().ca);
    assert.equal(
      ev.outputs.toolboxCaSha256,
      new X509Certificate(mockCertificates().ca).fingerprint256,
    );
  });

  it("the CA's key is a secret output of the platform stack", async () => {
    let secret: boolean | undefined;
    let plain: boolean | undefined;
    await evaluateStack("dev", {
      program: async () => {
        const out = operatorProgram();
        secret = await pulumi.isSecret(out.toolboxCaKeyPem!);
        plain = await pulumi.isSecret(out.toolboxCaCertPem!);
        return out;
      },
    });
    assert.equal(secret, true);
    assert.equal(plain, false);
  });

  it("each droplet's backend gets its own key and a CA-signed certificate for its IPs and host name", async () => {
    for (const stack of ["dev", "prod"]) {
      const ev = await evaluateStack(stack);
      const csr = one(ev, CSR, "-tls-csr");
      const ips = [...(csr.inputs.ipAddresses as string[])].sort();
      // The droplet's IPv4 and IPv6, and in prod (reserved IP) the reserved address too.
      const expected =
        stack === "prod"
          ? ["2001:db8::10", "203.0.113.10", "203.0.113.200"]
          : ["2001:db8::10", "203.0.113.10"];
      assert.deepEqual(ips, expected, stack);
      const dnsNames = csr.inputs.dnsNames as string[];
      if (stack === "prod") assert.match(dnsNames[0], /^canary-prod\..+/);
      else assert.deepEqual(dnsNames, []);
      assert.ok(csr.secretPaths.includes("privateKeyPem"));
      const cert = one(ev, SIGNED, "-tls-cert");
      assert.equal(cert.inputs.validityPeriodHours, 2160);
      assert.equal(cert.inputs.earlyRenewalHours, 720);
      assert.equal(cert.inputs.caCertPem, mockCertificates().ca);
      assert.ok(cert.secretPaths.includes("caPrivateKeyPem"));
      assert.deepEqual([...(cert.inputs.allowedUses as string[])].sort(), [
        "digital_signature",
        "key_encipherment",
        "server_auth",
      ]);
      // The backend gets both, through its (secret) environment only; the URL is https.
      const backend = one(ev, CONTAINER, "-containers-backend");
      assert.ok(backend.secretPaths.includes("envs"));
      const env = envOf(backend);
      assert.match(Buffer.from(env.TLS_CERT, "base64").toString(), /^-----BEGIN CERTIFICATE-----/);
      assert.equal(Buffer.from(env.TLS_KEY, "base64").toString(), mockCertificates().key);
      assert.ok(!("TLS_CERT" in envOf(one(ev, CONTAINER, "-containers-dtma"))));
      const toolbox = (ev.outputs.toolboxes as Record<string, Record<string, unknown>>)[
        `canary-${stack}`
      ];
      assert.match(String(toolbox.backendUrl), /^https:\/\/.+:3000$/);
      assert.equal(toolbox.backendCertNotAfter, "2026-04-01T00:00:00.000Z");
    }
  });

  it("npm run plan shows the certificate resources with their keys redacted", async () => {
    const plan = await buildPlan("dev");
    const input = (type: string, name: string, key: string) =>
      plan.resources.find((r) => r.type === type && r.name.endsWith(name))!.inputs[key];
    assert.equal(input(SELF_SIGNED, "platform-ca", "privateKeyPem"), SECRET);
    assert.equal(input(CSR, "-tls-csr", "privateKeyPem"), SECRET);
    assert.equal(input(SIGNED, "-tls-cert", "caPrivateKeyPem"), SECRET);
    assert.ok(!JSON.stringify(plan).includes(mockCertificates().key.split("\n")[1]));
  });

  it("no key material is in user-data or in a label", async () => {
    const ev = await evaluateStack("prod");
    const droplet = one(ev, DROPLET, "-droplet");
    const userData = String(droplet.inputs.userData);
    const key = mockCertificates().key;
    for (const needle of [key, Buffer.from(key).toString("base64"), key.split("\n")[1]]) {
      assert.ok(!userData.includes(needle), "the TLS key is in user-data");
    }
    assert.ok(
      !userData.includes(mockCertificates().ca.split("\n")[1]),
      "user-data needs no certificate",
    );
    const labels = JSON.stringify(byType(ev, CONTAINER).map((c) => c.inputs.labels));
    assert.ok(!labels.includes(key.split("\n")[1]));
  });

  it("a renewed certificate replaces the backend container's environment and leaves the droplet as it is", async () => {
    // A renewal is a new LocallySignedCert; under mocks a changed validity stands for it.
    const evaluate = (validityHours: number) =>
      evaluateProgram(
        "renewal",
        {},
        {
          program: () => {
            const toolbox = new AccountToolbox("acct-renew", {
              ...dropletToolbox("renew"),
              backendTls: {
                caCertPem: mockCertificates().ca,
                caKeyPem: pulumi.secret(mockCertificates().key),
                validityHours,
              },
            });
            return { backendUrl: toolbox.backendUrl };
          },
        },
      );
    const [before, after] = [await evaluate(2160), await evaluate(2000)];
    assert.deepEqual(
      one(after, DROPLET).inputs,
      one(before, DROPLET).inputs,
      "the droplet is untouched",
    );
    assert.deepEqual(one(after, FIREWALL).inputs, one(before, FIREWALL).inputs);
    const cert = (ev: Evaluation) => envOf(one(ev, CONTAINER, "-containers-backend")).TLS_CERT;
    assert.notEqual(cert(after), cert(before), "the backend gets the new certificate");
    assert.equal(
      envOf(one(after, CONTAINER, "-containers-dtma")).DTMA_BEARER_TOKEN,
      envOf(one(before, CONTAINER, "-containers-dtma")).DTMA_BEARER_TOKEN,
    );
  });

  it("public ingress opens the backend port (only) to the world, and passes the pack because it is TLS", async () => {
    const ev = await evaluateForPack("prod", { config: { backendIngress: "public" } });
    const rules = one(ev, FIREWALL).inputs.inboundRules as {
      portRange?: string;
      sourceAddresses: string[];
    }[];
    const sources = (port: string) => rules.find((r) => r.portRange === port)!.sourceAddresses;
    assert.deepEqual(sources(String(BACKEND_PORT)), ["0.0.0.0/0", "::/0"]);
    assert.ok(!sources("22").some((s) => s.endsWith("/0")), "SSH stays with the control plane");
    const run = await runPack(policies, ev.packResources);
    assert.deepEqual(run.violations, []);
  });

  it("public ingress without TLS is refused, naming the key", async () => {
    await assert.rejects(
      () => evaluateStack("local", { config: { backendIngress: "public" } }),
      /agentopia-toolboxes:backendIngress: public needs the backend's TLS/,
    );
    await assert.rejects(
      () =>
        evaluateProgram(
          "no-tls",
          {},
          {
            program: () =>
              new AccountToolbox("acct-x", {
                accountId: "x",
                target: "local",
                dtmaImage: "a/b:1",
                backendImage: "a/c:1",
                agentopiaApiBaseUrl: "http://127.0.0.1:9/v1",
                backendIngress: "public",
              }),
          },
        ),
      /backendIngress: public needs backendTls/,
    );
  });

  it("a droplet toolbox without TLS material is refused, naming the argument", async () => {
    await assert.rejects(
      () =>
        evaluateProgram(
          "no-tls",
          {},
          {
            program: () => new AccountToolbox("acct-y", dropletToolbox("y")),
          },
        ),
      /backendTls: required when target is digitalocean/,
    );
  });

  it("the heartbeat URL must be https on droplets (the key is named); http stays allowed locally", async () => {
    await assert.rejects(
      () =>
        evaluateStack("dev", { config: { agentopiaApiBaseUrl: "http://toolboxes.example/v1" } }),
      /agentopia-toolboxes:agentopiaApiBaseUrl: must be an https:\/\/ URL for target digitalocean/,
    );
    const local = await evaluateStack("local");
    assert.ok(byType(local, CONTAINER).length === 2);
  });
});
