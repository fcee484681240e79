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
  isCidr,
  isIpv4Cidr,
  isWorldCidr,
  LIFECYCLE_STATUSES,
  parseIpv4Network,
  portRangeIncludes,
  rangeContains,
  rangesOverlap,
  REGIONS,
  SIZES,
  stackNameFor,
  TOOLBOX_STATUSES,
  type Ipv4Network,
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

  it("IPv4 networks: dotted decimal, host bits zero, containment as integer ranges", () => {
    assert.equal(
      (parseIpv4Network("172.31.0.0/16") as Ipv4Network).address.toString(),
      "172.31.0.0",
    );
    assert.equal(parseIpv4Network("172.31.0.0"), "not an IPv4 CIDR");
    assert.equal(parseIpv4Network("010.0.0.0/8"), "not an IPv4 CIDR");
    assert.equal(parseIpv4Network("10.0.0.0/33"), "not an IPv4 CIDR");
    assert.equal(parseIpv4Network("2001:db8::/32"), "not an IPv4 CIDR");
    assert.equal(
      parseIpv4Network("172.30.0.1/24"),
      "host bits must be zero (did you mean 172.30.0.0/24?)",
    );
    assert.ok(isIpv4Cidr("10.0.0.0/8") && !isIpv4Cidr("::/0") && isCidr("::/0"));
    const toInt = (n: Ipv4Network) => n.address.octets.reduce((acc, o) => acc * 256 + o, 0);
    const span = (n: Ipv4Network) => [toInt(n), toInt(n) + 2 ** (32 - n.prefix) - 1];
    const network = fc
      .tuple(fc.integer({ min: 0, max: 2 ** 32 - 1 }), fc.integer({ min: 0, max: 32 }))
      .map(([n, prefix]) => {
        const base = n - (n % 2 ** (32 - prefix));
        const text = `${[24, 16, 8, 0].map((s) => Math.floor(base / 2 ** s) % 256).join(".")}/${prefix}`;
        return parseIpv4Network(text) as Ipv4Network;
      });
    fc.assert(
      fc.property(network, network, (a, b) => {
        const [a0, a1] = span(a);
        const [b0, b1] = span(b);
        assert.equal(rangeContains(a, b), a0 <= b0 && b1 <= a1);
        assert.equal(rangesOverlap(a, b), a0 <= b1 && b0 <= a1);
      }),
    );
  });

  it("port ranges are read as DigitalOcean writes them", () => {
    for (const all of [undefined, "", "all", "0"]) assert.ok(portRangeIncludes(all, 30000));
    assert.ok(portRangeIncludes("22", 22) && !portRangeIncludes("23", 22));
    assert.ok(portRangeIncludes("1-24", 24) && !portRangeIncludes("26-65535", 25));
  });
});
