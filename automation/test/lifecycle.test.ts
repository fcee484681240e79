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
      "select tokens_ciphertext, dtma_token_hash from account_tool_environments where account_id = $1",
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
});
