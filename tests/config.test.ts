/**
 * Configuration: each invalid key fails with its own message naming the key and what is allowed.
 */
import assert from "node:assert/strict";
import { parseAccountConfig } from "../program/accountConfig";
import { ConfigError, type ConfigSource } from "../program/configSource";
import { parseOperatorConfig } from "../program/operatorConfig";
import { committedStackConfig, evaluateProgram, evaluateStack } from "../plan/evaluate";
import { testKeyPair } from "../plan/testKeys";

const NS = "agentopia-toolboxes";

function source(values: Record<string, unknown>): ConfigSource {
  const text = (v: unknown) => (typeof v === "string" ? v : JSON.stringify(v));
  return {
    get: (key) => (key in values ? text(values[key]) : undefined),
    getSecret: () => undefined,
  };
}

const validLocal = {
  target: "local",
  agentopiaApiBaseUrl: "http://127.0.0.1:8080/v1",
  images: { dtma: "agentopia/dtma:local", backend: "agentopia/backend:local" },
};

function rejects(values: Record<string, unknown>, key: string, pattern: RegExp): void {
  assert.throws(
    () => parseOperatorConfig(source(values)),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
      const line = err.message.split("\n").find((l) => l.startsWith(`${NS}:${key}:`));
      assert.ok(line, `no line names ${key}: ${err.message}`);
      assert.match(line, pattern);
      return true;
    },
  );
}

