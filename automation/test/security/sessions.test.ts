/* eslint-disable @typescript-eslint/no-unsafe-member-access -- JSON responses are checked by assertions */
import assert from "node:assert/strict";
import { randomUUID, webcrypto } from "node:crypto";
import { supabaseVerifier } from "../../src/auth/auth";
import { supabaseIssuer, type SupabaseIssuer } from "../fixtures/supabaseIssuer";
import { auth, newAccount } from "../helpers";
import { loggedService, provisioned, troubling, type LoggedService } from "./kit";

// Issue 13, item 10: each anonymous request cost a call to Supabase Auth (junk JWTs and unknown
// `kid`s skipped the JWKS cache). Sessions are verified locally where the key allows (the
// project's JWKS; its JWT secret when given), refusals are cached, and an address that keeps
// failing is refused before anything is verified.

const b64 = (v: object) => Buffer.from(JSON.stringify(v)).toString("base64url");

describe("security (issue 13, item 10): an anonymous request costs Supabase Auth nothing", function () {
  this.timeout(120_000);
  let issuer: SupabaseIssuer;
  let svc: LoggedService;
  const owner = newAccount();

  before(async () => {
    issuer = await supabaseIssuer();
    svc = await loggedService({
      sessions: supabaseVerifier(issuer.url, "anon-key"),
      authFailuresPerMinute: 10_000,
    });
  });
  after(async () => {
    await svc.stop();
    await issuer.close();
  });

  const get = (token: string, remoteAddress = "127.0.0.1") =>
    svc.app.inject({
      url: "/openapi.json",
      headers: { authorization: `Bearer ${token}` },
      remoteAddress,
    });

  it("junk, forged, expired and unknown-kid tokens are refused locally: no call to Auth, the JWKS fetched at most once", async () => {
    assert.equal((await get(await issuer.session(owner))).statusCode, 200, "a real session");
    const before = { ...issuer.requests };
    const exp = Math.floor(Date.now() / 1000) + 3600;
    const other = await webcrypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, [
      "sign",
    ]);
    const tokens = [
      "junk",
      "a.b.c",
      `${b64({ alg: "none", typ: "JWT" })}.${b64(issuer.claimsFor(owner))}.`,
      `${b64({ alg: "ES256", kid: issuer.kid })}.not-json.sig`,
      await issuer.sign(issuer.claimsFor(owner), other.privateKey),
      await issuer.sign({ ...issuer.claimsFor(owner), exp: 1000 }),
      await issuer.sign({ ...issuer.claimsFor(owner), aud: "anon" }),
      await issuer.sign({ sub: owner, role: "authenticated", aud: "authenticated", exp }),
    ];
    for (let i = 0; i < 20; i++) {
      tokens.push(await issuer.sign(issuer.claimsFor(owner), other.privateKey, randomUUID()));
    }
    const wrong: string[] = [];
    for (const [i, token] of tokens.entries()) {
      const res = await get(token);
      // The one with every claim right, signed by the project's key, is the control case.
      if (res.statusCode !== (i === 7 ? 200 : 401)) wrong.push(`${i}: ${res.statusCode}`);
    }
    assert.equal(issuer.requests.user - before.user, 0, "no token was sent to Supabase Auth");
    assert.ok(
      issuer.requests.jwks - before.jwks <= 1,
      `the JWKS was fetched ${issuer.requests.jwks - before.jwks} times for 20 unknown kids`,
    );
    assert.deepEqual(wrong, [], "tokens answered otherwise than 401 (the control: 200)");
  });

  it("a symmetric (HS256) session is asked of Auth once: its answer is cached, and so is a refusal", async () => {
    const before = issuer.requests.user;
    const forged = issuer.signSymmetric(issuer.claimsFor(owner), "not-the-project-secret");
    for (let i = 0; i < 10; i++) assert.equal((await get(forged)).statusCode, 401);
    const concurrent = await Promise.all(Array.from({ length: 10 }, () => get(forged)));
    assert.ok(concurrent.every((r) => r.statusCode === 401));
    assert.equal(issuer.requests.user - before, 1, "one call for twenty refusals");

    const real = issuer.signSymmetric(issuer.claimsFor(owner));
    const answers = await Promise.all(Array.from({ length: 10 }, () => get(real)));
    assert.ok(answers.every((r) => r.statusCode === 200));
    for (let i = 0; i < 10; i++) assert.equal((await get(real)).statusCode, 200);
    assert.equal(issuer.requests.user - before, 2, "one call for twenty acceptances");

    // Claims that cannot be a user's session never leave the service.
    const expired = issuer.signSymmetric({ ...issuer.claimsFor(owner), exp: 1000 });
    const anon = issuer.signSymmetric({ ...issuer.claimsFor(owner), role: "anon" });
    assert.equal((await get(expired)).statusCode, 401);
    assert.equal((await get(anon)).statusCode, 401);
    assert.equal(issuer.requests.user - before, 2);
  });

  it("with the project's JWT secret, symmetric sessions are verified locally: no call at all", async () => {
    const local = await loggedService({
      sessions: supabaseVerifier(issuer.url, "anon-key", { jwtSecret: issuer.jwtSecret }),
    });
    try {
      const before = issuer.requests.user;
      const call = (token: string) =>
        local.app.inject({ url: "/openapi.json", headers: { authorization: `Bearer ${token}` } });
      assert.equal((await call(issuer.signSymmetric(issuer.claimsFor(owner)))).statusCode, 200);
      assert.equal(
        (await call(issuer.signSymmetric(issuer.claimsFor(owner), "forged"))).statusCode,
        401,
      );
      assert.equal((await call(await issuer.session(owner))).statusCode, 200, "ES256 still");
      assert.equal(issuer.requests.user - before, 0);
    } finally {
      await local.stop();
    }
  });

  it("an address that keeps failing gets 429 with Retry-After before anything is verified; the service token and other addresses still pass", async () => {
    const limited = await loggedService({
      sessions: supabaseVerifier(issuer.url, "anon-key"),
      authFailuresPerMinute: 5,
    });
    try {
      const call = (token: string | undefined, remoteAddress: string) =>
        limited.app.inject({
          url: "/openapi.json",
          remoteAddress,
          headers: token ? { authorization: `Bearer ${token}` } : {},
        });
      const attacker = "203.0.113.7";
      for (let i = 0; i < 5; i++) {
        assert.equal((await call(i % 2 ? undefined : `junk-${i}`, attacker)).statusCode, 401);
      }
      const before = issuer.requests.user;
      const refused = await call(issuer.signSymmetric(issuer.claimsFor(owner), "x"), attacker);
      assert.equal(refused.statusCode, 429, refused.body);
      assert.equal(refused.json().error, "too_many_failures");
      assert.equal(refused.json().field, "authorization");
      assert.ok(Number(refused.headers["retry-after"]) >= 1, "Retry-After in seconds");
      assert.equal(issuer.requests.user, before, "refused before asking Auth");
      assert.equal(
        (await call(auth.authorization.slice(7), attacker)).statusCode,
        200,
        "the service token is never locked out",
      );
      assert.equal((await call("junk", "203.0.113.9")).statusCode, 401, "another address");
      assert.equal((await call(await issuer.session(owner), "203.0.113.9")).statusCode, 200);

      // Unknown DTMA tokens count the same way; a toolbox's own token always passes, so DTMAs
      // behind one address are not locked out by a stale one among them.
      const { dtmaToken } = await provisioned(limited);
      const beat = (token: string) =>
        limited.app.inject({
          method: "POST",
          url: "/v1/heartbeat",
          remoteAddress: "198.51.100.4",
          headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
          payload: "{}",
        });
      for (let i = 0; i < 5; i++) assert.equal((await beat(`dtma-${i}`)).statusCode, 401);
      assert.equal((await beat("dtma-x")).statusCode, 429);
      assert.equal((await beat(dtmaToken)).statusCode, 204, "a known DTMA token");
      assert.deepEqual(troubling(limited.lines), []);
    } finally {
      await limited.stop();
    }
  });

  it("behind a trusted proxy (TRUST_PROXY) the forwarded address is counted; from anyone else X-Forwarded-For is ignored", async () => {
    const proxied = await loggedService({ authFailuresPerMinute: 2, trustProxy: ["127.0.0.1"] });
    try {
      const call = (remoteAddress: string, forwarded: string) =>
        proxied.app.inject({
          url: "/openapi.json",
          remoteAddress,
          headers: { authorization: "Bearer junk", "x-forwarded-for": forwarded },
        });
      assert.equal((await call("127.0.0.1", "203.0.113.1")).statusCode, 401);
      assert.equal((await call("127.0.0.1", "203.0.113.1")).statusCode, 401);
      assert.equal((await call("127.0.0.1", "203.0.113.1")).statusCode, 429);
      assert.equal((await call("127.0.0.1", "203.0.113.2")).statusCode, 401, "another client");
      for (const forwarded of ["192.0.2.1", "192.0.2.2"]) {
        assert.equal((await call("198.51.100.1", forwarded)).statusCode, 401);
      }
      assert.equal((await call("198.51.100.1", "192.0.2.3")).statusCode, 429, "not a proxy");
    } finally {
      await proxied.stop();
    }
  });
});
