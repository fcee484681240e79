import type { FastifyInstance, FastifyReply } from "fastify";
import { authorizeAccount, HttpError, requireService } from "../auth/auth";
import { getTokensCiphertext, getToolbox } from "../db/rows";
import type { RequestOutcome } from "../toolboxService";
import type { AppDeps } from "./deps";
import { operationView, toolboxView } from "./views";
import { accountParams, parse, provisionBody } from "./validation";

export function toolboxRoutes(app: FastifyInstance, deps: AppDeps): void {
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

  app.post("/v1/toolboxes", async (req, reply) => {
    const principal = await deps.authenticate(req);
    const body = parse(provisionSchema, req.body, "body");
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

  app.get("/v1/toolboxes/:account_id", async (req) => {
    const principal = await deps.authenticate(req);
    const { account_id } = parse(accountParams, req.params, "account_id");
    authorizeAccount(principal, account_id);
    const row = await getToolbox(deps.pool, account_id);
    if (!row) throw new HttpError(404, "not_found", "no toolbox for this account");
    return { toolbox: toolboxView(row, deps.heartbeatTimeoutSeconds) };
  });

  const serviceOnly = { config: { auth: "service" as const } };
  app.get("/v1/toolboxes/:account_id/tokens", serviceOnly, async (req) => {
    const principal = await deps.authenticate(req);
    requireService(principal);
    const { account_id } = parse(accountParams, req.params, "account_id");
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
  });

  app.delete("/v1/toolboxes/:account_id", async (req, reply) => {
    const principal = await deps.authenticate(req);
    const { account_id } = parse(accountParams, req.params, "account_id");
    authorizeAccount(principal, account_id);
    return view(await deps.service.deprovision(account_id, who(principal)), reply);
  });

  app.post("/v1/toolboxes/:account_id/rotate-tokens", serviceOnly, async (req, reply) => {
    const principal = await deps.authenticate(req);
    requireService(principal);
    const { account_id } = parse(accountParams, req.params, "account_id");
    return view(await deps.service.rotateTokens(account_id, who(principal)), reply);
  });

  app.post("/v1/toolboxes/:account_id/refresh", async (req, reply) => {
    const principal = await deps.authenticate(req);
    const { account_id } = parse(accountParams, req.params, "account_id");
    authorizeAccount(principal, account_id);
    return view(await deps.service.refresh(account_id, who(principal)), reply);
  });
}