describe("stack configuration", function () {
  it("accepts the committed local config and applies the defaults", function () {
    const cfg = parseOperatorConfig(source(validLocal));
    assert.equal(cfg.defaultSize, "s-1vcpu-512mb-10gb");
    assert.deepEqual(cfg.regions, ["nyc3"]);
    assert.deepEqual(cfg.toolCaps, { memoryMb: 256, cpus: 1, pids: 256 });
    assert.deepEqual(cfg.toolboxes, []);
  });

  it("keeps string keys as strings (an account id of digits stays itself)", function () {
    const cfg = parseAccountConfig(
      source({
        accountId: "0123",
        target: "local",
        agentopiaApiBaseUrl: "http://127.0.0.1:8080/v1",
        dtmaImage: "a/dtma:1",
        backendImage: "a/backend:1",
      }),
    );
    assert.equal(cfg.accountId, "0123");
  });

  const cases: [string, Record<string, unknown>, string, RegExp][] = [
    ["an unknown target", { target: "aws" }, "target", /digitalocean or local/],
    ["an unknown region", { regions: ["mars1"] }, "regions[0]", /must be one of nyc1, nyc3/],
    [
      "an unknown size",
      { defaultSize: "s-64vcpu" },
      "defaultSize",
      /must be one of s-1vcpu-512mb-10gb/,
    ],
    [
      "a malformed CIDR",
      { target: "digitalocean", controlPlaneCidrs: ["10.0.0/8"] },
      "controlPlaneCidrs[0]",
      /must be a CIDR/,
    ],
    [
      "a world-open control plane",
      { target: "digitalocean", controlPlaneCidrs: ["0.0.0.0/0"] },
      "controlPlaneCidrs[0]",
      /never open to the world/,
    ],
    [
      "a missing base URL",
      { agentopiaApiBaseUrl: undefined },
      "agentopiaApiBaseUrl",
      /is required/,
    ],
    [
      "a base URL that is not http(s)",
      { agentopiaApiBaseUrl: "ftp://x" },
      "agentopiaApiBaseUrl",
      /http\(s\) URL/,
    ],
    [
      "an account id that cannot name a stack or droplet",
      { toolboxes: [{ accountId: "Bad Name!" }] },
      "toolboxes[0].accountId",
      /lowercase letters, digits or inner hyphens/,
    ],
    [
      "a duplicated account",
      { toolboxes: [{ accountId: "a" }, { accountId: "a" }], target: "local" },
      "toolboxes[1].accountId",
      /duplicates a/,
    ],
    [
      "a toolbox outside the platform's regions",
      { regions: ["nyc3"], toolboxes: [{ accountId: "a", region: "fra1" }] },
      "toolboxes[0].region",
      /platform's regions/,
    ],
    [
      "an image that is no reference",
      { images: { dtma: "Not An Image", backend: "a/b:1" } },
      "images.dtma",
      /image reference/,
    ],
    [
      "an unpinned image where pins are required",
      { requireDigestPins: true },
      "images.dtma",
      /pinned by digest/,
    ],
    ["a tiny DTMA memory limit", { dtmaMemoryMb: 8 }, "dtmaMemoryMb", /96/],
    ["swap beyond the cap", { swapMb: 100000 }, "swapMb", /8192/],
    ["a list that is not JSON", { regions: "[nyc3" }, "regions", /not a valid list/],
    [
      "digitalocean without the control plane",
      { target: "digitalocean" },
      "controlPlaneCidrs",
      /required for target digitalocean/,
    ],
    [
      "two local toolboxes",
      { toolboxes: [{ accountId: "a" }, { accountId: "b" }] },
      "toolboxes",
      /one toolbox/,
    ],
  ];
  for (const [what, change, key, pattern] of cases) {
    it(`rejects ${what}, naming ${key}`, function () {
      rejects({ ...validLocal, ...change }, key, pattern);
    });
  }

  it("requires the SSH private key as a secret when droplets are declared", function () {
    const cfg = committedStackConfig("dev");
    assert.throws(
      () =>
        parseOperatorConfig({
          get: (key) => cfg[`${NS}:${key}`],
          getSecret: () => undefined,
        }),
      /agentopia-toolboxes:sshPrivateKey: is required \(as a secret\)/,
    );
  });

  it("stops the program with the message when evaluated", async function () {
    await assert.rejects(
      evaluateProgram("dev", committedStackConfig("dev"), {
        config: {
          regions: JSON.stringify(["nyc3", "atlantis"]),
          sshPrivateKey: testKeyPair().privateKey,
        },
        secretKeys: ["sshPrivateKey"],
      }),
      /agentopia-toolboxes:regions\[1\]: must be one of/,
    );
  });

  it("account stacks need the platform stack and control plane on digitalocean", function () {
    assert.throws(
      () =>
        parseAccountConfig(
          source({
            accountId: "a1",
            target: "digitalocean",
            agentopiaApiBaseUrl: "https://x.example/v1",
            dtmaImage: "a/dtma:1",
            backendImage: "a/backend:1",
          }),
        ),
      (err: unknown) =>
        err instanceof ConfigError &&
        /agentopia-toolboxes:platformStack: is required/.test(err.message) &&
        /agentopia-toolboxes:controlPlaneCidrs: is required/.test(err.message),
    );
  });

  it("account stacks default to the local images on the local target and require them on digitalocean", function () {
    const local = parseAccountConfig(
      source({ accountId: "a1", target: "local", agentopiaApiBaseUrl: "http://127.0.0.1:8080/v1" }),
    );
    assert.equal(local.dtmaImage, "agentopia/dtma:local");
    assert.equal(local.backendImage, "agentopia/backend:local");
    assert.throws(
      () =>
        parseAccountConfig(
          source({
            accountId: "a1",
            target: "digitalocean",
            agentopiaApiBaseUrl: "https://x.example/v1",
            platformStack: "org/agentopia-toolboxes/prod",
            controlPlaneCidrs: ["198.51.100.0/24"],
          }),
        ),
      /agentopia-toolboxes:dtmaImage: is required for target digitalocean/,
    );
  });

  it("evaluates every committed stack without a config error", async function () {
    for (const stack of ["local", "dev", "prod"]) {
      const ev = await evaluateStack(stack);
      assert.ok(ev.resources.length > 0, stack);
    }
  });
});
