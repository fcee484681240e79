import type { Queryable } from "../db/rows";

/** An event of a fleet operation (an upgrade or a reconciliation run), as its stream sends it. */
export interface FleetEvent {
  type: string;
  message?: string;
  data?: unknown;
}

export interface FleetEventRow {
  id: string;
  at: Date;
  type: string;
  message: string | null;
  data: unknown;
}

/** Writes events in array order (their ids follow it), as one statement. */
export async function addFleetEvents(
  db: Queryable,
  operationId: string,
  events: FleetEvent[],
): Promise<void> {
  if (events.length === 0) return;
  await db.query(
    `insert into fleet_operation_events (operation_id, type, message, data)
     select $1::uuid, t.type, t.message, t.data
     from rows from (jsonb_to_recordset($2::jsonb) as (type text, message text, data jsonb))
       with ordinality as t(type, message, data, ord)
     order by t.ord`,
    [
      operationId,
      JSON.stringify(
        events.map((e) => ({ type: e.type, message: e.message ?? null, data: e.data ?? null })),
      ),
    ],
  );
}

export async function fleetEventsAfter(
  db: Queryable,
  operationId: string,
  afterId: string,
  limit = 500,
): Promise<FleetEventRow[]> {
  const { rows } = await db.query<FleetEventRow>(
    `select id::text, at, type, message, data from fleet_operation_events
     where operation_id = $1 and id > $2 order by id limit $3`,
    [operationId, afterId, limit],
  );
  return rows;
}
