/** Pure parts of the fleet: wave planning, the failure ratio, the health verdicts, the profile. */
import assert from "node:assert/strict";
import fc from "fast-check";
import { loadSettings } from "../src/config";
import { backendProblem, heartbeatProblem } from "../src/fleet/health";
import { assignWaves, exceedsRatio } from "../src/fleet/plan";
import { applyProfile } from "../src/fleet/profile";

const waves = fc
  .uniqueArray(fc.integer({ min: 1, max: 99 }), { maxLength: 5 })
  .map((w) => [...w.sort((a, b) => a - b), 100]);

describe("fleet planning and verdicts (pure)", () => {
  it("property: every toolbox gets one wave; canaries first; waves reach their cumulative share", () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.uuid(), { maxLength: 300 }),
        fc.nat(20),
        waves,
        fc.string(),
        (accounts, canaries, w, seed) => {
          const plan = assignWaves({ accounts, canaries: { count: canaries }, waves: w, seed });
          assert.equal(plan.size, accounts.length);
          const c = Math.min(canaries, accounts.length);
          assert.equal([...plan.values()].filter((x) => x === 0).length, c);
          const rest = accounts.length - c;
          w.forEach((p, i) => {
            const upTo = [...plan.values()].filter((x) => x >= 1 && x <= i + 1).length;
            assert.equal(upTo, i === w.length - 1 ? rest : Math.ceil((rest * p) / 100));
          });
          // The same seed, the same plan; not the order the accounts came in.
          assert.deepEqual(
            assignWaves({ accounts, canaries: { count: canaries }, waves: w, seed }),
            plan,
          );
        },
      ),
    );
  });

  it("explicit canaries are wave 0", () => {
    const plan = assignWaves({
      accounts: ["a", "b", "c"],
      canaries: { accounts: ["c"] },
      waves: [100],
      seed: "s",
    });
    assert.deepEqual([plan.get("c"), plan.get("a"), plan.get("b")], [0, 1, 1]);
  });

  it("property: once a wave exceeds its ratio, more failures or fewer counted keep it exceeded", () => {
    fc.assert(
      fc.property(
        fc.nat(50),
        fc.nat(50),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.nat(5),
        (f, extra, ratio, more) => {
          const n = f + extra;
          if (exceedsRatio(f, n, ratio))
            assert.ok(exceedsRatio(f + more, Math.max(f + more, n - more), ratio));
        },
      ),
    );
    assert.equal(exceedsRatio(0, 0, 0), false);
    assert.equal(exceedsRatio(1, 9, 0.1), true);
    assert.equal(exceedsRatio(1, 10, 0.1), false);
  });

  it("a heartbeat proves a step only after it started and with the expected image", () => {
    const since = new Date("2026-01-01T00:00:00Z");
    const at = new Date("2026-01-01T00:00:05Z");
    const seen = (image: string | null, hasField = true, when: Date | null = at) => ({
      last_heartbeat_at: when,
      reported_image: image,
      has_image_field: hasField,
    });
    assert.equal(heartbeatProblem(seen("x:2"), "x:2", since, false), undefined);
    assert.match(heartbeatProblem(seen("x:1"), "x:2", since, false)!, /reports x:1, not x:2/);
    assert.match(
      heartbeatProblem(seen("x:2", true, since), "x:2", at, false)!,
      /no heartbeat since/,
    );
    assert.match(heartbeatProblem(seen(null, false), "x:2", since, false)!, /reports no image/);
    assert.equal(
      heartbeatProblem(seen(null, false), "x:1", since, true),
      undefined,
      "an older DTMA, going back",
    );
    assert.equal(backendProblem({ ok: true, image: "b:2" }, "b:2"), undefined);
    assert.equal(backendProblem({ ok: true }, "b:2"), undefined, "a backend that reports no image");
    assert.match(backendProblem({ ok: true, image: "b:1" }, "b:2")!, /reports b:1/);
    assert.match(
      backendProblem({ ok: false, problem: "backend /status answered 503" }, "b:2")!,
      /503/,
    );
  });

  describe("settings against the platform's toolboxProfile", () => {
    const profile = {
      regions: ["nyc3", "fra1"],
      sizes: ["s-1vcpu-1gb", "s-1vcpu-2gb"],
      requireDigestPins: true,
    };
    const pin = `@sha256:${"ab".repeat(32)}`;
    const env = { DTMA_IMAGE: `ghcr.io/a/dtma${pin}`, BACKEND_IMAGE: `ghcr.io/a/backend${pin}` };

    it("unset settings are taken from it", () => {
      const check = applyProfile(env, loadSettings(env), profile);
      assert.deepEqual(check.problems, []);
      assert.deepEqual(check.settings.allowedRegions, ["nyc3", "fra1"]);
      assert.deepEqual(check.settings.allowedSizes, ["s-1vcpu-1gb", "s-1vcpu-2gb"]);
      assert.equal(check.settings.defaultSize, "s-1vcpu-1gb");
      assert.equal(check.settings.requireDigestPins, true);
      assert.deepEqual(check.taken.sort(), [
        "ALLOWED_REGIONS",
        "ALLOWED_SIZES",
        "DEFAULT_SIZE",
        "REQUIRE_DIGEST_PINS",
      ]);
    });

    it("a set setting it does not allow is one line naming it", () => {
      const cases: [Record<string, string>, string][] = [
        [{ ...env, ALLOWED_REGIONS: '["nyc3","sgp1"]' }, "ALLOWED_REGIONS: sgp1 not in"],
        [{ ...env, ALLOWED_SIZES: '["s-2vcpu-4gb"]' }, "ALLOWED_SIZES: s-2vcpu-4gb not in"],
        [
          { ...env, REQUIRE_DIGEST_PINS: "0" },
          "REQUIRE_DIGEST_PINS: the platform's toolboxProfile requires pins",
        ],
        [
          { DTMA_IMAGE: "ghcr.io/a/dtma:main", BACKEND_IMAGE: env.BACKEND_IMAGE },
          "DTMA_IMAGE: must be pinned by digest",
        ],
        [
          { ...env, DEFAULT_REGION: "sfo3", ALLOWED_REGIONS: '["sfo3"]' },
          "ALLOWED_REGIONS: sfo3 not in",
        ],
      ];
      for (const [e, line] of cases) {
        const check = applyProfile(e, loadSettings(e), profile);
        assert.equal(check.problems.length, 1, JSON.stringify(check.problems));
        assert.ok(check.problems[0].startsWith(line), check.problems[0]);
      }
      assert.match(
        applyProfile({}, loadSettings({}), { regions: [] }).problems[0],
        /^PLATFORM_STACK: /,
      );
    });
  });
});
