import type { FastifyInstance } from "fastify";
import { authorizeAccount, HttpError } from "../auth/auth";
import { eventsAfter, getOperation } from "../db/rows";
import type { AppDeps } from "../app";
import { operationView } from "./views";
import { operationParams, parse } from "./validation";

export function operationRoutes(app: FastifyInstance, deps: AppDeps): void {
  const load = async (params: unknown, req: Parameters<AppDeps["authenticate"]>[0]) => {
    const principal = await deps.authenticate(req);
    const { id } = parse(operationParams, params, "id");
    const op = await getOperation(deps.pool, id);
    if (!op) throw new HttpError(404, "not_found", "no such operation");
    authorizeAccount(principal, op.account_id);
    return op;
  };

  app.get("/v1/operations/:id", async (req) => ({
    operation: operationView(await load(req.params, req)),
  }));

  /**
   * Server-sent events: every recorded event from the start (or after Last-Event-ID), then new
   * ones as workers anywhere write them, then `end` once the operation is final.
   */
  app.get("/v1/operations/:id/events", async (req, reply) => {
    const op = await load(req.params, req);
    const lastId = req.headers["last-event-id"];
    let after = typeof lastId === "string" && /^\d{1,18}$/.test(lastId) ? lastId : "0";
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      "content-type": "text/event-stream",
      "cache-control": "no-store",
      connection: "keep-alive",
      "x-accel-buffering": "no",
    });
    let open = true;
    const stop = () => (open = false);
    req.raw.on("close", stop);
    deps.streams.add(stop);
    let idle = 0;
    try {
      while (open) {
        const events = await eventsAfter(deps.pool, op.id, after);
        for (const e of events) {
          const data = { type: e.type, message: e.message, data: e.data, at: e.at };
          res.write(`id: ${e.id}\nevent: ${e.type}\ndata: ${JSON.stringify(data)}\n\n`);
          after = e.id;
        }
        if (events.length === 0) {
          const current = await getOperation(deps.pool, op.id);
          const final = current?.status === "succeeded" || current?.status === "failed";
          // Re-check after reading the status: a final event may have landed in between.
          if (final && (await eventsAfter(deps.pool, op.id, after, 1)).length === 0) {
            res.write(`event: end\ndata: ${JSON.stringify({ status: current.status })}\n\n`);
            break;
          }
          if (++idle % Math.ceil(15000 / deps.ssePollMs) === 0) res.write(": keep-alive\n\n");
          await new Promise((r) => setTimeout(r, deps.ssePollMs));
        }
      }
    } catch (err) {
      req.log.warn({ err: (err as Error).message }, "event stream ended early");
    } finally {
      deps.streams.delete(stop);
      res.end();
    }
  });
}
