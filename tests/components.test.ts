/**
 * The pure helpers (container specs, firewall rules, readiness script) as property tests, and
 * the components' own contracts under mocks (argument errors, token rotation, the account program).
 */
import assert from "node:assert/strict";
import { mockCertificates } from "../plan/certificates";
import { execFileSync } from "node:child_process";
import fc from "fast-check";
import { AccountToolbox } from "../components/accountToolbox";
import {
  BACKEND_PORT,
  DOCKER_SOCKET,
  DTMA_PORT,
  TOOLS_SUBNET,
  toolboxContainers,
  type ToolboxContainersInput,
} from "../components/containerSpecs";
import { inboundRules, outboundRules, SMTP_PORT, WORLD } from "../components/firewallRules";
import { READINESS_SCRIPT } from "../components/readinessGate";
import { pulumiConfigMap } from "../automation/src/engine/automationOptions";
import { ACCOUNT_STACK_OUTPUTS, portRangeIncludes } from "@agentopia-toolboxes/contract";
import { ACCOUNT_ID_PATTERN, CONFIG_NAMESPACE } from "@agentopia-toolboxes/contract";
import { ACCOUNT_CONFIG_KEYS } from "../program/accountConfig";
import { evaluateProgram } from "../plan/evaluate";
import { testKeyPair } from "../plan/testKeys";

const accountId = fc.stringMatching(ACCOUNT_ID_PATTERN);
const ipv4Cidr = fc
  .tuple(fc.ipV4(), fc.integer({ min: 1, max: 32 }))
  .map(([ip, bits]) => `${ip}/${bits}`);

function specInput(id: string, overrides: Partial<ToolboxContainersInput<string>> = {}) {
  return {
    accountId: id,
    dtmaImage: "ghcr.io/agentopia/dtma:1",
    backendImage: "ghcr.io/agentopia/backend:1",
    agentopiaApiBaseUrl: "https://cp.example/v1",
    tokens: { dtma: "t-dtma", dtmaPrevious: "t-prev", backendApi: "t-api", agentGateway: "t-gw" },
    publishAddress: "0.0.0.0",
    publishPort: BACKEND_PORT,
    fixedSubnets: true,
    reachHost: false,
    dockerSocketGid: 2375,
    dtmaMemoryMb: 160,
    backendMemoryMb: 192,
    toolCaps: { memoryMb: 256, cpus: 1, pids: 256 },
    ...overrides,
  };
}

describe("container specs (pure)", function () {
  it("keep the DTMA private, the socket DTMA-only and secrets out of plain env", function () {
    fc.assert(
      fc.property(accountId, fc.boolean(), (id, fixed) => {
        const specs = toolboxContainers(specInput(id, { fixedSubnets: fixed }));
        assert.deepEqual(specs.dtma.ports, []);
        assert.ok(specs.dtma.mounts.some((m) => m.hostPath === DOCKER_SOCKET));
        assert.deepEqual(specs.backend.mounts, []);
        assert.deepEqual(specs.dtma.groupAdd, ["2375"], "the DTMA joins the socket's group");
        assert.deepEqual(specs.backend.groupAdd, []);
        assert.deepEqual(
          specs.dtma.extraHosts,
          {},
          "on a droplet no container is pointed at the host",
        );
        for (const spec of [specs.dtma, specs.backend]) {
          const plain = Object.values(spec.env).join(" ");
          for (const token of ["t-dtma", "t-prev", "t-api", "t-gw"])
            assert.ok(!plain.includes(token));
          assert.match(spec.name, /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/, "a valid Docker name");
          assert.deepEqual(spec.capDrop, ["ALL"]);
          assert.ok(spec.securityOpts.includes("no-new-privileges:true"));
        }
        // Only the control network is declared; the DTMA gives each tool its own, connects the
        // backend to it, and carves its subnet from TOOLS_SUBNET on droplets (decision 0026).
        assert.deepEqual(
          specs.networks.map((n) => n.key),
          ["control"],
        );
        assert.equal(specs.dtma.env.DTMA_GATEWAY_CONTAINER, specs.backend.name);
        assert.equal(specs.dtma.env.DTMA_TOOL_SUBNET_POOL, fixed ? TOOLS_SUBNET : undefined);
        assert.deepEqual(
          specs.backend.networks.map((n) => n.name),
          [specs.networks[0].name],
        );
        assert.equal(specs.backend.env.DTMA_URL, `http://dtma:${DTMA_PORT}`);
        assert.equal(
          specs.networks.every((n) => (n.subnet !== undefined) === fixed),
          true,
        );
      }),
    );
  });

  it("are deterministic: the same input gives the same definitions", function () {
    fc.assert(
      fc.property(accountId, (id) => {
        assert.deepEqual(toolboxContainers(specInput(id)), toolboxContainers(specInput(id)));
      }),
    );
  });
});

