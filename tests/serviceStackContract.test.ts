/**
 * Settings → stack config → program → pack (issue 9). Every stack config the automation service
 * can build — both targets, its default and full settings, and fast-check over its settings and
 * requests — goes to the real account program under Pulumi's mocks (reading the platform
 * stack's real outputs, the operator program's own evaluation), then to the policy pack:
 * zero configuration errors and zero violations. Settings no stack could be built from stop the
 * service at start-up instead.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import fc from "fast-check";
import { ALLOWED_SIZES, dtmaScopeFor, type ToolboxProfile } from "@agentopia-toolboxes/contract";
import { loadSettings, SettingsError } from "../automation/src/config";
import type { ToolboxRow } from "../automation/src/db/rows";
import { pulumiConfigMap } from "../automation/src/engine/automationOptions";
import { stackRequestFor } from "../automation/src/stackRequest";
import { evaluateStack } from "../plan/evaluate";
import { testKeyPair } from "../plan/testKeys";
import { policies } from "../policies/all";
import { evaluateConfigForPack } from "../policies/programResources";
import { runPack } from "../policies/runPack";

const PIN = `@sha256:${"ab".repeat(32)}`;
const platforms: Record<string, { name: string; outputs: Record<string, unknown> }> = {};

async function platform(env: "dev" | "prod") {
  platforms[env] ??= {
    name: `org/agentopia-toolboxes/${env}`,
    outputs: (await evaluateStack(env)).outputs,
  };
  return platforms[env];
}

/** A toolbox row as the service holds it when it builds the stack request. */
function row(accountId: string, region?: string, size?: string, generation = 0): ToolboxRow {
  return {
    account_id: accountId,
    stack_name: `acct-${accountId}`,
    region_slug: region ?? null,
    size_slug: size ?? null,
    token_generation: generation,
    target: null,
  } as ToolboxRow;
}

/** The whole chain for one row: the service's stack config, the program, then the pack. */
async function throughTheChain(env: Record<string, string>, toolbox: ToolboxRow) {
  const settings = loadSettings(env);
  const req = stackRequestFor(settings, toolbox);
  const config = Object.fromEntries(
    Object.entries(pulumiConfigMap(req.config, "/tmp/agentopia-ssh")).map(([k, v]) => [
      k.split(":")[1],
      v.value,
    ]),
  );
  const stack = req.config.platformStack?.split("/").pop() as "dev" | "prod" | undefined;
  const ev = await evaluateConfigForPack(req.stackName, config, {
    program: () =>
      import("../program/account").then((m) =>
        m.accountProgram(
          settings.target === "digitalocean" ? { sshPrivateKey: testKeyPair().privateKey } : {},
        ),
      ),
    stackReferenceOutputs: stack ? (await platform(stack)).outputs : undefined,
  });
  const run = await runPack(policies, ev.packResources);
  assert.deepEqual(run.violations, [], JSON.stringify({ env, config }, null, 1));
  return { settings, config, ev };
}

/** The service's settings for a platform, as an operator following the README sets them. */
async function digitalocean(env: "dev" | "prod", extra: Record<string, string> = {}) {
  const profile = (await platform(env)).outputs.toolboxProfile as ToolboxProfile;
  return {
    TOOLBOX_TARGET: "digitalocean",
    PLATFORM_STACK: (await platform(env)).name,
    SSH_PRIVATE_KEY: testKeyPair().privateKey,
    PUBLIC_BASE_URL: "https://automation.example",
    CONTROL_PLANE_CIDRS: '["198.51.100.16/28"]',
    DTMA_IMAGE: `ghcr.io/agentopia/toolboxes-dtma${env === "prod" ? PIN : ":main"}`,
    BACKEND_IMAGE: `ghcr.io/agentopia/toolboxes-backend${env === "prod" ? PIN : ":main"}`,
    ALLOWED_REGIONS: JSON.stringify(profile.regions),
    ALLOWED_SIZES: JSON.stringify(profile.sizes),
    DEFAULT_REGION: profile.regions[0],
    DEFAULT_SIZE: profile.sizes[0],
    REQUIRE_DIGEST_PINS: profile.requireDigestPins ? "1" : "0",
    ...extra,
  };
}

