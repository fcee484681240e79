/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-assignment -- JSON answers are checked by assertions */
/**
 * Issue 9, leftover 1: the operator stacks' canaries heartbeat to the service, which registers
 * them from the stacks' outputs (read through the engine) with their DTMA token hashes: their
 * heartbeats are accepted and they go active (real Postgres, the real heartbeat route).
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { TestEngine } from "../src/engine/testEngine";
import { canaryAccountId } from "../src/fleet/canaries";
import { startFleetService } from "./fixtures/fleetService";
import { auth } from "./helpers";

const token = () => randomBytes(32).toString("base64url");
const canary = (dtmaToken = token()) => ({
  dropletId: "424242",
  dropletName: "tbx-canary-dev",
  ipv4: "203.0.113.7",
  ipv6: undefined,
  backendUrl: "https://203.0.113.7:3000",
  dtmaToken,
  backendApiToken: token(),
  agentGatewayToken: token(),
});

describe("operator canaries: registered from the operator stack's outputs, their heartbeats accepted", function () {
  this.timeout(60_000);

  it("a canary the platform stack declares heartbeats, goes active, survives a rotation, and is retired when no longer declared", async () => {
    const engine = new TestEngine();
    const first = canary();
    engine.seedStack("org/agentopia-toolboxes/dev", {
      toolboxProfile: { regions: ["nyc3"], sizes: ["s-1vcpu-1gb"], requireDigestPins: false },
      toolboxes: { "canary-dev": first },
    });
    const svc = await startFleetService({
      engine,
      fleet: { canaryStacks: ["org/agentopia-toolboxes/dev", "org/agentopia-toolboxes/gone"] },
    });
    const beat = (t: string) =>
      svc.app.inject({
        method: "POST",
        url: "/v1/heartbeat",
        headers: { authorization: `Bearer ${t}` },
        payload: {
          dtma_version: "0.1.0",
          dtma_image: "ghcr.io/agentopia/toolboxes-dtma:main",
          system_status: {},
        },
      });
    try {
      const sync = await svc.fleet.syncCanaries();
      const id = canaryAccountId("org/agentopia-toolboxes/dev", "canary-dev");
      assert.deepEqual(sync.registered, [id]);
      assert.deepEqual(sync.unreadable, [
        { stack: "org/agentopia-toolboxes/gone", reason: "no such stack" },
      ]);
      const before = (await svc.app.inject({ url: `/v1/toolboxes/${id}`, headers: auth })).json()
        .toolbox;
      assert.equal(before.status, "awaiting_heartbeat");
      assert.equal(before.droplet_id, "424242");
      assert.equal((await beat(first.dtmaToken)).statusCode, 204, "its heartbeat is accepted");
      const active = (await svc.app.inject({ url: `/v1/toolboxes/${id}`, headers: auth })).json()
        .toolbox;
      assert.equal(active.status, "active");
      assert.equal(active.health, "healthy");
      const tokens = (
        await svc.app.inject({ url: `/v1/toolboxes/${id}/tokens`, headers: auth })
      ).json();
      assert.equal(
        tokens.backend_api_token,
        first.backendApiToken,
        "kept encrypted, handed out like any toolbox's",
      );
      // Registering again changes nothing; a rotation keeps the previous token for one generation.
      await svc.fleet.syncCanaries();
      const rotated = canary();
      engine.seedStack("org/agentopia-toolboxes/dev", { toolboxes: { "canary-dev": rotated } });
      await svc.fleet.syncCanaries();
      assert.equal((await beat(rotated.dtmaToken)).statusCode, 204);
      assert.equal(
        (await beat(first.dtmaToken)).statusCode,
        204,
        "the previous token, during the rotation",
      );
      // Not declared any more: retired, its token refused.
      engine.seedStack("org/agentopia-toolboxes/dev", { toolboxes: {} });
      const retired = await svc.fleet.syncCanaries();
      assert.deepEqual(retired.retired, [id]);
      assert.equal((await beat(rotated.dtmaToken)).statusCode, 401);
      const gone = (await svc.app.inject({ url: `/v1/toolboxes/${id}`, headers: auth })).json()
        .toolbox;
      assert.equal(gone.status, "deprovisioned");
      // Upgrades leave the operators' canaries to the operators.
      const up = await svc.app.inject({
        method: "POST",
        url: "/v1/upgrades",
        headers: auth,
        payload: { dtma_image: "a/dtma:2", backend_image: "a/backend:2" },
      });
      assert.equal(up.statusCode, 202);
      assert.equal(up.json().upgrade.counts.total, 0);
    } finally {
      await svc.stop();
    }
  });
});
