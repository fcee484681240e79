/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-argument -- JSON answers are checked by assertions */
/**
 * Bad input to every fleet route (issue 11) is a 4xx naming the field, never a 5xx (fast-check,
 * through the real app on a real Postgres); the routes are the service token's only.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import fc from "fast-check";
import { TestEngine } from "../src/engine/testEngine";
import type { RunningService } from "../src/service";
import { startFleetService } from "./fixtures/fleetService";
import { auth } from "./helpers";

type Service = RunningService & { databaseUrl: string };
const json = fc.jsonValue({ maxDepth: 3 });
const segment = fc.oneof(fc.string({ maxLength: 40 }), fc.uuid(), fc.constant("not-a-uuid"));
const queryValue = fc.oneof(fc.string({ maxLength: 20 }), fc.integer().map(String));

const VALID = {
  dtma_image: "ghcr.io/agentopia/toolboxes-dtma@sha256:" + "ab".repeat(32),
  backend_image: "ghcr.io/agentopia/toolboxes-backend@sha256:" + "cd".repeat(32),
  canary_count: 1,
  waves: [10, 100],
  max_failure_ratio: 0.2,
  health_deadline_seconds: 300,
  rollback: "wave",
  on_busy: "skip",
  busy_wait_seconds: 60,
  concurrency: 10,
} as const;
type Field = keyof typeof VALID;

function assertRefusal(res: { statusCode: number; body: string }, field?: string) {
  assert.ok(res.statusCode < 500, `${res.statusCode} ${res.body}`);
  if (res.statusCode === 400) {
    const body = JSON.parse(res.body) as { error?: unknown; message?: unknown; field?: unknown };
    assert.equal(typeof body.error, "string");
    assert.equal(typeof body.message, "string");
    assert.equal(typeof body.field, "string", res.body);
    if (field !== undefined)
      assert.ok(String(body.field).startsWith(field), `${field}: ${res.body}`);
  }
}

describe("fleet routes: bad input is a 4xx naming the field, never a 5xx (fast-check)", function () {
  this.timeout(180_000);
  let svc: Service;
  before(async () => {
    svc = await startFleetService({
      engine: new TestEngine(),
      workerConcurrency: 0,
      fleet: { requireDigestPins: true },
    });
  });
  after(() => svc.stop());

  it("POST /v1/upgrades: any one field wrong is a 400 naming it", async () => {
    const fields = Object.keys(VALID) as Field[];
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...fields), json, async (field, value) => {
        const payload = { ...VALID, [field]: value };
        const res = await svc.app.inject({
          method: "POST",
          url: "/v1/upgrades",
          headers: auth,
          payload,
        });
        if (res.statusCode === 202 || res.statusCode === 409) return; // the value happened to be valid
        assert.equal(res.statusCode, 400, res.body);
        assertRefusal(res, field);
      }),
      { numRuns: 150 },
    );
    // Unknown fields, unpinned images where pins are required, both canary forms, bad waves.
    for (const [payload, field] of [
      [{ ...VALID, surprise: 1 }, "surprise"],
      [{ ...VALID, dtma_image: "ghcr.io/a/dtma:main" }, "dtma_image"],
      [{ ...VALID, canary_accounts: [randomUUID()] }, "canary_count"],
      [{ ...VALID, waves: [50, 20, 100] }, "waves"],
      [{ ...VALID, waves: [10, 50] }, "waves"],
      [{ ...VALID, canary_count: undefined, canary_accounts: [randomUUID()] }, "canary_accounts.0"],
    ] as const) {
      const res = await svc.app.inject({
        method: "POST",
        url: "/v1/upgrades",
        headers: auth,
        payload,
      });
      assert.equal(res.statusCode, 400, res.body);
      assert.equal(res.json().field, field, res.body);
    }
  });

  it("POST /v1/reconciliations: any body is a 4xx naming the field, or accepted", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          json,
          fc.record(
            { dry_run: json, act_on: json, heartbeat_threshold_seconds: json },
            { requiredKeys: [] },
          ),
        ),
        async (payload) => {
          const res = await svc.app.inject({
            method: "POST",
            url: "/v1/reconciliations",
            headers: auth,
            payload: payload as object,
          });
          if (res.statusCode === 202 || res.statusCode === 409) return;
          assertRefusal(res);
          assert.ok(res.statusCode >= 400);
        },
      ),
      { numRuns: 150 },
    );
    const res = await svc.app.inject({
      method: "POST",
      url: "/v1/reconciliations",
      headers: auth,
      payload: { act_on: ["stale_heartbeat"] },
    });
    assert.equal(res.statusCode, 400);
    assert.equal(res.json().field, "dry_run");
  });

  it("every path and query: any segment or parameter is a 4xx naming the field, or an answer", async () => {
    const routes = [
      (id: string) => ({ method: "GET" as const, url: `/v1/upgrades/${id}` }),
      (id: string) => ({ method: "GET" as const, url: `/v1/upgrades/${id}/toolboxes` }),
      (id: string) => ({ method: "POST" as const, url: `/v1/upgrades/${id}/stop` }),
      (id: string) => ({ method: "POST" as const, url: `/v1/upgrades/${id}/resume` }),
      (id: string) => ({ method: "POST" as const, url: `/v1/upgrades/${id}/abort` }),
      (id: string) => ({ method: "GET" as const, url: `/v1/reconciliations/${id}` }),
      (id: string) => ({ method: "GET" as const, url: `/v1/fleet/versions/${id}` }),
    ];
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...routes), segment, async (route, id) => {
        const res = await svc.app.inject({ ...route(encodeURIComponent(id)), headers: auth });
        assertRefusal(res);
        if (res.statusCode === 400) assert.match(res.json().field, /^(id|account_id)$/);
      }),
      { numRuns: 150 },
    );
    const lists = ["/v1/upgrades", "/v1/reconciliations", "/v1/fleet/versions"];
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...lists),
        fc.dictionary(
          fc.constantFrom("limit", "status", "after", "state", "wave", "x"),
          queryValue,
        ),
        async (url, query) => {
          const res = await svc.app.inject({ method: "GET", url, query, headers: auth });
          assertRefusal(res);
        },
      ),
      { numRuns: 150 },
    );
    const up = await svc.app.inject({ url: "/v1/upgrades?limit=0", headers: auth });
    assert.equal(up.statusCode, 400);
    assert.equal(up.json().field, "limit");
    // A control takes no body.
    const stop = await svc.app.inject({
      method: "POST",
      url: `/v1/upgrades/${randomUUID()}/stop`,
      headers: auth,
      payload: { why: "x" },
    });
    assert.equal(stop.statusCode, 400);
    assert.equal(stop.json().field, "why");
  });

  it("only the service token: none is 401 everywhere", async () => {
    for (const [method, url] of [
      ["POST", "/v1/upgrades"],
      ["GET", "/v1/upgrades"],
      ["POST", `/v1/upgrades/${randomUUID()}/abort`],
      ["POST", "/v1/reconciliations"],
      ["GET", "/v1/fleet/versions"],
    ] as const) {
      const res = await svc.app.inject({ method, url });
      assert.equal(res.statusCode, 401, `${method} ${url}`);
    }
  });
});
