/**
 * The API as OpenAPI 3.1, served at /openapi.json and generated from the routes as fastify
 * registers them: each route's parameters and request body are the JSON Schema of the zod schemas
 * fastify validates it with (routes/validation.ts), its summary and responses its
 * `config.openapi`, its security its `config.auth`. A route without `config.openapi` stops the
 * app at start-up, so nothing is served that the document does not list.
 */
import type { FastifyInstance, FastifySchema } from "fastify";
import { z } from "zod";
import type { RouteAuth } from "./auth/guard";
import { errorBody } from "./http/edge";
import {
  operationAnswer,
  operationViewSchema,
  toolboxAnswer,
  toolboxViewSchema,
} from "./routes/views";

declare module "fastify" {
  interface FastifyContextConfig {
    /** The route in the OpenAPI document. */
    openapi?: RouteDoc;
  }
}

type Json = Record<string, unknown>;

export interface ResponseDoc {
  description: string;
  content?: Record<string, { schema?: Json }>;
}

export interface RouteDoc {
  summary: string;
  description?: string;
  responses: Record<string, ResponseDoc>;
}

/** The answers the document describes by schema (components.schemas). */
const COMPONENTS = {
  // A 409 adds the record it is about (operation, upgrade, reconciliation) to the error.
  Error: errorBody.loose(),
  Toolbox: toolboxViewSchema,
  Operation: operationViewSchema,
  Accepted: toolboxAnswer,
  OperationAnswer: operationAnswer,
};
type Component = keyof typeof COMPONENTS;

const component = (name: Component) => ({ $ref: `#/components/schemas/${name}` });
const json = (description: string, schema: Json): ResponseDoc => ({
  description,
  content: { "application/json": { schema } },
});

/** An answer whose body is one of the components. */
export const answer = (description: string, name: Component) => json(description, component(name));
/** A refusal: the Error body. */
export const refusal = (description: string) => answer(description, "Error");
/** A JSON answer the document describes in words only. */
export const prose = (description: string): ResponseDoc => ({
  description,
  content: { "application/json": {} },
});
/** What a route taking a user's session or the service token may refuse. */
const principalRefusals = {
  "400": refusal("bad input (names the field)"),
  "401": refusal("no or invalid token"),
  "403": refusal("not your account"),
};
/** What a route of the service token's only may refuse. */
const serviceRefusals = {
  ...principalRefusals,
  "403": refusal("not the service token"),
};
export const eventStream: ResponseDoc = {
  description: "server-sent events",
  content: { "text/event-stream": {} },
};
/** A principal holds so many event streams at once (events/eventStreams.ts). */
export const tooManyStreams = refusal("too many open streams (too_many_streams, with Retry-After)");

/**
 * A route's options: who may call it, the zod schemas of its input (validated by fastify, typed
 * for the handler) and its description, with the refusals every route of that kind may answer.
 */
export function apiRoute<S extends FastifySchema = Record<never, never>>(
  auth: "principal" | "service",
  openapi: RouteDoc,
  schema?: S,
) {
  const refusals = auth === "service" ? serviceRefusals : principalRefusals;
  return {
    schema: schema ?? ({} as S),
    config: { auth, openapi: { ...openapi, responses: { ...refusals, ...openapi.responses } } },
  };
}

const SECURITY: Record<RouteAuth, Json[] | undefined> = {
  none: undefined,
  principal: [{ bearer: [] }],
  service: [{ bearer: [] }],
  dtma: [{ dtmaToken: [] }],
};

/** A route as fastify registered it: what it validates with and how it is described. */
interface RegisteredRoute {
  method: string;
  url: string;
  auth: RouteAuth;
  schema: { params?: unknown; querystring?: unknown; body?: unknown };
  doc?: RouteDoc;
}

/** Records every route registered on `app` from now on (HEAD routes are fastify's own). */
function registeredRoutes(app: FastifyInstance): RegisteredRoute[] {
  const routes: RegisteredRoute[] = [];
  app.addHook("onRoute", (r) => {
    for (const method of [r.method].flat()) {
      if (method === "HEAD") continue;
      routes.push({
        method,
        url: r.url,
        auth: r.config?.auth ?? "principal",
        schema: r.schema ?? {},
        doc: r.config?.openapi,
      });
    }
  });
  return routes;
}

