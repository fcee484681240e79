import type { FastifyReply, FastifyRequest } from "fastify";
import type { Pool } from "pg";
import { fleetEventsAfter } from "../fleet/events";
import { getFleetOperation } from "../fleet/records";

export interface StreamDeps {
  pool: Pool;
  ssePollMs: number;
  streams: Set<() => void>;
}

/**
 * A fleet operation's events in the operations' server-sent-events style: every recorded
 * event from the start (or after Last-Event-ID), then new ones as drivers anywhere write them,
 * then `end` once the operation is final (an upgrade: finished; a stopped upgrade's stream
 * stays open, since it may be resumed).
 */
export async function streamFleetEvents(
  deps: StreamDeps,
  req: FastifyRequest,
  reply: FastifyReply,
  id: string,
): Promise<void> {
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
      const events = await fleetEventsAfter(deps.pool, id, after);
      for (const e of events) {
        const data = { type: e.type, message: e.message, data: e.data, at: e.at };
        res.write(`id: ${e.id}\nevent: ${e.type}\ndata: ${JSON.stringify(data)}\n\n`);
        after = e.id;
      }
      if (events.length > 0) continue;
      const current = await getFleetOperation(deps.pool, id);
      if (current?.finished_at && (await fleetEventsAfter(deps.pool, id, after, 1)).length === 0) {
        res.write(`event: end\ndata: ${JSON.stringify({ status: current.status })}\n\n`);
        break;
      }
      if (++idle % Math.ceil(15000 / deps.ssePollMs) === 0) res.write(": keep-alive\n\n");
      await new Promise((r) => setTimeout(r, deps.ssePollMs));
    }
  } catch (err) {
    req.log.warn({ err: (err as Error).message }, "event stream ended early");
  } finally {
    deps.streams.delete(stop);
    res.end();
  }
}
