/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-unsafe-argument -- JSON responses are checked by assertions */
import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import { TestEngine } from "../src/engine/testEngine";
import { auth, newAccount, startTestService, waitFor } from "./helpers";

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** Reads a whole server-sent event stream over real HTTP until the server ends it. */
async function readEvents(base: string, opId: string, headers: Record<string, string> = {}) {
  const res = await fetch(`${base}/v1/operations/${opId}/events`, {
    headers: { ...auth, ...headers },
  });
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /text\/event-stream/);
  const text = await res.text();
  return text
    .split("\n\n")
    .filter((block) => block.includes("event: "))
    .map((block) => {
      const field = (k: string) =>
        block
          .split("\n")
          .find((l) => l.startsWith(`${k}: `))
          ?.slice(k.length + 2);
      return { id: field("id"), event: field("event")!, data: JSON.parse(field("data")!) as Json };
    });
}

describe("toolbox lifecycle through the HTTP API (test engine, real Postgres, real HTTP)", function () {
  let svc: Awaited<ReturnType<typeof startTestService>>;
  let base: string;
  const engine = new TestEngine({ latencyMs: 100, eventsPerOperation: 3 });

  before(async () => {
    svc = await startTestService({ engine });
    await svc.app.listen({ port: 0, host: "127.0.0.1" });
    base = `http://127.0.0.1:${(svc.app.server.address() as AddressInfo).port}`;
  });
  after(async () => svc.stop());

  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(base + path, {
      method,
      headers: { ...auth, ...(body ? { "content-type": "application/json" } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    return { status: res.status, body: (res.status === 204 ? {} : await res.json()) as Json };
  };

  it("request → provisioning → awaiting_heartbeat → heartbeat → active → delete → deprovisioned", async () => {
    const account = newAccount();
    const created = await call("POST", "/v1/toolboxes", { account_id: account, region: "nyc3" });
    assert.equal(created.status, 202);
    assert.equal(created.body.toolbox.status, "pending_provision");
    assert.equal(created.body.operation.kind, "provision");
    const opId = created.body.operation.id as string;

    const seen = new Set<string>();
    await waitFor("provisioning to finish", async () => {
      const { body } = await call("GET", `/v1/toolboxes/${account}`);
      seen.add(body.toolbox.status);
      return body.toolbox.status === "awaiting_heartbeat" ? true : undefined;
    });
    assert.ok(seen.has("awaiting_heartbeat"));

    const events = await readEvents(base, opId);
    const types = events.map((e) => e.event);
    assert.deepEqual(types.slice(0, 2), ["queued", "attempt"]);
    assert.ok(types.includes("resOutputsEvent"));
    assert.deepEqual(types.slice(-2), ["succeeded", "end"]);
    // Replay: after a given event id, only later events come back.
    const resumed = await readEvents(base, opId, { "last-event-id": events[1].id! });
    assert.deepEqual(
      resumed.map((e) => e.event),
      types.slice(2),
    );

    const toolbox = (await call("GET", `/v1/toolboxes/${account}`)).body.toolbox;
    assert.equal(toolbox.region, "nyc3");
    assert.equal(toolbox.ipv4, "127.0.0.1");
    assert.equal(toolbox.outputs.dtmaToken, undefined, "no secret in the public view");
    assert.equal(JSON.stringify(toolbox).includes('Token":'), false);
    assert.equal(engine.calls.at(-1)!.config.agentopiaApiBaseUrl, "http://127.0.0.1:8080/v1");

    const tokens = (await call("GET", `/v1/toolboxes/${account}/tokens`)).body;
    assert.equal(typeof tokens.dtma_token, "string");
    const stored = await svc.pool.query(
      `select c.tokens_ciphertext, c.dtma_token_hash from account_tool_environment_credentials c
       join account_tool_environments e on e.id = c.environment_id where e.account_id = $1`,
      [account],
    );
    assert.equal(
      String(stored.rows[0].tokens_ciphertext).includes(tokens.dtma_token as string),
      false,
      "encrypted at rest",
    );

    const hb = await fetch(`${base}/v1/heartbeat`, {
      method: "POST",
      headers: { authorization: `Bearer ${tokens.dtma_token}`, "content-type": "application/json" },
      body: JSON.stringify({ dtma_version: "1.2.3", system_status: { cpu: 3 }, tool_statuses: [] }),
    });
    assert.equal(hb.status, 204);
    const active = (await call("GET", `/v1/toolboxes/${account}`)).body.toolbox;
    assert.equal(active.status, "active");
    assert.equal(active.health, "healthy");
    assert.equal(active.dtma_version, "1.2.3");

    const again = await call("POST", "/v1/toolboxes", { account_id: account });
    assert.equal(again.status, 200, "an active toolbox is returned as is");
    assert.equal(again.body.toolbox.status, "active");

    const del = await call("DELETE", `/v1/toolboxes/${account}`);
    assert.equal(del.status, 202);
    assert.equal(del.body.toolbox.status, "pending_deprovision");
    const delEvents = await readEvents(base, del.body.operation.id as string);
    assert.equal(delEvents.at(-1)!.data.status, "succeeded");
    const gone = (await call("GET", `/v1/toolboxes/${account}`)).body.toolbox;
    assert.equal(gone.status, "deprovisioned", "the record stays");
    const oldToken = await fetch(`${base}/v1/heartbeat`, {
      method: "POST",
      headers: { authorization: `Bearer ${tokens.dtma_token}`, "content-type": "application/json" },
      body: "{}",
    });
    assert.equal(oldToken.status, 401, "a deprovisioned toolbox's token no longer works");
    await oldToken.body?.cancel();
    assert.equal((await call("DELETE", `/v1/toolboxes/${account}`)).status, 200);
  });

  it("a drift check reports the preview's change summary", async () => {
    const account = newAccount();
    const created = await call("POST", "/v1/toolboxes", { account_id: account });
    await readEvents(base, created.body.operation.id as string);
    const refresh = await call("POST", `/v1/toolboxes/${account}/refresh`);
    assert.equal(refresh.status, 202);
    assert.equal(refresh.body.operation.kind, "refresh");
    await readEvents(base, refresh.body.operation.id as string);
    const op = (await call("GET", `/v1/operations/${refresh.body.operation.id}`)).body.operation;
    assert.equal(op.status, "succeeded");
    assert.deepEqual(op.result, { drifted: false, changeSummary: { same: 3 } });
    assert.equal(
      (await call("GET", `/v1/toolboxes/${account}`)).body.toolbox.status,
      "awaiting_heartbeat",
    );
  });

  const raw = (method: string, path: string, contentType: string | undefined, body?: string) =>
    fetch(base + path, {
      method,
      headers: { ...auth, ...(contentType ? { "content-type": contentType } : {}) },
      body,
    }).then(async (r) => ({ status: r.status, body: (await r.json()) as Json }));

  it("refuses a region or size the environment does not offer before the 202, naming the field", async () => {
    const account = newAccount();
    for (const [field, value] of [
      ["region", "atl1"],
      ["region", "atlantis"],
      ["size", "s-4vcpu-8gb"],
    ]) {
      const res = await call("POST", "/v1/toolboxes", { account_id: account, [field]: value });
      assert.equal(res.status, 400, `${field}=${value}`);
      assert.equal(res.body.field, field);
      assert.match(res.body.message, /must be one of the (regions|sizes) this environment offers/);
    }
    assert.equal((await call("GET", `/v1/toolboxes/${account}`)).status, 404, "nothing recorded");
  });

  it("body-less routes take an empty body whatever its content type; a body of another type is 415", async () => {
    const account = newAccount();
    const created = await call("POST", "/v1/toolboxes", { account_id: account });
    await readEvents(base, created.body.operation.id as string);
    const refresh = await raw("POST", `/v1/toolboxes/${account}/refresh`, "application/json", "");
    assert.equal(refresh.status, 202, JSON.stringify(refresh.body));
    await readEvents(base, refresh.body.operation.id as string);
    const odd = await raw("POST", `/v1/toolboxes/${account}/refresh`, "text/plain", "");
    assert.equal(odd.status, 202, JSON.stringify(odd.body));
    await readEvents(base, odd.body.operation.id as string);
    const del = await raw(
      "DELETE",
      `/v1/toolboxes/${account}`,
      "application/json; charset=utf-8",
      "",
    );
    assert.equal(del.status, 202, JSON.stringify(del.body));
    await readEvents(base, del.body.operation.id as string);
    const typed = await raw(
      "POST",
      "/v1/toolboxes",
      "application/x-www-form-urlencoded",
      "account_id=x",
    );
    assert.equal(typed.status, 415);
    assert.equal(typed.body.error, "unsupported_media_type");
    assert.equal(typed.body.field, "content-type");
    const empty = await raw("POST", "/v1/toolboxes", "application/json", "");
    assert.equal(empty.status, 400, "an empty provision body is a body without account_id");
    assert.equal(empty.body.field, "account_id");
  });

  it("stores the droplet's name from the outputs, and no config echoed back", async () => {
    const account = newAccount();
    const created = await call("POST", "/v1/toolboxes", { account_id: account });
    await readEvents(base, created.body.operation.id as string);
    const toolbox = (await call("GET", `/v1/toolboxes/${account}`)).body.toolbox;
    assert.equal(toolbox.droplet_name, `tbx-${account}`);
    assert.equal(toolbox.stack_name, `acct-${account}`);
    assert.equal(toolbox.target, "local");
    assert.equal(toolbox.outputs.accountId, undefined);
    assert.equal(toolbox.outputs.target, undefined);
  });

  it("rotate-tokens raises the generation through the queue; the previous DTMA token keeps working", async () => {
    const account = newAccount();
    const created = await call("POST", "/v1/toolboxes", { account_id: account });
    await readEvents(base, created.body.operation.id as string);
    const before = (await call("GET", `/v1/toolboxes/${account}/tokens`)).body;
    const beat = (token: string) =>
      fetch(`${base}/v1/heartbeat`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify({ dtma_version: "1", tool_statuses: [] }),
      }).then((r) => r.status);
    assert.equal(await beat(before.dtma_token as string), 204);

    const rotated = await call("POST", `/v1/toolboxes/${account}/rotate-tokens`);
    assert.equal(rotated.status, 202, JSON.stringify(rotated.body));
    assert.equal(rotated.body.operation.kind, "rotate_tokens");
    const events = await readEvents(base, rotated.body.operation.id as string);
    assert.equal(events.at(-1)!.data.status, "succeeded");
    assert.equal(engine.calls.at(-1)!.config.tokenGeneration, 1, "the generation went up by one");

    const after = (await call("GET", `/v1/toolboxes/${account}/tokens`)).body;
    assert.notEqual(after.dtma_token, before.dtma_token);
    assert.equal(after.dtma_token_previous, before.dtma_token);
    assert.notEqual(after.backend_api_token, before.backend_api_token);
    assert.equal(await beat(after.dtma_token as string), 204, "the new token");
    assert.equal(
      await beat(before.dtma_token as string),
      204,
      "the previous one, during the window",
    );
    const toolbox = (await call("GET", `/v1/toolboxes/${account}`)).body.toolbox;
    assert.equal(toolbox.status, "active", "a rotation keeps the toolbox as it was");

    const again = await call("POST", `/v1/toolboxes/${account}/rotate-tokens`);
    await readEvents(base, again.body.operation.id as string);
    assert.equal(
      await beat(before.dtma_token as string),
      401,
      "two rotations on, the old token is gone",
    );
    const unknown = await call("POST", `/v1/toolboxes/${newAccount()}/rotate-tokens`);
    assert.equal(unknown.status, 404);
  });
});