function zod(schema: unknown, where: string): z.ZodType {
  if (schema instanceof z.ZodType) return schema;
  throw new Error(`${where}: not a zod schema`);
}

/** A schema as the document holds it: in OpenAPI 3.1's dialect (2020-12), named by its place. */
function embedded({ $schema: _, $id: __, ...rest }: Json): Json {
  return rest;
}

/** A request part's JSON Schema: what a client may send. */
function requestSchema(schema: z.ZodType): Json {
  return embedded(z.toJSONSchema(schema, { io: "input" }));
}

function parameters(where: "path" | "query", schema: unknown, route: string): Json[] {
  if (schema === undefined) return [];
  const json = requestSchema(zod(schema, route)) as {
    properties?: Record<string, Json>;
    required?: string[];
  };
  return Object.entries(json.properties ?? {}).map(([name, s]) => ({
    name,
    in: where,
    required: where === "path" || (json.required ?? []).includes(name),
    schema: s,
  }));
}

function operation(r: RegisteredRoute): Json {
  const where = `${r.method} ${r.url}`;
  if (!r.doc) throw new Error(`${where}: no config.openapi (every route is in the document)`);
  const params = [
    ...parameters("path", r.schema.params, where),
    ...parameters("query", r.schema.querystring, where),
  ];
  const body = r.schema.body === undefined ? undefined : zod(r.schema.body, where);
  return {
    summary: r.doc.summary,
    ...(r.doc.description ? { description: r.doc.description } : {}),
    ...(SECURITY[r.auth] ? { security: SECURITY[r.auth] } : {}),
    ...(params.length > 0 ? { parameters: params } : {}),
    ...(body
      ? {
          requestBody: {
            // An absent body is an empty one: required only where {} is refused.
            required: !body.safeParse({}).success,
            content: { "application/json": { schema: requestSchema(body) } },
          },
        }
      : {}),
    responses: r.doc.responses,
  };
}

/** The answers' schemas; dates go out as JSON.stringify writes them (ISO 8601). */
function componentSchemas(): Json {
  const registry = z.registry<{ id: string }>();
  for (const [id, schema] of Object.entries(COMPONENTS)) registry.add(schema, { id });
  const { schemas } = z.toJSONSchema(registry, {
    uri: (id) => `#/components/schemas/${id}`,
    override: (ctx) => {
      if (ctx.zodSchema._zod.def.type === "date") {
        ctx.jsonSchema.type = "string";
        ctx.jsonSchema.format = "date-time";
      }
    },
    unrepresentable: "any",
  });
  return Object.fromEntries(Object.entries(schemas).map(([id, schema]) => [id, embedded(schema)]));
}

function openApiDocument(routes: readonly RegisteredRoute[]): Json {
  const paths: Record<string, Json> = {};
  for (const r of routes) {
    const path = r.url.replace(/:(\w+)/g, "{$1}");
    paths[path] = { ...paths[path], [r.method.toLowerCase()]: operation(r) };
  }
  return {
    openapi: "3.1.0",
    info: { title: "Agentopia toolbox automation", version: "1" },
    components: {
      securitySchemes: {
        bearer: {
          type: "http",
          scheme: "bearer",
          description: "service token or Supabase session JWT",
        },
        dtmaToken: { type: "http", scheme: "bearer", description: "the toolbox's own DTMA token" },
      },
      schemas: componentSchemas(),
    },
    paths,
  };
}

/**
 * Serves the document of every route registered after this call (and of its own), built once
 * when the app is ready: a route left undescribed fails the start.
 */
export function serveOpenApi(app: FastifyInstance): void {
  const routes = registeredRoutes(app);
  let document: Json | undefined;
  app.addHook("onReady", () => {
    document = openApiDocument(routes);
    return Promise.resolve();
  });
  app.get(
    "/openapi.json",
    {
      config: {
        openapi: {
          summary: "This document",
          responses: { "200": prose("OpenAPI 3.1"), "401": refusal("no or invalid token") },
        },
      },
    },
    () => Promise.resolve(document),
  );
}