describe("the service's stack configs through the account program and the pack", function () {
  this.timeout(300_000);

  it("the local target with no settings at all (README: bash scripts/run.sh start)", async () => {
    const accountId = randomUUID();
    const { config, ev } = await throughTheChain({}, row(accountId));
    assert.equal(config.controlPlaneCidrs, undefined, "no empty CIDR list");
    const dtma = ev.resources.find((r) => r.name.endsWith("-containers-dtma"))!;
    const envs = dtma.inputs.envs as string[];
    assert.ok(envs.includes("AGENTOPIA_API_BASE_URL=http://host.docker.internal:8080/v1"));
    assert.ok(envs.includes(`DTMA_SCOPE=${dtmaScopeFor(accountId)}`));
  });

  it("the local target with every setting", async () => {
    await throughTheChain(
      {
        PORT: "9090",
        PUBLIC_BASE_URL: "http://host.docker.internal:9090",
        CONTROL_PLANE_CIDRS: '["10.0.0.0/8"]',
        DTMA_IMAGE: "agentopia/dtma:dev",
        BACKEND_IMAGE: "agentopia/backend:dev",
        DEFAULT_REGION: "fra1",
        DEFAULT_SIZE: "s-1vcpu-1gb",
      },
      row(randomUUID(), "nyc3", "s-1vcpu-2gb", 3),
    );
  });

  for (const env of ["dev", "prod"] as const) {
    it(`digitalocean on ${env}: the platform's profile reaches the toolbox`, async () => {
      const { ev } = await throughTheChain(await digitalocean(env), row(randomUUID()));
      const profile = (await platform(env)).outputs.toolboxProfile as ToolboxProfile;
      const droplet = ev.resources.find((r) => r.type === "digitalocean:index/droplet:Droplet")!;
      assert.equal(droplet.inputs.backups, profile.backups);
      const dtma = ev.resources.find((r) => r.name.endsWith("-containers-dtma"))!;
      assert.equal(dtma.inputs.memory, profile.dtmaMemoryMb);
      const backend = ev.resources.find((r) => r.name.endsWith("-containers-backend"))!;
      assert.equal(backend.inputs.memory, profile.backendMemoryMb);
      const dns = ev.resources.filter((r) => r.type === "digitalocean:index/dnsRecord:DnsRecord");
      assert.equal(dns.length, profile.dnsZone ? 1 : 0, "the environment's DNS zone");
    });
  }

  it("property: any valid settings and request give a stack with no error and no violation", async () => {
    const cidr = fc.tuple(fc.ipV4(), fc.integer({ min: 8, max: 32 })).map(([a, p]) => `${a}/${p}`);
    const local = fc.record({
      kind: fc.constant("local" as const),
      cidrs: fc.array(cidr, { maxLength: 2 }),
      generation: fc.nat(6),
    });
    const remote = fc.record({
      kind: fc.constantFrom("dev" as const, "prod" as const),
      cidrs: fc.array(cidr, { minLength: 1, maxLength: 3 }),
      generation: fc.nat(6),
    });
    await fc.assert(
      fc.asyncProperty(fc.oneof(local, remote), fc.nat(), fc.nat(), async (s, r, z) => {
        const settings =
          s.kind === "local"
            ? { CONTROL_PLANE_CIDRS: JSON.stringify(s.cidrs) }
            : await digitalocean(s.kind, { CONTROL_PLANE_CIDRS: JSON.stringify(s.cidrs) });
        const profile =
          s.kind === "local"
            ? { regions: ["nyc3"], sizes: [...ALLOWED_SIZES] }
            : ((await platform(s.kind)).outputs.toolboxProfile as ToolboxProfile);
        // A request names an offered region and size, or neither.
        const region = r % 3 === 0 ? undefined : profile.regions[r % profile.regions.length];
        const size = z % 3 === 0 ? undefined : profile.sizes[z % profile.sizes.length];
        await throughTheChain(settings, row(randomUUID(), region, size, s.generation));
      }),
      { numRuns: 25 },
    );
  });

  it("a setting no stack could be built from stops the service at start-up, naming it", async () => {
    const cases: [Record<string, string>, string][] = [
      [await digitalocean("prod", { DTMA_IMAGE: "ghcr.io/agentopia/dtma:main" }), "DTMA_IMAGE"],
      [await digitalocean("dev", { CONTROL_PLANE_CIDRS: "[]" }), "CONTROL_PLANE_CIDRS"],
      [await digitalocean("dev", { DEFAULT_REGION: "fra1" }), "DEFAULT_REGION"],
      [await digitalocean("dev", { BACKEND_IMAGE: "" }), "BACKEND_IMAGE"],
    ];
    for (const [env, name] of cases) {
      assert.throws(
        () => loadSettings(env),
        (err: unknown) =>
          err instanceof SettingsError && err.lines.length === 1 && err.lines[0].startsWith(name),
        name,
      );
    }
  });

  it("the program and the pack refuse what slipped past: a region the platform lacks, unpinned prod images", async () => {
    // An operator who lists a region the platform has no VPC in: the program names it.
    await assert.rejects(
      throughTheChain(
        await digitalocean("dev", { ALLOWED_REGIONS: '["nyc3","fra1"]' }),
        row(randomUUID(), "fra1"),
      ),
      /agentopia-toolboxes:region: org\/agentopia-toolboxes\/dev offers nyc3/,
    );
    // Without REQUIRE_DIGEST_PINS the service lets tags through; prod's profile stops them.
    await assert.rejects(
      throughTheChain(
        await digitalocean("prod", {
          REQUIRE_DIGEST_PINS: "0",
          DTMA_IMAGE: "ghcr.io/agentopia/toolboxes-dtma:main",
        }),
        row(randomUUID()),
      ),
      /agentopia-toolboxes:dtmaImage: must be pinned by digest/,
    );
  });

  it("the pack pins images on account stacks whose platform requires pins, whatever the profile says", async () => {
    const prod = await platform("prod");
    const lax = {
      ...prod.outputs,
      toolboxProfile: { ...(prod.outputs.toolboxProfile as object), requireDigestPins: false },
    };
    const accountId = randomUUID();
    const ev = await evaluateConfigForPack(
      `acct-${accountId}`,
      {
        accountId,
        target: "digitalocean",
        platformStack: prod.name,
        agentopiaApiBaseUrl: "https://automation.example/v1",
        controlPlaneCidrs: '["198.51.100.16/28"]',
        dtmaImage: "ghcr.io/agentopia/toolboxes-dtma:main",
        backendImage: `ghcr.io/agentopia/toolboxes-backend${PIN}`,
      },
      {
        program: () =>
          import("../program/account").then((m) =>
            m.accountProgram({ sshPrivateKey: testKeyPair().privateKey }),
          ),
        stackReferenceOutputs: lax,
      },
    );
    const run = await runPack(policies, ev.packResources);
    const found = run.violations.filter((v) => v.policy === "account-stack-image-digest");
    assert.ok(
      found.length > 0 && found.every((v) => /toolboxes-dtma:main/.test(v.message)),
      JSON.stringify(run.violations),
    );
    assert.deepEqual(
      run.violations.filter((v) => v.policy !== "account-stack-image-digest"),
      [],
    );
  });
});
