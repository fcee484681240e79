import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import type { IncomingMessage } from "node:http";
import fc from "fast-check";
import { AgentTokens } from "../src/auth/agentTokens";
import { gatewayAuthenticator } from "../src/auth/gatewayAuth";
import { Revocations } from "../src/auth/revocations";

const secret = () => randomBytes(48).toString("base64url");
const request = (authorization?: string) =>
  ({ headers: authorization === undefined ? {} : { authorization } }) as IncomingMessage;

describe("per-agent tokens", () => {
  let clock = Date.parse("2026-12-04T12:00:00Z");
  const now = () => clock;
  const internal = secret();
  const gatewayToken = secret();
  const revocations = new Revocations(now);
  const tokens = new AgentTokens(internal, revocations, now);
  const auth = gatewayAuthenticator({ agentGatewayToken: gatewayToken, tokens, now });

  it("a minted token names its agent and servers, and is verified by the backend alone", async () => {
    const minted = await tokens.mint({
      agentId: "agent-7",
      servers: ["search"],
      expiresInSeconds: 600,
    });
    const principal = await auth(request(`Bearer ${minted.token}`));
    assert.deepEqual(principal, {
      kind: "agent",
      id: "agent-7",
      tokenId: minted.tokenId,
      servers: ["search"],
      expiresAt: minted.expiresAt * 1000,
    });
    // A new backend (a restart) with the same toolbox secret accepts it: nothing was stored.
    const restarted = new AgentTokens(internal, new Revocations(now), now);
    const v = await restarted.verify(minted.token);
    assert.equal(v.ok, true);
  });

  it("the toolbox-wide token may use every server; a scheme in any case is accepted", async () => {
    assert.deepEqual(await auth(request(`Bearer ${gatewayToken}`)), {
      kind: "gateway",
      id: "gateway",
      servers: "*",
    });
    for (const scheme of ["bearer", "BEARER"]) {
      assert.equal("kind" in (await auth(request(`${scheme} ${gatewayToken}`))), true, scheme);
    }
  });

  it("refuses missing, malformed, unknown, another toolbox's and expired tokens with their reason", async () => {
    assert.deepEqual(await auth(request()), { reason: "missing" });
    assert.deepEqual(await auth(request("Basic abc")), { reason: "malformed" });
    assert.deepEqual(await auth(request(`Bearer ${secret()}`)), { reason: "invalid" });
    const elsewhere = new AgentTokens(secret(), new Revocations(now), now);
    const foreign = await elsewhere.mint({ agentId: "a", servers: "*", expiresInSeconds: 600 });
    assert.deepEqual(await auth(request(`Bearer ${foreign.token}`)), { reason: "invalid" });
    const short = await tokens.mint({ agentId: "a", servers: "*", expiresInSeconds: 60 });
    assert.equal("kind" in (await auth(request(`Bearer ${short.token}`))), true);
    clock += 61_000;
    assert.deepEqual(await auth(request(`Bearer ${short.token}`)), { reason: "expired" });
  });

  it("a revoked token, or every token of a revoked agent issued so far, is refused; later ones are not", async () => {
    const one = await tokens.mint({ agentId: "b", servers: "*", expiresInSeconds: 600 });
    const two = await tokens.mint({ agentId: "b", servers: "*", expiresInSeconds: 600 });
    assert.equal("kind" in (await auth(request(`Bearer ${one.token}`))), true);
    revocations.add({ token_id: one.tokenId, expires_at: one.expiresAt });
    assert.deepEqual(await auth(request(`Bearer ${one.token}`)), { reason: "revoked" });
    assert.equal("kind" in (await auth(request(`Bearer ${two.token}`))), true);
    revocations.add({
      agent_id: "b",
      issued_before: Math.floor(clock / 1000),
      expires_at: two.expiresAt + 1,
    });
    assert.deepEqual(await auth(request(`Bearer ${two.token}`)), { reason: "revoked" });
    clock += 1000;
    const three = await tokens.mint({ agentId: "b", servers: "*", expiresInSeconds: 600 });
    assert.equal("kind" in (await auth(request(`Bearer ${three.token}`))), true);
  });

  it("revocations are dropped once the tokens they name have expired", () => {
    const r = new Revocations(now);
    r.add({ token_id: "t", expires_at: Math.floor(clock / 1000) + 10 });
    assert.equal(r.size, 1);
    clock += 11_000;
    r.prune();
    assert.equal(r.size, 0);
  });

  it("property: no altered token is ever accepted", async () => {
    const minted = await tokens.mint({ agentId: "c", servers: ["x"], expiresInSeconds: 600 });
    // A segment's last base64url character carries unused bits: changing only those decodes to
    // the same bytes, which is the same token.
    const bytes = (t: string) =>
      t.split(".").map((p) => Buffer.from(p, "base64url").toString("hex"));
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.";
    await fc.assert(
      fc.asyncProperty(
        fc.nat({ max: minted.token.length - 1 }),
        fc.constantFrom(...alphabet),
        async (i, c) => {
          const altered = minted.token.slice(0, i) + c + minted.token.slice(i + 1);
          fc.pre(altered !== minted.token);
          const result = await auth(request(`Bearer ${altered}`));
          if ("kind" in result) assert.deepEqual(bytes(altered), bytes(minted.token));
        },
      ),
      { numRuns: 300 },
    );
  });
});
