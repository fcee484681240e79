import assert from "node:assert/strict";
import fc from "fast-check";
import {
  ALLOWED_REGIONS,
  ALLOWED_SIZES,
  controlPlaneCidrProblem,
  DEFAULT_REGION,
  DEFAULT_SIZE,
  DOCKER_STATES,
  ACCOUNT_ID_PATTERN,
  dropletNameFor,
  dtmaScopeFor,
  INSTALLATION_STATUS_FOR_STATE,
  INSTALLATION_STATUSES,
  installationStatusFor,
  isAccountId,
  isWorldCidr,
  LIFECYCLE_STATUSES,
  REGIONS,
  SIZES,
  stackNameFor,
  TOOLBOX_STATUSES,
} from "../src";

describe("toolbox contract", () => {
  it("account ids: a UUID fits, case and edge hyphens do not, and names derive from it", () => {
    const id = "7d1f6a2e-6a39-4a38-9c1e-2b8f0f0e1a11";
    assert.equal(isAccountId(id), true);
    assert.equal(isAccountId(id.toUpperCase()), false);
    assert.equal(isAccountId("-a"), false);
    assert.equal(isAccountId("a".repeat(49)), false);
    assert.equal(stackNameFor(id), `acct-${id}`);
    assert.equal(dropletNameFor(id), `tbx-${id}`);
    // The DTMA's own rule for DTMA_SCOPE (dtma/src/config.ts): a short lowercase label.
    fc.assert(
      fc.property(fc.stringMatching(ACCOUNT_ID_PATTERN), (account) => {
        assert.match(dtmaScopeFor(account), /^[a-z0-9][a-z0-9-]{0,30}$/);
      }),
    );
    assert.notEqual(dtmaScopeFor(id), dtmaScopeFor(id.replace(/^7/, "8")));
    assert.equal(dtmaScopeFor("canary-dev"), "canary-dev");
  });

  it("allow-lists are inside what a toolbox can use, and hold the defaults", () => {
    for (const r of ALLOWED_REGIONS) assert.ok((REGIONS as readonly string[]).includes(r));
    for (const s of ALLOWED_SIZES) assert.ok((SIZES as readonly string[]).includes(s));
    assert.ok(ALLOWED_REGIONS.includes(DEFAULT_REGION));
    assert.ok(ALLOWED_SIZES.includes(DEFAULT_SIZE));
  });

  it("every Docker state maps to an installation status Agentopia's enum has", () => {
    for (const state of DOCKER_STATES) {
      const status = INSTALLATION_STATUS_FOR_STATE[state];
      assert.ok(INSTALLATION_STATUSES.includes(status), `${state} → ${status}`);
      assert.equal(installationStatusFor({ state, status: "running" }), status, "state decides");
    }
    assert.equal(installationStatusFor({ status: "stopped" }), "stopped", "status as fallback");
    assert.equal(installationStatusFor({ state: "bogus", status: "nonsense" }), undefined);
    assert.equal(installationStatusFor({ state: "toString" }), undefined);
    for (const s of LIFECYCLE_STATUSES) assert.ok(TOOLBOX_STATUSES.includes(s));
  });

  it("control-plane ranges: CIDRs narrower than the world, and nothing else", () => {
    for (const ok of ["203.0.113.0/24", "10.0.0.0/8", "2001:db8::/32", "198.51.100.7/32"]) {
      assert.equal(controlPlaneCidrProblem(ok), undefined, ok);
    }
    for (const bad of [
      "0.0.0.0/0",
      "::/0",
      "0.0.0.0/1",
      "128.0.0.0/1",
      "2000::/3",
      "10.0.0.0",
      "x",
      "0x0a.0.0.0/8",
      "10.0.0.0/33",
    ]) {
      assert.match(controlPlaneCidrProblem(bad) ?? "", /CIDR/, bad);
    }
    fc.assert(
      fc.property(fc.ipV4(), fc.integer({ min: 0, max: 32 }), (address, prefix) => {
        assert.equal(isWorldCidr(`${address}/${prefix}`), prefix < 8);
      }),
    );
  });
});
