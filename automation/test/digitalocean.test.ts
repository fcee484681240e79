/**
 * The DigitalOcean client (`@digitalocean/dots`) against recorded, documented API answers on
 * loopback: every page, a 429 waited out, tags parsed (dots' models fail on every droplet's tags
 * with a Kiota newer than the one pinned), deletes by id only.
 */
import assert from "node:assert/strict";
import { accountOfDroplet, digitalOceanApi } from "../src/fleet/digitalocean";
import { DigitalOceanStandIn } from "./fixtures/digitalOceanApi";

const TOKEN = `dop_v1_${"ab".repeat(32)}`;

describe("DigitalOcean client: dots against recorded answers on loopback", function () {
  this.timeout(30_000);
  let api: DigitalOceanStandIn;
  beforeEach(async () => {
    api = new DigitalOceanStandIn(TOKEN);
    await api.listen();
  });
  afterEach(() => api.close());

  it("lists every page of the toolbox droplets, waiting out a 429, with tags and accounts", async () => {
    api.droplets = [
      ...Array.from({ length: 5 }, (_, i) => ({
        id: 3000 + i,
        name: `tbx-acct${i}`,
        tags: ["agentopia-toolbox", `account-acct${i}`, "env-dev"],
      })),
      { id: 4000, name: "tbx-named-only", tags: ["agentopia-toolbox"] },
      { id: 5000, name: "unrelated", tags: ["web"] },
    ];
    api.rateLimited = 1;
    const client = await digitalOceanApi({ token: TOKEN, apiUrl: api.url, perPage: 2 });
    const droplets = await client.listDroplets("agentopia-toolbox");
    assert.deepEqual(
      droplets.map((d) => [d.id, d.accountId]),
      [
        ["3000", "acct0"],
        ["3001", "acct1"],
        ["3002", "acct2"],
        ["3003", "acct3"],
        ["3004", "acct4"],
        ["4000", "named-only"],
      ],
    );
    assert.deepEqual(droplets[0].tags, ["agentopia-toolbox", "account-acct0", "env-dev"]);
    assert.equal(droplets[0].status, "active");
    // One 429, then three pages of two; each with the token, the tag and the page size.
    assert.equal(api.requests.length, 4);
    assert.ok(api.requests.every((r) => r.authorization === `Bearer ${TOKEN}`));
    assert.ok(api.requests.every((r) => /tag_name=agentopia-toolbox/.test(r.url)));
    assert.deepEqual(
      api.requests.map((r) => new URL(r.url, api.url).searchParams.get("page")),
      ["1", "1", "2", "3"],
    );
  });

  it("deletes one droplet by id and refuses anything that is not an id", async () => {
    api.droplets = [{ id: 42, name: "tbx-x", tags: ["agentopia-toolbox"] }];
    const client = await digitalOceanApi({ token: TOKEN, apiUrl: api.url });
    await client.deleteDroplet("42");
    assert.deepEqual(api.droplets, []);
    assert.deepEqual(
      api.requests.map((r) => `${r.method} ${r.url}`),
      ["DELETE /v2/droplets/42"],
    );
    await assert.rejects(client.deleteDroplet("42?tag_name=x"), /not a droplet id/);
    assert.equal(api.requests.length, 1);
  });

  it("a wrong token is an error that names no token", async () => {
    const client = await digitalOceanApi({ token: `${TOKEN}x`, apiUrl: api.url });
    await assert.rejects(client.listDroplets("agentopia-toolbox"), (err: Error) => {
      assert.ok(!String(err.message).includes(TOKEN));
      return true;
    });
  });

  it("a droplet's account: its account tag first, else its tbx- name", () => {
    assert.equal(accountOfDroplet("tbx-a", ["account-b"]), "b");
    assert.equal(accountOfDroplet("tbx-a", ["web"]), "a");
    assert.equal(accountOfDroplet("web", []), undefined);
  });
});
