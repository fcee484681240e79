import type { FastifyReply } from "fastify";
import { authorizeAccount, HttpError, requireService } from "../auth/auth";
import { getTokensCiphertext, getToolbox } from "../db/rows";
import { answer, apiRoute, prose, refusal } from "../openapi";
import type { RequestOutcome } from "../toolboxService";
import type { AppDeps } from "./deps";
import { operationView, toolboxView } from "./views";
import { accountParams, provisionBody, type RouteApp } from "./validation";

export function toolboxRoutes(app: RouteApp, deps: AppDeps): void {
  const provisionSchema = provisionBody(deps.offer);
  const view = (outcome: RequestOutcome, reply: FastifyReply) => {
    switch (outcome.outcome) {
      case "not_found":
        throw new HttpError(404, "not_found", "no toolbox for this account");
      case "not_provisioned":
        throw new HttpError(
          409,
          "not_provisioned",
          `the toolbox is ${outcome.toolbox.status}; tokens rotate only on a provisioned toolbox`,
        );
      case "current":
        return reply
          .code(200)
          .send({ toolbox: toolboxView(outcome.toolbox, deps.heartbeatTimeoutSeconds) });
      case "conflict":
        return reply.code(409).send({
          error: "operation_in_progress",
          message: `a ${outcome.operation.kind} operation is in progress for this account`,
          operation: operationView(outcome.operation),
        });
      default:
        return reply.code(202).send({
          toolbox: toolboxView(outcome.toolbox, deps.heartbeatTimeoutSeconds),
          operation: operationView(outcome.operation),
        });
    }
  };
  const who = (p: { kind: string; userId?: string }) =>
    p.kind === "service" ? "service" : `user:${p.userId}`;

  const byAccount = { params: accountParams };
  const busy = refusal("another operation in progress");

  const provision = {
    summary: "Provision the account's toolbox (idempotent per account)",
    responses: {
      "200": answer("already provisioned: { toolbox }", "Accepted"),
      "202": answer("queued, or the provision already queued/running", "Accepted"),
      "409": refusal("another kind of operation is in progress"),
    },
  };
  const provisionRoute = apiRoute("principal", provision, { body: provisionSchema });
  app.post("/v1/toolboxes", provisionRoute, async (req, reply) => {
    const principal = await deps.authenticate(req);
    const { body } = req;
    authorizeAccount(principal, body.account_id);
    const outcome = await deps.service.provision({
      accountId: body.account_id,
      userId: body.account_id,
      region: body.region,
      size: body.size,
      requestedBy: who(principal),
    });
    return view(outcome, reply);
  });

  const status = {
    summary: "Status, public outputs, last heartbeat, health",
    responses: { "200": answer("{ toolbox }", "Accepted"), "404": refusal("no toolbox") },
  };
  app.get("/v1/toolboxes/:account_id", apiRoute("principal", status, byAccount), async (req) => {
    const principal = await deps.authenticate(req);
    const { account_id } = req.params;
    authorizeAccount(principal, account_id);
    const row = await getToolbox(deps.pool, account_id);
    if (!row) throw new HttpError(404, "not_found", "no toolbox for this account");
    return { toolbox: toolboxView(row, deps.heartbeatTimeoutSeconds) };
  });

  const tokens = {
    summary: "The toolbox's tokens (service token only)",
    responses: {
      "200": prose("dtma_token, dtma_token_previous, backend_api_token, agent_gateway_token"),
      "404": refusal("not provisioned"),
    },
  };
  app.get(
    "/v1/toolboxes/:account_id/tokens",
    apiRoute("service", tokens, byAccount),
    async (req) => {
      const principal = await deps.authenticate(req);
      requireService(principal);
      const { account_id } = req.params;
      const ciphertext = await getTokensCiphertext(deps.pool, account_id);
      if (!ciphertext)
        throw new HttpError(404, "not_found", "this account has no provisioned toolbox");
      const t = deps.cipher.decrypt(ciphertext, account_id);
      return {
        dtma_token: t.dtmaToken,
        dtma_token_previous: t.dtmaTokenPrevious,
        backend_api_token: t.backendApiToken,
        agent_gateway_token: t.agentGatewayToken,
      };
    },
  );

  const destroy = {
    summary: "Destroy the stack; the record ends deprovisioned",
    responses: {
      "200": answer("already deprovisioned", "Accepted"),
      "202": answer("queued", "Accepted"),
      "404": refusal("no toolbox"),
      "409": busy,
    },
  };
  app.delete(
    "/v1/toolboxes/:account_id",
    apiRoute("principal", destroy, byAccount),
    async (req, reply) => {
      const principal = await deps.authenticate(req);
      const { account_id } = req.params;
      authorizeAccount(principal, account_id);
      return view(await deps.service.deprovision(account_id, who(principal)), reply);
    },
  );

  const rotate = {
    summary:
      "New tokens without a new droplet (service token only): the generation is raised and the stack updated; the previous DTMA token keeps working for one rotation",
    responses: {
      "202": answer("queued", "Accepted"),
      "404": refusal("no toolbox"),
      "409": refusal("not provisioned, or another operation in progress"),
    },
  };
  const rotateRoute = apiRoute("service", rotate, byAccount);
  app.post("/v1/toolboxes/:account_id/rotate-tokens", rotateRoute, async (req, reply) => {
    const principal = await deps.authenticate(req);
    requireService(principal);
    const { account_id } = req.params;
    return view(await deps.service.rotateTokens(account_id, who(principal)), reply);
  });

  const refresh = {
    summary: "Drift check: refresh then preview; the report is the operation's result",
    responses: { "202": answer("queued", "Accepted"), "404": refusal("no toolbox"), "409": busy },
  };
  app.post(
    "/v1/toolboxes/:account_id/refresh",
    apiRoute("principal", refresh, byAccount),
    async (req, reply) => {
      const principal = await deps.authenticate(req);
      const { account_id } = req.params;
      authorizeAccount(principal, account_id);
      return view(await deps.service.refresh(account_id, who(principal)), reply);
    },
  );
}
