/**
 * The pack against the real program: the dev, prod and local stacks, evaluated under mocks with
 * their committed config, pass every policy; a deliberately broken variant of the program (a
 * config value or a declaration changed) trips each policy in turn, and only that one.
 */
import * as pulumi from "@pulumi/pulumi";
import assert from "node:assert/strict";
import { policies } from "../policies/all";
import { evaluateForPack, type ProgramEvaluation } from "../policies/programResources";
import { runPack } from "../policies/runPack";
import { plaintextSecrets } from "../policies/secretInputs";

/** Policy names that fired, and plaintext secrets reported as "secret-inputs-are-secrets". */
async function verdict(evaluation: ProgramEvaluation): Promise<string[]> {
  const run = await runPack(policies, evaluation.packResources);
  assert.deepEqual(run.skipped, [], "under mocks every value is known");
  const exposed = evaluation.resources.some((r) => plaintextSecrets(r).length > 0);
  return [
    ...new Set([
      ...run.violations.map((v) => v.policy),
      ...(exposed ? ["secret-inputs-are-secrets"] : []),
    ]),
  ].sort();
}

type Props = Record<string, unknown>;

/** A transformation that rewrites the props of resources of one type (and optional role). */
function alter(
  type: string,
  change: (props: Props) => Props,
  role?: string,
): pulumi.ResourceTransformation {
  return (args) => {
    if (args.type !== type) return undefined;
    if (role !== undefined && !args.name.endsWith(`-${role}`)) return undefined;
    return { props: change({ ...args.props }), opts: args.opts };
  };
}

const DROPLET = "digitalocean:index/droplet:Droplet";
const FIREWALL = "digitalocean:index/firewall:Firewall";
const CONTAINER = "docker:index/container:Container";

/** A backend without its certificate and key. */
const withoutTls = (p: Props) => ({
  ...p,
  envs: pulumi
    .output(p["envs"] as pulumi.Input<string[]>)
    .apply((e) => e.filter((v) => !/^TLS_(CERT|KEY)=/.test(v))),
});

const withEnv = (extra: string) => (p: Props) => ({
  ...p,
  envs: pulumi.output(p["envs"] as pulumi.Input<string[]>).apply((e) => [...e, extra]),
});

interface Break {
  policy: string;
  stack: "dev" | "prod";
  config?: Record<string, string>;
  mutate?: pulumi.ResourceTransformation;
  /** Other checks the same break rightly trips. */
  also?: string[];
}