describe("firewall rules (pure)", function () {
  it("never open the DTMA port, and SSH/backend only to the given CIDRs", function () {
    fc.assert(
      fc.property(fc.array(ipv4Cidr, { minLength: 1, maxLength: 5 }), (cidrs) => {
        for (const rule of inboundRules(cidrs)) {
          if (rule.protocol === "icmp") continue;
          assert.ok(!portRangeIncludes(rule.portRange, DTMA_PORT));
          assert.deepEqual(rule.addresses, cidrs);
          assert.ok(!rule.addresses.some((a) => WORLD.includes(a)));
        }
      }),
    );
  });

  it("leave every outbound port open but SMTP", function () {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 65535 }), (port) => {
        const open = outboundRules().some(
          (r) => r.protocol === "tcp" && portRangeIncludes(r.portRange, port),
        );
        assert.equal(open, port !== SMTP_PORT);
      }),
    );
  });
});

describe("readiness gate script", function () {
  it("passes shellcheck", function () {
    execFileSync("shellcheck", ["-s", "bash", "-"], { input: READINESS_SCRIPT });
  });

  it("tolerates cloud-init's degraded exit code 2 and fails on others with the log tail", function () {
    for (const [code, expected] of [
      [0, 0],
      [2, 0],
      [1, 1],
    ] as const) {
      // A fake `cloud-init` and `docker` on PATH, so the script's own logic is what runs.
      const bin = execFileSync("mktemp", ["-d"]).toString().trim();
      execFileSync("sh", [
        "-c",
        `printf '#!/bin/sh\\n[ "$1" = status ] && [ "$2" = --wait ] && exit ${code}\\necho long-status\\n' > ${bin}/cloud-init; ` +
          `printf '#!/bin/sh\\nexit 0\\n' > ${bin}/docker; printf '#!/bin/sh\\necho log-tail\\n' > ${bin}/tail; chmod +x ${bin}/*`,
      ]);
      let status = 0;
      let stderr = "";
      try {
        execFileSync("bash", ["-c", READINESS_SCRIPT], {
          env: { PATH: `${bin}:/usr/bin:/bin` },
          stdio: ["ignore", "pipe", "pipe"],
        });
      } catch (err) {
        status = (err as { status: number }).status;
        stderr = String((err as { stderr: Buffer }).stderr);
      }
      execFileSync("rm", ["-rf", bin]);
      assert.equal(status, expected, `cloud-init exit ${code}`);
      if (expected !== 0) assert.match(stderr, /exit code 1[\s\S]*log-tail/);
    }
  });
});

describe("AccountToolbox contracts under mocks", function () {
  it("raises a ResourceError naming a missing argument for the digitalocean target", async function () {
    await assert.rejects(
      evaluateProgram(
        "dev",
        {},
        {
          program: () =>
            new AccountToolbox("x", {
              accountId: "x",
              dtmaImage: "a/dtma:1",
              backendImage: "a/backend:1",
              agentopiaApiBaseUrl: "https://cp.example/v1",
            }),
        },
      ),
      /sshKeyIds: required when target is digitalocean/,
    );
  });

  it("rotates through generations, each keeping the one before as the previous DTMA token", async function () {
    const tokens: { current: string; previous: string }[] = [];
    for (let generation = 0; generation <= 4; generation++) {
      const ev = await evaluateProgram(
        "local",
        {},
        {
          program: () => {
            const t = new AccountToolbox("r", {
              accountId: "r",
              target: "local",
              dtmaImage: "a/dtma:1",
              backendImage: "a/backend:1",
              agentopiaApiBaseUrl: "http://127.0.0.1:8080/v1",
              tokenGeneration: generation,
            });
            return { current: t.dtmaToken, previous: t.dtmaTokenPrevious };
          },
        },
      );
      tokens.push(ev.outputs as { current: string; previous: string });
    }
    assert.equal(tokens[0].previous, "");
    for (let g = 1; g < tokens.length; g++) {
      assert.equal(tokens[g].previous, tokens[g - 1].current, `generation ${g}`);
      assert.notEqual(tokens[g].current, tokens[g - 1].current);
    }
  });
});

/** A platform's profile as the operator program exports it (program/toolboxProfile.ts). */
const PROFILE = {
  sizes: ["s-1vcpu-512mb-10gb"],
  dropletImage: "ubuntu-24-04-x64",
  backups: false,
  dtmaMemoryMb: 160,
  backendMemoryMb: 192,
  swapMb: 1024,
  toolCaps: { memoryMb: 256, cpus: 1, pids: 256 },
  requireDigestPins: false,
};

