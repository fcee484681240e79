-- Fleet operations' event streams are woken by notification like operations' (migration 7):
-- every statement that writes a fleet operation's events, and every change of its status or
-- finish, notifies channel agentopia_fleet_operation_events with the operation's id (delivered
-- at commit, once per id and transaction). One trigger function serves both kinds, the channel
-- its trigger's argument; migration 7's triggers move to it. Plain SQL, re-runnable.

create or replace function public.notify_operation_events() returns trigger
language plpgsql as $$
begin
  if tg_op = 'INSERT' then
    -- An events table: each operation that got events.
    perform pg_notify(tg_argv[0], ids.operation_id::text)
    from (select distinct operation_id from inserted) ids;
  else
    -- An operations table: each operation whose status or finish changed.
    perform pg_notify(tg_argv[0], changed.id::text)
    from (
      select n.id from inserted n join previous o on o.id = n.id
      where n.status <> o.status or n.finished_at is distinct from o.finished_at
    ) changed;
  end if;
  return null;
end $$;

drop trigger if exists toolbox_operation_events_notify on public.toolbox_operation_events;
create trigger toolbox_operation_events_notify
  after insert on public.toolbox_operation_events
  referencing new table as inserted
  for each statement execute function
    public.notify_operation_events('agentopia_toolbox_operation_events');

drop trigger if exists toolbox_operations_status_notify on public.toolbox_operations;
create trigger toolbox_operations_status_notify
  after update on public.toolbox_operations
  referencing new table as inserted old table as previous
  for each statement execute function
    public.notify_operation_events('agentopia_toolbox_operation_events');

drop function if exists public.notify_toolbox_operation_events();

drop trigger if exists fleet_operation_events_notify on public.fleet_operation_events;
create trigger fleet_operation_events_notify
  after insert on public.fleet_operation_events
  referencing new table as inserted
  for each statement execute function
    public.notify_operation_events('agentopia_fleet_operation_events');

drop trigger if exists fleet_operations_status_notify on public.fleet_operations;
create trigger fleet_operations_status_notify
  after update on public.fleet_operations
  referencing new table as inserted old table as previous
  for each statement execute function
    public.notify_operation_events('agentopia_fleet_operation_events');
