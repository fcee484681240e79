/* eslint-disable @typescript-eslint/no-unsafe-member-access -- JSON responses are checked by assertions */
import assert from "node:assert/strict";
import http from "node:http";
import type { Pool } from "pg";
import { supabaseVerifier } from "../../src/auth/auth";
import type { AddressInfo } from "node:net";
import { addEvent } from "../../src/db/rows";
import { TestEngine } from "../../src/engine/testEngine";
import { addFleetEvents } from "../../src/fleet/events";
import { startFleetService } from "../fixtures/fleetService";
import { supabaseIssuer, type SupabaseIssuer } from "../fixtures/supabaseIssuer";
import { auth, newAccount, requestToolbox, SERVICE_TOKEN, waitFor } from "../helpers";
import { loggedService, troubling, type LoggedService } from "./kit";

// Issue 13, item 9 (the automation half): 1,500 event-stream listeners each queried Postgres
// every 250 ms (RSS +80 MB, not returned). Streams are now woken by NOTIFY (one LISTEN
// connection per process; one read per operation per wake, shared by all its listeners), idle
// ones cost the database nothing, and each principal may hold only so many at once.

export interface SseClient {
  events: { id?: string; event: string; data: string }[];
  /** Everything the answer said, as text (a refusal's JSON). */
  body(): string;
  headers: Promise<http.IncomingHttpHeaders>;
  status: Promise<number>;
  ended: Promise<void>;
  close(): void;
}

/** Streams not yet ended, closed after each test (a failed test must not leave them open). */
const open = new Set<http.ClientRequest>();

/** A raw event-stream reader (its own socket, as each browser tab would have). */
export function openStream(base: string, path: string, token: string): SseClient {
  const events: SseClient["events"] = [];
  let text = "";
  let resolveHeaders!: (h: http.IncomingHttpHeaders) => void;
  const headers = new Promise<http.IncomingHttpHeaders>((r) => (resolveHeaders = r));
  let resolveStatus!: (s: number) => void;
  let resolveEnded!: () => void;
  const status = new Promise<number>((r) => (resolveStatus = r));
  const ended = new Promise<void>((r) => (resolveEnded = r));
  const req = http.get(
    `${base}${path}`,
    { headers: { authorization: `Bearer ${token}` }, agent: false },
    (res) => {
      resolveHeaders(res.headers);
      resolveStatus(res.statusCode ?? 0);
      let buffer = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        text += chunk;
        buffer += chunk;
        let split: number;
        while ((split = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, split);
          buffer = buffer.slice(split + 2);
          const fields = Object.fromEntries(
            block
              .split("\n")
              .filter((l) => !l.startsWith(":") && l.includes(": "))
              .map((l) => [l.slice(0, l.indexOf(": ")), l.slice(l.indexOf(": ") + 2)]),
          ) as Record<string, string>;
          if (fields.event) events.push({ id: fields.id, event: fields.event, data: fields.data });
        }
      });
      res.on("close", resolveEnded);
    },
  );
  req.on("error", () => {
    resolveStatus(0);
    resolveEnded();
  });
  open.add(req);
  void ended.then(() => open.delete(req));
  return { events, body: () => text, headers, status, ended, close: () => req.destroy() };
}

/** Waits until `cond` holds (an eventual state, not a timing assertion). */
const until = (what: string, cond: () => boolean) =>
  waitFor(what, () => Promise.resolve(cond() ? true : undefined));

/** Counts the queries of `pool` that read the events (and statuses) of `table`'s operations. */
function countEventReads(pool: Pool, table = "toolbox_operation_events"): { reads: number } {
  const counter = { reads: 0 };
  const query = pool.query.bind(pool) as (...args: unknown[]) => unknown;
  (pool as unknown as { query: (...args: unknown[]) => unknown }).query = (...args) => {
    const text = typeof args[0] === "string" ? args[0] : (args[0] as { text?: string }).text;
    if (text?.includes(table)) counter.reads++;
    return query(...args);
  };
  return counter;
}

