import assert from "node:assert/strict";
import { mkdtemp, mkdir, rm, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { AutomationEngine, classifyError, outputsFrom } from "../src/engine/automationEngine";
import {
  findOnPath,
  policyPacksFor,
  pulumiConfigMap,
  updateOptions,
  workspaceOptions,
} from "../src/engine/automationOptions";
import { EngineError, type EngineEvent, type StackRequest } from "../src/engine/types";

const settings = {
  repoRoot: "/repo",
  workRoot: "/data/stacks",
  stateBackendUrl: "file:///data/pulumi-state",
  passphrase: "pass-phrase",
};
const request: StackRequest = {
  stackName: "acct-7d1f6a2e-6a39-4a38-9c1e-2b8f0f0e1a11",
  config: {
    accountId: "7d1f6a2e-6a39-4a38-9c1e-2b8f0f0e1a11",
    target: "digitalocean",
    region: "nyc3",
    platformStack: "agentopia/agentopia-toolboxes/prod",
    agentopiaApiBaseUrl: "https://automation.example/v1",
    controlPlaneCidrs: ["203.0.113.0/24"],
    dtmaImage: "ghcr.io/agentopia/dtma:1",
    tokenGeneration: 2,
  },
};

describe("Automation API engine: what it passes to Pulumi", () => {
  it("one work directory per stack, the project, backend and secrets from settings", () => {
    const opts = workspaceOptions(settings, request.stackName);
    assert.equal(opts.workDir, path.join("/data/stacks", request.stackName));
    assert.equal(opts.projectSettings?.name, "agentopia-toolboxes");
    assert.equal(opts.projectSettings?.runtime, "nodejs");
    assert.deepEqual(opts.projectSettings?.backend, { url: "file:///data/pulumi-state" });
    assert.deepEqual(opts.envVars, {
      PULUMI_BACKEND_URL: "file:///data/pulumi-state",
      PULUMI_CONFIG_PASSPHRASE: "pass-phrase",
      PULUMI_SKIP_UPDATE_CHECK: "true",
      PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK: "true",
    });
    assert.equal(opts.secretsProvider, undefined);
    const kms = workspaceOptions(
      { ...settings, passphrase: undefined, secretsProvider: "awskms://alias/x" },
      "s",
    );
    assert.equal(kms.secretsProvider, "awskms://alias/x");
    assert.equal(kms.envVars?.PULUMI_CONFIG_PASSPHRASE, undefined);
  });

  it("stack config in the agentopia-toolboxes namespace, holding no secret (it goes on a command line)", () => {
    const map = pulumiConfigMap(request.config, "/srv/stacks/acct-x/ssh");
    assert.deepEqual(map, {
      "agentopia-toolboxes:accountId": { value: request.config.accountId },
      "agentopia-toolboxes:target": { value: "digitalocean" },
      "agentopia-toolboxes:agentopiaApiBaseUrl": { value: "https://automation.example/v1" },
      "agentopia-toolboxes:controlPlaneCidrs": { value: '["203.0.113.0/24"]' },
      "agentopia-toolboxes:tokenGeneration": { value: "2" },
      "agentopia-toolboxes:region": { value: "nyc3" },
      "agentopia-toolboxes:platformStack": { value: "agentopia/agentopia-toolboxes/prod" },
      "agentopia-toolboxes:dtmaImage": { value: "ghcr.io/agentopia/dtma:1" },
      "agentopia-toolboxes:sshStateDir": { value: "/srv/stacks/acct-x/ssh" },
    });
    const local = pulumiConfigMap({ ...request.config, target: "local" }, "/srv/ssh");
    assert.equal(local["agentopia-toolboxes:sshStateDir"], undefined, "no SSH files locally");
  });

  it("passes the policy pack on up/preview once policies/PulumiPolicy.yaml exists", async () => {
    const root = await mkdtemp(path.join(os.tmpdir(), "repo-"));
    try {
      assert.deepEqual(policyPacksFor(root), []);
      assert.deepEqual(new AutomationEngine({ ...settings, repoRoot: root }).policyPacks, []);
      assert.equal("policyPacks" in updateOptions([], () => undefined), false);
      await mkdir(path.join(root, "policies"));
      await writeFile(path.join(root, "policies", "PulumiPolicy.yaml"), "runtime: nodejs\n");
      const engine = new AutomationEngine({ ...settings, repoRoot: root });
      assert.deepEqual(engine.policyPacks, [path.join(root, "policies")]);
      const onEvent = () => undefined;
      assert.deepEqual(updateOptions(engine.policyPacks, onEvent), {
        onEvent,
        color: "never",
        policyPacks: [path.join(root, "policies")],
      });
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it("maps stack outputs, requiring the tokens", () => {
    const out = outputsFrom({
      accountId: { value: "a", secret: false },
      target: { value: "local", secret: false },
      dropletId: { value: 123, secret: false },
      dtmaToken: { value: "t1", secret: true },
      dtmaTokenPrevious: { value: "", secret: true },
      backendApiToken: { value: "t2", secret: true },
      agentGatewayToken: { value: "t3", secret: true },
    });
    assert.equal(out.dropletId, "123");
    assert.equal(out.ipv6, undefined);
    assert.throws(
      () =>
        outputsFrom({
          accountId: { value: "a", secret: false },
          target: { value: "local", secret: false },
        }),
      /dtmaToken/,
    );
  });

  it("classifies failures: locks, transient cloud errors, everything else permanent", () => {
    assert.equal(
      classifyError(new Error("error: the stack is currently locked by 1 lock(s)")).kind,
      "locked",
    );
    assert.equal(
      classifyError(new Error("POST https://api.digitalocean.com: 503 Service Unavailable")).kind,
      "transient",
    );
    assert.equal(classifyError(new Error("read ECONNRESET")).kind, "transient");
    assert.equal(
      classifyError(new Error("policy violation: droplet-has-firewall")).kind,
      "permanent",
    );
    assert.equal(classifyError(new EngineError("x", "locked")).kind, "locked");
  });

  it("without a pulumi CLI, an operation fails fast and permanently with the reason as an event", async function () {
    if (findOnPath("pulumi")) {
      console.log(
        "      (a pulumi CLI is on PATH: the unavailable-CLI path is not reachable here)",
      );
      this.skip();
    }
    const engine = new AutomationEngine(settings);
    const events: EngineEvent[] = [];
    await assert.rejects(
      engine.up(request, (e) => events.push(e)),
      (err: EngineError) => {
        assert.equal(err.kind, "permanent");
        assert.match(err.message, /Pulumi CLI was not found on PATH/);
        return true;
      },
    );
    assert.equal(events[0]?.type, "engineUnavailable");
  });

  describe("against a real Pulumi CLI", function () {
    const cli = findOnPath("pulumi");
    if (!cli) {
      it(
        "PENDING: up, outputs, destroy and work-directory clean-up — no `pulumi` CLI on PATH (cannot be downloaded here; see TOOLCHAIN.md)",
      );
      return;
    }
    it("ups an inline program on a file backend, reads its outputs, destroys and removes the stack", async function () {
      this.timeout(300_000);
      const dir = await mkdtemp(path.join(os.tmpdir(), "engine-"));
      try {
        const engine = new AutomationEngine({
          repoRoot: dir,
          workRoot: path.join(dir, "stacks"),
          stateBackendUrl: `file://${dir}/state`,
          passphrase: "test",
          loadProgram: () =>
            Promise.resolve(() =>
              Promise.resolve({
                accountId: "a",
                target: "local",
                dtmaToken: "t1",
                backendApiToken: "t2",
                agentGatewayToken: "t3",
              }),
            ),
        });
        const events: EngineEvent[] = [];
        const out = await engine.up(
          { ...request, config: { ...request.config, target: "local" } },
          (e) => events.push(e),
        );
        assert.equal(out.dtmaToken, "t1");
        assert.ok(events.some((e) => e.type === "summaryEvent"));
        await engine.destroy(request, () => undefined);
        await assert.rejects(stat(path.join(dir, "stacks", request.stackName)));
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
  });
});
