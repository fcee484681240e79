/* eslint-disable @typescript-eslint/no-unsafe-member-access -- JSON responses are checked by assertions */
import assert from "node:assert/strict";
import { TestEngine } from "../../src/engine/testEngine";
import { auth, newAccount, waitFor } from "../helpers";
import { loggedService, provisioned, troubling, type LoggedService } from "./kit";

// Issue 13, item 6 (the automation half): an uppercase account id gave 500 on /tokens (the
// ciphertext is bound to the lowercase id Postgres returns) and a stack named in the request's
// casing. Ids are canonicalised once, where they enter.

describe("security (issue 13, item 6): account and operation ids are canonical from the edge on", () => {
  let svc: LoggedService;
  const engine = new TestEngine();
  before(async () => (svc = await loggedService({ engine })));
  after(() => svc.stop());

  it("an uppercase account id names the same toolbox, its stack in lowercase, and /tokens answers", async () => {
    const account = newAccount();
    const upper = account.toUpperCase();
    const created = await svc.app.inject({
      method: "POST",
      url: "/v1/toolboxes",
      headers: auth,
      payload: { account_id: upper },
    });
    assert.equal(created.statusCode, 202, created.body);
    assert.equal(created.json().toolbox.account_id, account);
    assert.equal(created.json().toolbox.stack_name, `acct-${account}`);
    assert.equal(created.json().operation.account_id, account);
    await waitFor("provisioned", async () => {
      const res = await svc.app.inject({ url: `/v1/toolboxes/${upper}`, headers: auth });
      return res.json().toolbox?.status === "awaiting_heartbeat" ? true : undefined;
    });
    assert.ok(
      engine.calls.filter((c) => c.stackName.includes(account)).length > 0 &&
        engine.calls.every((c) => c.stackName === c.stackName.toLowerCase()),
      "the engine only ever saw lowercase stack names",
    );

    const tokens = await svc.app.inject({ url: `/v1/toolboxes/${upper}/tokens`, headers: auth });
    assert.equal(tokens.statusCode, 200, tokens.body);
    assert.equal(typeof tokens.json().dtma_token, "string");

    // The same request in the other casing is the same toolbox, not a second one.
    const again = await svc.app.inject({
      method: "POST",
      url: "/v1/toolboxes",
      headers: auth,
      payload: { account_id: account },
    });
    assert.equal(again.statusCode, 200);
    const mixed = account.replace(/[a-f]/, (c) => c.toUpperCase());
    const op = await svc.app.inject({
      method: "POST",
      url: `/v1/toolboxes/${mixed}/refresh`,
      headers: auth,
    });
    assert.equal(op.statusCode, 202, op.body);
    const opId = op.json().operation.id as string;
    const read = await svc.app.inject({
      url: `/v1/operations/${opId.toUpperCase()}`,
      headers: auth,
    });
    assert.equal(read.statusCode, 200, read.body);
    assert.equal(read.json().operation.id, opId);
    assert.deepEqual(troubling(svc.lines), []);
  });

  it("/tokens of an uppercase id of a provisioned toolbox is its tokens, never a 500", async () => {
    const { account, dtmaToken } = await provisioned(svc);
    const res = await svc.app.inject({
      url: `/v1/toolboxes/${account.toUpperCase()}/tokens`,
      headers: auth,
    });
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(res.json().dtma_token, dtmaToken);
  });
});