describe("security (issue 13, item 9): event streams are woken by notification and capped per principal", function () {
  this.timeout(120_000);
  let issuer: SupabaseIssuer;
  let svc: LoggedService;
  let reads: { reads: number };
  const owner = newAccount();
  let session: string;

  before(async () => {
    issuer = await supabaseIssuer();
    // API only: operations stay queued, and the test writes their events as a worker would.
    svc = await loggedService({
      workerConcurrency: 0,
      sessions: supabaseVerifier(issuer.url, "anon-key"),
      eventStreamsPerUser: 3,
      eventStreamsPerService: 200,
    });
    reads = countEventReads(svc.pool);
    session = await issuer.session(owner);
  });
  afterEach(() => {
    for (const req of open) req.destroy();
  });
  after(async () => {
    await svc.stop();
    await issuer.close();
  });

  const operation = (account = newAccount()) => requestToolbox(svc, account);
  const finish = (id: string) =>
    svc.pool.query(
      "update toolbox_operations set status = 'succeeded', finished_at = now() where id = $1",
      [id],
    );

  it("100 idle listeners cost Postgres no query; an event reaches them all with one read, and the end too", async () => {
    const id = await operation();
    const streams = Array.from({ length: 100 }, () =>
      openStream(svc.base, `/v1/operations/${id}/events`, SERVICE_TOKEN),
    );
    assert.ok((await Promise.all(streams.map((s) => s.status))).every((s) => s === 200));
    await until("every stream has the queued event", () =>
      streams.every((s) => s.events.length === 1),
    );

    const idle = reads.reads;
    await new Promise((r) => setTimeout(r, 800));
    assert.equal(reads.reads - idle, 0, "idle streams read nothing");

    const before = reads.reads;
    await addEvent(svc.pool, id, "resourcePreEvent", "creating the droplet");
    await until("every stream has the new event", () =>
      streams.every((s) => s.events.length === 2),
    );
    assert.ok(
      reads.reads - before - 1 <= 2,
      `${reads.reads - before - 1} reads for one event and 100 listeners`,
    );
    assert.ok(streams.every((s) => s.events[1].event === "resourcePreEvent"));

    await finish(id);
    await Promise.all(streams.map((s) => s.ended));
    for (const s of streams) {
      assert.equal(s.events.at(-1)?.event, "end");
      assert.deepEqual(JSON.parse(s.events.at(-1)!.data), { status: "succeeded" });
    }
    assert.deepEqual(troubling(svc.lines), []);
  });

  it("Last-Event-ID resumes after that event; a stream of a finished operation replays and ends", async () => {
    const id = await operation();
    await addEvent(svc.pool, id, "one");
    await addEvent(svc.pool, id, "two");
    await finish(id);
    const all = openStream(svc.base, `/v1/operations/${id}/events`, SERVICE_TOKEN);
    await all.ended;
    assert.deepEqual(
      all.events.map((e) => e.event),
      ["queued", "one", "two", "end"],
    );
    const resumed = await new Promise<string>((resolve, reject) => {
      http
        .get(
          `${svc.base}/v1/operations/${id}/events`,
          { headers: { ...auth, "last-event-id": all.events[1].id! } },
          (res) => {
            let text = "";
            res.setEncoding("utf8");
            res.on("data", (c: string) => (text += c));
            res.on("end", () => resolve(text));
          },
        )
        .on("error", reject);
    });
    assert.deepEqual(
      [...resumed.matchAll(/^event: (.+)$/gm)].map((m) => m[1]),
      ["two", "end"],
    );
  });

  it("a user holds at most EVENT_STREAMS_PER_USER streams (429 too_many_streams), the service its own number", async () => {
    const id = await operation(owner);
    const path = `/v1/operations/${id}/events`;
    const mine = [1, 2, 3].map(() => openStream(svc.base, path, session));
    assert.deepEqual(await Promise.all(mine.map((s) => s.status)), [200, 200, 200]);
    const refused = openStream(svc.base, path, session);
    assert.equal(await refused.status, 429);
    await refused.ended;
    assert.equal((JSON.parse(refused.body()) as { error: string }).error, "too_many_streams");
    assert.ok(Number((await refused.headers)["retry-after"]) >= 1);
    const service = openStream(svc.base, path, SERVICE_TOKEN);
    assert.equal(await service.status, 200, "the service's streams are counted apart");

    mine[0].close();
    await mine[0].ended;
    const again = await waitFor("a slot is free again", async () => {
      const s = openStream(svc.base, path, session);
      if ((await s.status) === 200) return s;
      s.close();
      return undefined;
    });
    await finish(id);
    await Promise.all([again, service, ...mine.slice(1)].map((s) => s.ended));
  });

  it("the LISTEN connection lost: streams still get their events (it reconnects, and reads what it missed)", async () => {
    const id = await operation();
    const stream = openStream(svc.base, `/v1/operations/${id}/events`, SERVICE_TOKEN);
    assert.equal(await stream.status, 200);
    await until("the queued event", () => stream.events.length === 1);
    const { rowCount } = await svc.pool.query(
      `select pg_terminate_backend(pid) from pg_stat_activity
       where datname = current_database() and query ilike 'listen %toolbox_operation_events%'`,
    );
    assert.equal(rowCount, 1, "the streams' LISTEN connection");
    await addEvent(svc.pool, id, "afterTheCut");
    await until("the event written while the listener was away", () =>
      stream.events.some((e) => e.event === "afterTheCut"),
    );
    await finish(id);
    await stream.ended;
    assert.equal(stream.events.at(-1)?.event, "end");
  });
});

