/**
 * An upgrade changes a toolbox's images only (issue 11): the automation service's stack config
 * for a record whose upgrade set new images, evaluated with the real account program under
 * Pulumi's mocks, against the same toolbox on its old images. Every resource but the resident
 * containers and their images keeps its inputs: the droplet (and its user-data, firewall, host
 * key, tokens) is never replaced for an image change.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { loadSettings } from "../automation/src/config";
import type { ToolboxRow } from "../automation/src/db/rows";
import { pulumiConfigMap } from "../automation/src/engine/automationOptions";
import { stackRequestFor } from "../automation/src/stackRequest";
import { evaluateStack, type EvaluatedResource } from "../plan/evaluate";
import { testKeyPair } from "../plan/testKeys";
import { evaluateConfigForPack } from "../policies/programResources";

const CONTAINER = "docker:index/container:Container";
const IMAGE = "docker:index/remoteImage:RemoteImage";

describe("an upgrade changes the containers only (account program under mocks)", function () {
  this.timeout(300_000);

  it("new DTMA and backend images: the droplet's inputs stay, the resident containers change", async () => {
    const platform = (await evaluateStack("dev")).outputs;
    const settings = loadSettings({
      TOOLBOX_TARGET: "digitalocean",
      PLATFORM_STACK: "org/agentopia-toolboxes/dev",
      SSH_PRIVATE_KEY: testKeyPair().privateKey,
      PUBLIC_BASE_URL: "https://automation.example",
      CONTROL_PLANE_CIDRS: '["198.51.100.16/28"]',
      DTMA_IMAGE: "ghcr.io/agentopia/toolboxes-dtma:main",
      BACKEND_IMAGE: "ghcr.io/agentopia/toolboxes-backend:main",
    });
    const accountId = randomUUID();
    const row = (images: { dtma: string | null; backend: string | null }) =>
      ({
        account_id: accountId,
        stack_name: `acct-${accountId}`,
        region_slug: null,
        size_slug: null,
        token_generation: 0,
        target: "digitalocean",
        dtma_image: images.dtma,
        backend_image: images.backend,
      }) as ToolboxRow;
    const evaluate = async (r: ToolboxRow) => {
      const req = stackRequestFor(settings, r);
      const config = Object.fromEntries(
        Object.entries(pulumiConfigMap(req.config, "/tmp/agentopia-ssh")).map(([k, v]) => [
          k.split(":")[1],
          v.value,
        ]),
      );
      const ev = await evaluateConfigForPack(req.stackName, config, {
        program: () =>
          import("../program/account").then((m) =>
            m.accountProgram({ sshPrivateKey: testKeyPair().privateKey }),
          ),
        stackReferenceOutputs: platform,
      });
      return new Map(ev.resources.map((res) => [res.urn, res]));
    };
    const before = await evaluate(row({ dtma: null, backend: null }));
    const after = await evaluate(
      row({
        dtma: "ghcr.io/agentopia/toolboxes-dtma:v2",
        backend: "ghcr.io/agentopia/toolboxes-backend:v2",
      }),
    );
    assert.deepEqual([...after.keys()].sort(), [...before.keys()].sort(), "the same resources");
    const changed = [...after.values()].filter(
      (r) => JSON.stringify(r.inputs) !== JSON.stringify(before.get(r.urn)!.inputs),
    );
    const kinds = (rs: EvaluatedResource[]) => [...new Set(rs.map((r) => r.type))].sort();
    assert.deepEqual(kinds(changed), [CONTAINER, IMAGE], "only the containers and their images");
    assert.deepEqual(
      changed
        .filter((r) => r.type === CONTAINER)
        .map((r) => r.name.split("-").pop())
        .sort(),
      ["backend", "dtma"],
    );
    const droplet = [...after.values()].find(
      (r) => r.type === "digitalocean:index/droplet:Droplet",
    )!;
    assert.deepEqual(
      droplet.inputs,
      before.get(droplet.urn)!.inputs,
      "the droplet is not replaced",
    );
    // The containers say which image they run: the DTMA's heartbeat and the backend's /status.
    const env = (role: string) =>
      [...after.values()].find((r) => r.type === CONTAINER && r.name.endsWith(`-${role}`))!.inputs
        .envs as string[];
    assert.ok(env("dtma").includes("DTMA_IMAGE=ghcr.io/agentopia/toolboxes-dtma:v2"));
    assert.ok(env("backend").includes("BACKEND_IMAGE=ghcr.io/agentopia/toolboxes-backend:v2"));
  });
});