describe("account program (what the automation service runs)", function () {
  const base = {
    accountId: "7f0c2a52-54a4-4c51-9a4e-2f1f0e3b9a10",
    agentopiaApiBaseUrl: "https://toolboxes.example/v1",
    dtmaImage: "ghcr.io/agentopia/dtma:1",
    backendImage: "ghcr.io/agentopia/backend:1",
  };
  const load = (secrets = {}) =>
    import("../program/account").then((m) => m.accountProgram(secrets));
  /** The account program on digitalocean, reading a platform stack with VPCs in `vpcIds`. */
  const evaluateDroplet = (accountId: string, region: string, vpcIds: Record<string, string>) =>
    evaluateProgram(
      `acct-${accountId}`,
      {
        ...base,
        accountId,
        target: "digitalocean",
        region,
        platformStack: "org/agentopia-toolboxes/prod",
        controlPlaneCidrs: JSON.stringify(["198.51.100.16/28"]),
      },
      {
        program: () => load({ sshPrivateKey: testKeyPair().privateKey }),
        stackReferenceOutputs: {
          toolboxProfile: { ...PROFILE, regions: Object.keys(vpcIds).concat(region) },
          vpcIds,
          projectId: "proj-1",
          sshKeyFingerprint: "fp",
          sshPublicKey: testKeyPair().publicKey,
          environmentTag: "env-prod",
          toolboxCaCertPem: mockCertificates().ca,
          toolboxCaKeyPem: mockCertificates().key,
        },
      },
    );

  it("declares one toolbox from the platform stack's outputs and exports the contract", async function () {
    const ev = await evaluateDroplet(base.accountId, "fra1", {
      fra1: "vpc-fra1",
      nyc3: "vpc-nyc3",
    });
    const droplet = ev.resources.find((r) => r.type === "digitalocean:index/droplet:Droplet")!;
    assert.equal(droplet.inputs.vpcUuid, "vpc-fra1");
    assert.equal(droplet.inputs.region, "fra1");
    assert.ok((droplet.inputs.tags as string[]).includes("env-prod"));
    assert.deepEqual(Object.keys(ev.outputs).sort(), [...ACCOUNT_STACK_OUTPUTS].sort());
    assert.equal(
      ev.outputs.dropletName,
      `tbx-${base.accountId}`,
      "the droplet's name, not the stack's",
    );
  });

  it("takes the SSH key in-process (to the readiness gate, as a secret), never from stack config", async function () {
    const ev = await evaluateDroplet(base.accountId, "nyc3", { nyc3: "vpc-nyc3" });
    const key = testKeyPair().privateKey;
    const holders = ev.resources.filter((r) =>
      JSON.stringify(r.inputs).includes(JSON.stringify(key).slice(1, 40)),
    );
    assert.ok(holders.length > 0, "the key reaches the readiness gate");
    for (const r of holders)
      assert.ok(r.secretPaths.length > 0, `${r.name} holds the key in clear`);
    // A key set as stack config is not read: config values travel on the CLI's command line.
    await assert.rejects(
      evaluateProgram(
        `acct-${base.accountId}`,
        {
          ...base,
          target: "digitalocean",
          platformStack: "org/agentopia-toolboxes/prod",
          controlPlaneCidrs: JSON.stringify(["198.51.100.16/28"]),
          sshPrivateKey: key,
        },
        { program: () => load(), secretKeys: ["sshPrivateKey"] },
      ),
      /sshPrivateKey: is required for target digitalocean \(the automation service passes it/,
    );
  });

  it("fails clearly when the platform has no VPC in the requested region", async function () {
    await assert.rejects(evaluateDroplet("y", "sgp1", { nyc3: "vpc-nyc3" }), /has no VPC in sgp1/);
  });

  it("reads every key the automation service sets (no key is silently ignored)", function () {
    for (const target of ["digitalocean", "local"] as const) {
      const map = pulumiConfigMap(
        {
          accountId: "a",
          target,
          region: "nyc3",
          size: "s-1vcpu-1gb",
          platformStack: "org/agentopia-toolboxes/prod",
          agentopiaApiBaseUrl: "https://x.example/v1",
          controlPlaneCidrs: ["198.51.100.0/24"],
          dtmaImage: "a/dtma:1",
          backendImage: "a/backend:1",
          tokenGeneration: 0,
        },
        "/tmp/ssh",
      );
      for (const key of Object.keys(map)) {
        const [namespace, name] = key.split(":");
        assert.equal(namespace, CONFIG_NAMESPACE);
        assert.ok(ACCOUNT_CONFIG_KEYS.includes(name), `the account program ignores ${key}`);
      }
    }
  });

  it("runs the local target without a platform stack", async function () {
    const ev = await evaluateProgram(
      "acct-l",
      { ...base, accountId: "l", target: "local" },
      { program: load },
    );
    // Docker chooses the port (two local toolboxes share a daemon); the URL reports the one chosen.
    const backend = ev.resources.find((r) => r.name.endsWith("-containers-backend"))!;
    assert.equal((backend.inputs.ports as { external?: number }[])[0].external, undefined);
    assert.match(String(ev.outputs.backendUrl), /^http:\/\/127\.0\.0\.1:\d{5}$/);
    assert.equal(
      ev.resources.filter((r) => r.type === "docker:index/container:Container").length,
      2,
    );
  });
});