describe("security (issue 13, item 9): fleet operations' event streams are woken by notification too", function () {
  this.timeout(120_000);
  let svc: Awaited<ReturnType<typeof startFleetService>>;
  let base: string;
  before(async () => {
    // No worker: the reconciliation stays queued, and the test writes its events.
    svc = await startFleetService({ engine: new TestEngine(), workerConcurrency: 0 });
    await svc.app.listen({ port: 0, host: "127.0.0.1" });
    base = `http://127.0.0.1:${(svc.app.server.address() as AddressInfo).port}`;
  });
  afterEach(() => {
    for (const req of open) req.destroy();
  });
  after(() => svc.stop());

  it("20 idle listeners of a reconciliation cost no query; its events and its end reach them all", async () => {
    const reads = countEventReads(svc.pool, "fleet_operation_events");
    const res = await svc.app.inject({
      method: "POST",
      url: "/v1/reconciliations",
      headers: auth,
      payload: {},
    });
    assert.equal(res.statusCode, 202, res.body);
    const id = res.json().reconciliation.id as string;
    const streams = Array.from({ length: 20 }, () =>
      openStream(base, `/v1/reconciliations/${id}/events`, SERVICE_TOKEN),
    );
    assert.ok((await Promise.all(streams.map((s) => s.status))).every((s) => s === 200));
    await until("every stream has the events so far", () =>
      streams.every((s) => s.events.length >= 1),
    );
    const seen = streams[0].events.length;

    const idle = reads.reads;
    await new Promise((r) => setTimeout(r, 800)); // 16 polls' worth at the tests' ssePollMs
    assert.equal(reads.reads - idle, 0, "idle streams read nothing");

    await addFleetEvents(svc.pool, id, [{ type: "probe", message: "written as a run would" }]);
    await until("every stream has the new event", () =>
      streams.every((s) => s.events.length === seen + 1),
    );
    await svc.pool.query(
      "update fleet_operations set status = 'succeeded', finished_at = now() where id = $1",
      [id],
    );
    await Promise.all(streams.map((s) => s.ended));
    assert.ok(streams.every((s) => s.events.at(-1)?.event === "end"));
  });
});
