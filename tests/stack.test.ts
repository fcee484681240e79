/**
 * The operator program under Pulumi's mocks, with each committed stack's own config.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import { BACKEND_PORT, DOCKER_SOCKET, DTMA_PORT } from "../components/containerSpecs";
import { portRangeIncludes, SSH_PORT } from "@agentopia-toolboxes/contract";
import { evaluateStack, type EvaluatedResource, type Evaluation } from "../plan/evaluate";

const T = {
  droplet: "digitalocean:index/droplet:Droplet",
  firewall: "digitalocean:index/firewall:Firewall",
  container: "docker:index/container:Container",
  network: "docker:index/network:Network",
  gate: "command:remote:Command",
  password: "random:index/randomPassword:RandomPassword",
  vpc: "digitalocean:index/vpc:Vpc",
  project: "digitalocean:index/project:Project",
  projectResources: "digitalocean:index/projectResources:ProjectResources",
  sshKey: "digitalocean:index/sshKey:SshKey",
  reservedIp: "digitalocean:index/reservedIp:ReservedIp",
  dns: "digitalocean:index/dnsRecord:DnsRecord",
  domain: "digitalocean:index/domain:Domain",
  dockerProvider: "pulumi:providers:docker",
};

const ofType = (ev: Evaluation, type: string) => ev.resources.filter((r) => r.type === type);
const one = (ev: Evaluation, type: string): EvaluatedResource => {
  const found = ofType(ev, type);
  assert.equal(found.length, 1, `expected exactly one ${type}, found ${found.length}`);
  return found[0];
};
const envOf = (c: EvaluatedResource): Record<string, string> =>
  Object.fromEntries(
    (c.inputs.envs as string[]).map((e) => [
      e.slice(0, e.indexOf("=")),
      e.slice(e.indexOf("=") + 1),
    ]),
  );
const labelsOf = (c: EvaluatedResource): Record<string, string> =>
  Object.fromEntries(
    (c.inputs.labels as { label: string; value: string }[]).map((l) => [l.label, l.value]),
  );
const byRole = (ev: Evaluation, role: string) =>
  ofType(ev, T.container).find((c) => labelsOf(c)["agentopia.role"] === role)!;

interface FirewallRuleInput {
  protocol: string;
  portRange?: string;
  sourceAddresses?: string[];
  destinationAddresses?: string[];
}

const stacks: Record<string, Evaluation> = {};

describe("operator program under mocks", function () {
  before(async function () {
    // Evaluations share the process-wide Pulumi runtime: one after another.
    for (const stack of ["local", "dev", "prod"]) stacks[stack] = await evaluateStack(stack);
  });

  for (const stack of ["dev", "prod"]) {
    describe(`${stack} stack`, function () {
      const ev = () => stacks[stack];

      it("declares the platform: a VPC per region, the automation key, tags and a project", function () {
        const cfg = parseYaml(readFileSync(`Pulumi.${stack}.yaml`, "utf8")) as {
          config: Record<string, unknown>;
        };
        const regions = cfg.config["agentopia-toolboxes:regions"] as string[];
        assert.deepEqual(
          ofType(ev(), T.vpc)
            .map((v) => v.inputs.region)
            .sort(),
          [...regions].sort(),
        );
        one(ev(), T.sshKey);
        one(ev(), T.project);
        assert.deepEqual(
          ofType(ev(), "digitalocean:index/tag:Tag")
            .map((t) => t.inputs.name)
            .sort(),
          ["agentopia-toolbox", `env-${stack}`],
        );
      });

      it("gives the droplet monitoring, IPv6, its VPC, tags and cloud-init user-data", function () {
        const droplet = one(ev(), T.droplet);
        assert.equal(droplet.inputs.monitoring, true);
        assert.equal(droplet.inputs.ipv6, true);
        assert.equal(droplet.inputs.image, "ubuntu-24-04-x64");
        assert.match(String(droplet.inputs.vpcUuid), /^platform-vpc-/);
        const tags = droplet.inputs.tags as string[];
        assert.ok(tags.includes("agentopia-toolbox"));
        assert.ok(tags.some((t) => /^account-/.test(t)));
        assert.ok(tags.includes(`env-${stack}`));
        assert.match(String(droplet.inputs.userData), /^#cloud-config\n/);
        assert.ok(Buffer.byteLength(String(droplet.inputs.userData)) < 64 * 1024);
        assert.equal(one(ev(), T.projectResources).inputs.project, "platform-project-id");
      });

      it("never opens the DTMA port, and opens SSH and the backend only to the control plane", function () {
        const fw = one(ev(), T.firewall);
        const inbound = fw.inputs.inboundRules as FirewallRuleInput[];
        const world = ["0.0.0.0/0", "::/0"];
        for (const rule of inbound.filter((r) => r.protocol !== "icmp")) {
          assert.ok(
            !portRangeIncludes(rule.portRange, DTMA_PORT),
            `DTMA port opened by ${JSON.stringify(rule)}`,
          );
          assert.ok(
            !(rule.sourceAddresses ?? []).some((a) => world.includes(a)),
            `rule open to the world: ${JSON.stringify(rule)}`,
          );
        }
        const ports = inbound.filter((r) => r.protocol === "tcp").map((r) => r.portRange);
        assert.deepEqual(ports.sort(), [String(SSH_PORT), String(BACKEND_PORT)].sort());
        const outbound = fw.inputs.outboundRules as FirewallRuleInput[];
        assert.ok(
          !outbound.some((r) => r.protocol === "tcp" && portRangeIncludes(r.portRange, 25)),
          "outbound SMTP must be blocked",
        );
        const toolboxes = ev().outputs.toolboxes as Record<string, { dropletId: string }>;
        const [dropletId] = Object.values(toolboxes).map((t) => Number(t.dropletId));
        assert.ok(Number.isInteger(dropletId));
        assert.deepEqual(fw.inputs.dropletIds, [dropletId], "the firewall covers the droplet");
      });

      it("keeps every token out of user-data and secret at the input level", function () {
        const userData = String(one(ev(), T.droplet).inputs.userData);
        const secretNames = ["DTMA_BEARER_TOKEN", "INTERNAL_API_SECRET", "AGENT_GATEWAY_TOKEN"];
        const tokens = ofType(ev(), T.container).flatMap((c) =>
          secretNames.map((n) => envOf(c)[n]).filter((v): v is string => v !== undefined),
        );
        assert.equal(tokens.length, 4);
        for (const token of tokens) {
          assert.ok(token.length >= 43, "tokens carry at least 256 bits");
          assert.ok(!userData.includes(token), "a token leaked into user-data");
        }
        // The droplet's own host key is the one private key user-data may carry.
        assert.equal(userData.match(/BEGIN OPENSSH PRIVATE KEY/g)?.length, 1);
        const automationKey = String(
          (one(ev(), T.gate).inputs.connection as { privateKey: string }).privateKey,
        );
        // Line 3 of an OpenSSH key block is key material (lines 1-2 are a common header).
        assert.ok(
          !userData.includes(automationKey.trim().split("\n")[3]),
          "the automation key leaked",
        );
        for (const c of ofType(ev(), T.container)) {
          assert.ok(c.secretPaths.includes("envs"), `${c.name}: envs must be a secret`);
        }
        assert.ok(
          one(ev(), T.gate).secretPaths.some((p) => "connection.privateKey".startsWith(p)),
          "the readiness gate's private key must be secret",
        );
        assert.ok(one(ev(), T.dockerProvider).secretPaths.includes("sshOpts"));
      });

      it("starts the containers only after the readiness gate, on the droplet's Docker over SSH", function () {
        const gate = one(ev(), T.gate);
        const droplet = one(ev(), T.droplet);
        const provider = one(ev(), T.dockerProvider);
        assert.match(String(provider.inputs.host), /^ssh:\/\/root@203\.0\.113\.10$/);
        const sshOpts = provider.inputs.sshOpts as string[];
        assert.ok(sshOpts.includes("StrictHostKeyChecking=yes"));
        const connection = gate.inputs.connection as Record<string, unknown>;
        assert.match(String(connection.hostKey), /^ssh-ed25519 /);
        assert.match(String(gate.inputs.create), /cloud-init status --wait/);
        for (const r of [...ofType(ev(), T.container), ...ofType(ev(), T.network)]) {
          assert.ok(r.dependsOn.includes(gate.urn), `${r.name} must depend on the readiness gate`);
          assert.equal(r.provider, provider.urn);
          assert.equal(r.deletedWith, droplet.urn, `${r.name} must be deleted with the droplet`);
        }
      });

      it("declares exactly one DTMA and one backend with the documented settings", function () {
        const dtma = byRole(ev(), "dtma");
        const backend = byRole(ev(), "backend");
        assert.equal(ofType(ev(), T.container).length, 2);
        const d = envOf(dtma);
        assert.equal(d.PORT, String(DTMA_PORT));
        assert.ok(d.DTMA_BEARER_TOKEN.length >= 43);
        assert.equal(d.DTMA_BEARER_TOKEN_PREVIOUS, "");
        assert.match(d.AGENTOPIA_API_BASE_URL, /^https:\/\//);
        const b = envOf(backend);
        assert.equal(b.PORT, String(BACKEND_PORT));
        assert.equal(b.DTMA_URL, `http://dtma:${DTMA_PORT}`);
        assert.equal(b.DTMA_BEARER_TOKEN, d.DTMA_BEARER_TOKEN);
        assert.ok(b.INTERNAL_API_SECRET.length >= 43 && b.AGENT_GATEWAY_TOKEN.length >= 43);
        assert.notEqual(b.INTERNAL_API_SECRET, b.AGENT_GATEWAY_TOKEN);
        // The DTMA alone holds the socket and publishes nothing.
        assert.deepEqual(dtma.inputs.ports ?? [], []);
        assert.ok(
          (dtma.inputs.volumes as { hostPath: string }[]).some((v) => v.hostPath === DOCKER_SOCKET),
        );
        assert.deepEqual(backend.inputs.volumes ?? [], []);
        assert.deepEqual(backend.inputs.ports, [
          { internal: BACKEND_PORT, external: BACKEND_PORT, ip: "0.0.0.0" },
        ]);
        for (const c of [dtma, backend]) {
          assert.equal(c.inputs.restart, "unless-stopped");
          assert.equal(c.inputs.logDriver, "json-file");
          assert.ok(Number(c.inputs.memory) > 0);
          assert.ok((c.inputs.healthcheck as { tests: string[] }).tests.length > 0);
          assert.equal(c.inputs.init, true);
        }
      });
    });
  }

  it("prod pins images by digest, keeps backups on and names toolboxes in DNS", function () {
    const prod = stacks.prod;
    for (const image of ofType(prod, "docker:index/remoteImage:RemoteImage")) {
      assert.match(String(image.inputs.name), /@sha256:[a-f0-9]{64}$/);
    }
    assert.equal(one(prod, T.droplet).inputs.backups, true);
    assert.equal(one(prod, T.droplet).inputs.size, "s-1vcpu-1gb");
    one(prod, T.domain);
    assert.equal(
      one(prod, T.dns).inputs.value,
      "203.0.113.200",
      "the A record follows the reserved IP",
    );
    one(prod, T.reservedIp);
    assert.equal(
      stacks.dev.resources.some((r) => r.type === T.reservedIp),
      false,
    );
    assert.equal(one(stacks.dev, T.droplet).inputs.backups, false);
  });

  it("local runs the same containers on the local daemon: no droplet, no firewall, loopback port", function () {
    const local = stacks.local;
    assert.equal(ofType(local, T.droplet).length, 0);
    assert.equal(ofType(local, T.firewall).length, 0);
    assert.equal(ofType(local, T.gate).length, 0);
    assert.deepEqual(byRole(local, "dtma").inputs.hosts, [
      { host: "host.docker.internal", ip: "host-gateway" },
    ]);
    assert.deepEqual(byRole(stacks.dev, "dtma").inputs.hosts, []);
    const backend = byRole(local, "backend");
    assert.deepEqual(backend.inputs.ports, [
      { internal: BACKEND_PORT, external: 3000, ip: "127.0.0.1" },
    ]);
    // Same definitions as on a droplet, apart from host-specific values.
    const dev = stacks.dev;
    const shape = (c: EvaluatedResource) => ({
      volumes: c.inputs.volumes,
      capabilities: c.inputs.capabilities,
      securityOpts: c.inputs.securityOpts,
      readOnly: c.inputs.readOnly,
      healthcheck: c.inputs.healthcheck,
      // Host-specific: droplets fix the tool subnet pool for the host firewall, and give the
      // backend its TLS material (its port crosses the internet there).
      envNames: Object.keys(envOf(c))
        .filter((name) => !["DTMA_TOOL_SUBNET_POOL", "TLS_CERT", "TLS_KEY"].includes(name))
        .sort(),
    });
    for (const role of ["dtma", "backend"]) {
      assert.deepEqual(shape(byRole(local, role)), shape(byRole(dev, role)));
    }
  });

  it("keeps tokens stable across two evaluations with the same config", async function () {
    const again = await evaluateStack("dev");
    const tokens = (ev: Evaluation) =>
      ofType(ev, T.password).map((p) => [p.name, JSON.stringify(p.inputs)]);
    assert.deepEqual(tokens(again), tokens(stacks.dev));
    assert.deepEqual(envOf(byRole(again, "backend")), envOf(byRole(stacks.dev, "backend")));
  });

  it("rotates tokens by config without replacing the droplet, keeping the previous DTMA token", async function () {
    const before = stacks.dev;
    const rotated = await evaluateStack("dev", {
      config: { toolboxes: JSON.stringify([{ accountId: "canary-dev", tokenGeneration: 1 }]) },
    });
    const droplet = (ev: Evaluation) => one(ev, T.droplet).inputs;
    assert.deepEqual(droplet(rotated), droplet(before), "droplet inputs must not change");
    const old = envOf(byRole(before, "dtma"));
    const now = envOf(byRole(rotated, "dtma"));
    assert.notEqual(now.DTMA_BEARER_TOKEN, old.DTMA_BEARER_TOKEN);
    assert.equal(now.DTMA_BEARER_TOKEN_PREVIOUS, old.DTMA_BEARER_TOKEN);
    assert.notEqual(
      envOf(byRole(rotated, "backend")).INTERNAL_API_SECRET,
      envOf(byRole(before, "backend")).INTERNAL_API_SECRET,
    );
  });
});