const BREAKS: Break[] = [
  {
    policy: "droplet-monitoring",
    stack: "dev",
    mutate: alter(DROPLET, (p) => ({ ...p, monitoring: false })),
  },
  // Regions and sizes the config schema accepts but the pack's defaults do not.
  { policy: "droplet-allowed-region", stack: "dev", config: { regions: '["nyc1"]' } },
  {
    policy: "droplet-allowed-size",
    stack: "dev",
    config: { defaultSize: "s-4vcpu-8gb", sizes: '["s-1vcpu-512mb-10gb","s-4vcpu-8gb"]' },
  },
  {
    policy: "droplet-toolbox-tags",
    stack: "dev",
    mutate: alter(DROPLET, (p) => ({ ...p, tags: ["agentopia-toolbox"] })),
  },
  {
    policy: "droplet-in-vpc",
    stack: "dev",
    mutate: alter(DROPLET, (p) => ({ ...p, vpcUuid: undefined })),
  },
  {
    policy: "droplet-user-data-no-secrets",
    stack: "dev",
    // Under mocks user-data is not a Pulumi secret, so the token is also a plaintext input.
    also: ["secret-inputs-are-secrets"],
    mutate: alter(DROPLET, (p) => ({
      ...p,
      userData: pulumi
        .output(p["userData"] as pulumi.Input<string>)
        .apply(
          (u) => `${u}\nbootcmd:\n  - echo AGENT_GATEWAY_TOKEN=${"Zx9".repeat(16)} > /etc/gw\n`,
        ),
    })),
  },
  {
    policy: "firewall-dtma-port-private",
    stack: "prod",
    mutate: alter(FIREWALL, (p) => ({
      ...p,
      inboundRules: pulumi
        .output(p["inboundRules"] as pulumi.Input<Props[]>)
        .apply((r) => [...r, { protocol: "tcp", portRange: "30000", sourceAddresses: ["::/0"] }]),
    })),
  },
  // Config refuses near-world ranges (the contract's rule); a firewall built around it does not.
  {
    policy: "firewall-ssh-private",
    stack: "dev",
    mutate: alter(FIREWALL, (p) => ({
      ...p,
      inboundRules: pulumi
        .output(p["inboundRules"] as pulumi.Input<Props[]>)
        .apply((r) => [
          ...r,
          { protocol: "tcp", portRange: "22", sourceAddresses: ["0.0.0.0/1", "128.0.0.0/1"] },
        ]),
    })),
  },
  {
    policy: "toolbox-droplet-has-firewall",
    stack: "dev",
    mutate: alter(FIREWALL, (p) => ({ ...p, dropletIds: [] })),
  },
  {
    policy: "container-docker-socket-dtma-only",
    stack: "dev",
    mutate: alter(
      CONTAINER,
      (p) => ({
        ...p,
        volumes: [{ hostPath: "/var/run/docker.sock", containerPath: "/var/run/docker.sock" }],
      }),
      "backend",
    ),
  },
  {
    policy: "container-no-fleet-credentials",
    stack: "prod",
    mutate: alter(CONTAINER, withEnv(`SUPABASE_SERVICE_ROLE_KEY=${"k".repeat(8)}`), "backend"),
  },
  {
    policy: "container-restart-policy",
    stack: "dev",
    mutate: alter(CONTAINER, (p) => ({ ...p, restart: "no" }), "dtma"),
  },
  {
    policy: "container-log-rotation",
    stack: "dev",
    mutate: alter(CONTAINER, (p) => ({ ...p, logOpts: {} }), "dtma"),
  },
  {
    policy: "container-memory-limit",
    stack: "dev",
    mutate: alter(
      CONTAINER,
      (p) => ({ ...p, memory: undefined, memorySwap: undefined }),
      "backend",
    ),
  },
  {
    policy: "container-image-digest",
    stack: "prod",
    config: {
      requireDigestPins: "false",
      images:
        '{"dtma":"ghcr.io/agentopia/toolboxes-dtma:main","backend":"ghcr.io/agentopia/toolboxes-backend:main"}',
    },
  },
  {
    policy: "toolbox-one-dtma-one-backend",
    stack: "dev",
    mutate: alter(
      CONTAINER,
      (p) => ({
        ...p,
        labels: (p["labels"] as { label: string; value: string }[]).map((l) =>
          l.label === "agentopia.role" ? { ...l, value: "dtma" } : l,
        ),
      }),
      "backend",
    ),
  },
  // A backend without its certificate and key (the droplet stays).
  {
    policy: "toolbox-backend-tls",
    stack: "dev",
    mutate: alter(CONTAINER, withoutTls, "backend"),
  },
  // The backend port open to the world in front of a backend without TLS.
  {
    policy: "firewall-backend-world-needs-tls",
    stack: "prod",
    also: ["toolbox-backend-tls"],
    mutate: (args) =>
      alter(FIREWALL, (p) => ({
        ...p,
        inboundRules: pulumi
          .output(p["inboundRules"] as pulumi.Input<Props[]>)
          .apply((r) => [
            ...r,
            { protocol: "tcp", portRange: "3000", sourceAddresses: ["0.0.0.0/0"] },
          ]),
      }))(args) ?? alter(CONTAINER, withoutTls, "backend")(args),
  },
  {
    policy: "secret-inputs-are-secrets",
    stack: "dev",
    mutate: alter(
      CONTAINER,
      (p) => ({ ...p, envs: pulumi.unsecret(pulumi.output(p["envs"] as string[])) }),
      "dtma",
    ),
  },
];

describe("policies: the pack against the program under mocks", function () {
  for (const stack of ["dev", "prod", "local"] as const) {
    it(`the ${stack} stack passes every policy and keeps every secret-looking input secret`, async () => {
      const evaluation = await evaluateForPack(stack);
      const types = new Set(evaluation.resources.map((r) => r.type));
      assert.ok(types.has(CONTAINER), "the toolbox's containers are declared");
      if (stack !== "local")
        assert.ok(types.has(DROPLET) && types.has(FIREWALL), "a droplet and its firewall");
      assert.deepEqual(await verdict(evaluation), []);
    });
  }

  it("every policy of the pack has a broken variant below", () => {
    assert.deepEqual(
      BREAKS.map((b) => b.policy)
        .filter((p) => p !== "secret-inputs-are-secrets")
        .sort(),
      // Account stacks only (a StackReference to a pinned platform): tests/serviceStackContract.test.ts.
      policies
        .map((p) => p.name)
        .filter((p) => p !== "account-stack-image-digest")
        .sort(),
    );
  });

  for (const b of BREAKS) {
    it(`a broken ${b.stack} variant trips ${b.policy}${b.also ? "" : ", and only it"}`, async () => {
      const evaluation = await evaluateForPack(
        b.stack,
        b.config ? { config: b.config } : {},
        b.mutate,
      );
      assert.deepEqual(await verdict(evaluation), [b.policy, ...(b.also ?? [])].sort());
    });
  }
});
