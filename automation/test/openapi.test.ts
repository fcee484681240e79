/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-unsafe-argument, @typescript-eslint/no-unsafe-return, @typescript-eslint/no-explicit-any -- the document is JSON, checked by assertions */
/**
 * The OpenAPI document cannot drift from the routes (issue 12): every route the app serves is in
 * it, and each route's parameters and body are the JSON Schema of the zod schemas fastify
 * validates that route with; the answers it describes by schema are what the routes send.
 */
import assert from "node:assert/strict";
import Fastify, { type RouteOptions } from "fastify";
import { z } from "zod";
import { registerRoutes } from "../src/app";
import { TestEngine } from "../src/engine/testEngine";
import type { AppDeps } from "../src/routes/deps";
import type { FleetApi } from "../src/routes/fleet";
import type { RunningService } from "../src/service";
import { auth, newAccount, stackSettings, startTestService, waitFor } from "./helpers";

type Doc = Record<string, any>;

/** What zod says a request part may hold, as the document must say it. */
const jsonSchemaOf = (schema: unknown): Doc => {
  assert.ok(schema instanceof z.ZodType, "a route validates with a zod schema");
  const json: Doc = z.toJSONSchema(schema, { io: "input" });
  delete json.$schema;
  return json;
};

/** `METHOD /path/{param}` of every route in fastify's own listing of the app (HEAD is its own). */
function servedRoutes(tree: string): string[] {
  const stack: string[] = [];
  const out: string[] = [];
  for (const line of tree.split("\n")) {
    const m = /^([│ ]*)[├└]── (\S+) \(([A-Z, ]+)\)$/.exec(line);
    if (!m) continue;
    const depth = m[1].length / 4;
    stack.length = depth;
    stack.push(m[2]);
    const path = stack.join("").replace(/:(\w+)/g, "{$1}");
    for (const method of m[3].split(", ")) if (method !== "HEAD") out.push(`${method} ${path}`);
  }
  return out.sort();
}

const documented = (doc: Doc) =>
  Object.entries(doc.paths as Record<string, Record<string, unknown>>)
    .flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`))
    .sort();

describe("OpenAPI document: generated from the routes' zod schemas", function () {
  this.timeout(120_000);
  let svc: RunningService;
  let doc: Doc;
  before(async () => {
    svc = await startTestService({ engine: new TestEngine() });
    const res = await svc.app.inject({ url: "/openapi.json", headers: auth });
    assert.equal(res.statusCode, 200);
    doc = res.json();
  });
  after(() => svc.stop());

  it("lists every route the app serves, and nothing else", () => {
    const served = servedRoutes(svc.app.printRoutes({ commonPrefix: false }));
    assert.ok(served.length >= 25, served.join("\n"));
    assert.deepEqual(documented(doc), served);
  });

  it("gives each route the parameters and body of the zod schemas it validates with", () => {
    // The same registration the app runs, on an app of the test's own that records each route.
    const app = Fastify();
    const routes: RouteOptions[] = [];
    app.addHook("onRoute", (r) => void routes.push(r));
    const offer = { regions: stackSettings.allowedRegions, sizes: stackSettings.allowedSizes };
    // Registering reads only what the schemas are made of: the offer and the fleet's settings
    // (startTestService's: no digest pins).
    const deps = { offer } as AppDeps;
    const fleet = { settings: { environment: "test", requireDigestPins: false } } as FleetApi;
    registerRoutes(app, deps, fleet);

    const checked = new Set<string>();
    for (const r of routes) {
      for (const method of [r.method].flat().filter((m) => m !== "HEAD")) {
        const path = r.url.replace(/:(\w+)/g, "{$1}");
        const what = `${method} ${path}`;
        const op = doc.paths[path]?.[method.toLowerCase()];
        assert.ok(op, `${what} is documented`);
        checked.add(what);
        const schema = (r.schema ?? {}) as Record<string, unknown>;

        const params = (op.parameters ?? []) as { name: string; in: string; required: boolean }[];
        const asObject = (where: string) =>
          Object.fromEntries(
            params.filter((p) => p.in === where).map((p: Doc) => [p.name, p.schema]),
          );
        const pathNames = [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();
        assert.deepEqual(Object.keys(asObject("path")).sort(), pathNames, what);
        if (pathNames.length > 0) {
          assert.deepEqual(asObject("path"), jsonSchemaOf(schema.params).properties, what);
        }
        if (schema.querystring === undefined) {
          assert.deepEqual(asObject("query"), {}, what);
        } else {
          const query = jsonSchemaOf(schema.querystring);
          assert.deepEqual(asObject("query"), query.properties, what);
          const required = params.filter((p) => p.in === "query" && p.required).map((p) => p.name);
          assert.deepEqual(required, query.required ?? [], what);
        }
        if (schema.body === undefined) {
          assert.equal(op.requestBody, undefined, what);
        } else {
          assert.deepEqual(
            op.requestBody.content["application/json"].schema,
            jsonSchemaOf(schema.body),
            what,
          );
        }

        const mode = (r.config as { auth?: string } | undefined)?.auth ?? "principal";
        const security =
          mode === "none" ? undefined : [mode === "dtma" ? { dtmaToken: [] } : { bearer: [] }];
        assert.deepEqual(op.security, security, what);
      }
    }
    // Every documented route but the document's own was checked against its registration.
    assert.deepEqual(
      documented(doc).filter((r) => !checked.has(r)),
      ["GET /openapi.json"],
    );
  });

  it("describes by schema what the routes answer (every $ref resolves)", async () => {
    for (const [, name] of JSON.stringify(doc).matchAll(/"#\/components\/schemas\/(\w+)"/g)) {
      assert.ok(doc.components.schemas[name], name);
    }
    // The answers checked against the document's own schemas (its refs as zod reads them).
    const schemas = JSON.parse(
      JSON.stringify(doc.components.schemas).replaceAll("#/components/schemas/", "#/$defs/"),
    );
    const answers = (name: string) => z.fromJSONSchema({ ...schemas[name], $defs: schemas });
    const check = (name: string, body: unknown) => {
      const result = answers(name).safeParse(body);
      assert.ok(result.success, `${name}: ${result.error?.message} in ${JSON.stringify(body)}`);
    };
    const account = newAccount();
    const created = await svc.app.inject({
      method: "POST",
      url: "/v1/toolboxes",
      headers: auth,
      payload: { account_id: account },
    });
    assert.equal(created.statusCode, 202, created.body);
    check("Accepted", created.json());
    const opId = created.json().operation.id as string;
    const op = await waitFor("the provision", async () => {
      const res = await svc.app.inject({ url: `/v1/operations/${opId}`, headers: auth });
      return res.json().operation.status === "succeeded" ? res : undefined;
    });
    check("OperationAnswer", op.json());
    const refused = await svc.app.inject({ url: "/v1/toolboxes/not-a-uuid", headers: auth });
    assert.equal(refused.statusCode, 400);
    check("Error", refused.json());
    // A document schema refuses what the route would not send.
    assert.equal(answers("Accepted").safeParse({ toolbox: { account_id: 1 } }).success, false);
  });
});
