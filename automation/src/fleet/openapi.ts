/** The fleet routes in OpenAPI 3.1 (merged into /openapi.json by openapi.ts). */
import { FINDING_KINDS } from "./reconcileRequest";
import { TARGET_STATES } from "./records";

const bearer = [{ bearer: [] }];
const err = (description: string) => ({
  description,
  content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } },
});
const ok = (description: string) => ({ description, content: { "application/json": {} } });
const idParam = {
  name: "id",
  in: "path",
  required: true,
  schema: { type: "string", format: "uuid" },
};
const refused = {
  "400": err("bad input (names the field)"),
  "401": err("no or invalid token"),
  "403": err("not the service token"),
};
const image = {
  type: "string",
  description: "image reference (pinned by digest where the environment requires it)",
};

const upgradeBody = {
  type: "object",
  required: ["dtma_image", "backend_image"],
  additionalProperties: false,
  properties: {
    dtma_image: image,
    backend_image: image,
    canary_accounts: { type: "array", items: { type: "string", format: "uuid" }, maxItems: 1000 },
    canary_count: { type: "integer", minimum: 0, description: "not with canary_accounts" },
    waves: {
      type: "array",
      items: { type: "number", exclusiveMinimum: 0, maximum: 100 },
      description:
        "cumulative percentages of the toolboxes after the canaries, increasing, ending with 100 (default [1, 10, 50, 100])",
    },
    max_failure_ratio: { type: "number", minimum: 0, maximum: 1, default: 0.1 },
    health_deadline_seconds: { type: "integer", minimum: 5, maximum: 86400, default: 600 },
    rollback: { type: "string", enum: ["failed", "wave"], default: "failed" },
    on_busy: { type: "string", enum: ["wait", "skip"], default: "wait" },
    busy_wait_seconds: { type: "integer", minimum: 0, maximum: 86400, default: 900 },
    concurrency: {
      type: "integer",
      minimum: 1,
      description: "most toolboxes upgrading at once (default: the workers' slots)",
    },
  },
};

const control = (summary: string) => ({
  parameters: [idParam],
  post: {
    summary,
    security: bearer,
    responses: {
      "200": ok("{ upgrade }"),
      "404": err("no such upgrade"),
      "409": err("the upgrade can no longer be changed so"),
      ...refused,
    },
  },
});

export const fleetPaths = {
  "/v1/upgrades": {
    post: {
      summary:
        "Start a fleet upgrade (service token): health-gated waves, one per environment at a time",
      security: bearer,
      requestBody: { required: true, content: { "application/json": { schema: upgradeBody } } },
      responses: {
        "202": ok("{ upgrade }: status, plan, current_wave, counts by state and wave"),
        "409": err("another upgrade of this environment is unfinished (upgrade_in_progress)"),
        ...refused,
      },
    },
    get: {
      summary: "Recent upgrades (?status=&limit=)",
      security: bearer,
      responses: { "200": ok("{ upgrades }"), ...refused },
    },
  },
  "/v1/upgrades/{id}": {
    parameters: [idParam],
    get: {
      summary: "An upgrade with its counts by state and wave",
      security: bearer,
      responses: { "200": ok("{ upgrade }"), "404": err("no such upgrade"), ...refused },
    },
  },
  "/v1/upgrades/{id}/toolboxes": {
    parameters: [idParam],
    get: {
      summary: `Its toolboxes (?state=${TARGET_STATES.join("|")}&wave=&after=&limit=), each with its reason`,
      security: bearer,
      responses: { "200": ok("{ toolboxes, next }"), "404": err("no such upgrade"), ...refused },
    },
  },
  "/v1/upgrades/{id}/events": {
    parameters: [idParam],
    get: {
      summary:
        "Server-sent events (per wave, per toolbox, with reasons), ending with `end` once finished",
      security: bearer,
      responses: {
        "200": { description: "text/event-stream" },
        "404": err("no such upgrade"),
        ...refused,
      },
    },
  },
  "/v1/upgrades/{id}/stop": control("Stop: nothing new starts, queued steps are withdrawn"),
  "/v1/upgrades/{id}/resume": control("Resume a stopped upgrade"),
  "/v1/upgrades/{id}/abort": control("Abort: toolboxes not started are skipped"),
  "/v1/reconciliations": {
    post: {
      summary: "Start a reconciliation run (service token): a dry run unless dry_run is false",
      security: bearer,
      requestBody: {
        content: {
          "application/json": {
            schema: {
              type: "object",
              additionalProperties: false,
              properties: {
                dry_run: { type: "boolean", default: true },
                act_on: { type: "array", items: { type: "string", enum: [...FINDING_KINDS] } },
                heartbeat_threshold_seconds: { type: "integer", minimum: 60 },
              },
            },
          },
        },
      },
      responses: {
        "202": ok("{ reconciliation }"),
        "409": err("a run is unfinished (reconciliation_in_progress)"),
        ...refused,
      },
    },
    get: {
      summary: "Recent runs (?limit=)",
      security: bearer,
      responses: { "200": ok("{ reconciliations }"), ...refused },
    },
  },
  "/v1/reconciliations/{id}": {
    parameters: [idParam],
    get: {
      summary: "A run; its result is the report: counts and findings (kind, reason, action)",
      security: bearer,
      responses: { "200": ok("{ reconciliation }"), "404": err("no such run"), ...refused },
    },
  },
  "/v1/reconciliations/{id}/events": {
    parameters: [idParam],
    get: {
      summary: "Server-sent events of a run, ending with `end`",
      security: bearer,
      responses: { "200": { description: "text/event-stream" }, ...refused },
    },
  },
  "/v1/fleet/versions": {
    get: {
      summary: "Which images each live toolbox runs and since when (?after=&limit=)",
      security: bearer,
      responses: { "200": ok("{ toolboxes: [{deployed, wanted, reported}], next }"), ...refused },
    },
  },
  "/v1/fleet/versions/{account_id}": {
    parameters: [{ ...idParam, name: "account_id" }],
    get: {
      summary: "One toolbox's images and their history",
      security: bearer,
      responses: { "200": ok("{ toolbox, history }"), "404": err("no toolbox"), ...refused },
    },
  },
} as const;
