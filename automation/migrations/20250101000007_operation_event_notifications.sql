-- Event streams are woken by notification, not polled (issue 13, item 9): every statement that
-- writes an operation's events, and every change of an operation's status, notifies channel
-- agentopia_toolbox_operation_events with the operation's id. PostgreSQL delivers it when the
-- transaction commits, and only once per id and transaction. Plain SQL, re-runnable, for the
-- Supabase CLI as for the service's own migrator.

create or replace function public.notify_toolbox_operation_events() returns trigger
language plpgsql as $$
begin
  if tg_table_name = 'toolbox_operation_events' then
    perform pg_notify('agentopia_toolbox_operation_events', ids.operation_id::text)
    from (select distinct operation_id from inserted) ids;
  else
    perform pg_notify('agentopia_toolbox_operation_events', changed.id::text)
    from (
      select n.id from inserted n join previous o on o.id = n.id where n.status <> o.status
    ) changed;
  end if;
  return null;
end $$;

drop trigger if exists toolbox_operation_events_notify on public.toolbox_operation_events;
create trigger toolbox_operation_events_notify
  after insert on public.toolbox_operation_events
  referencing new table as inserted
  for each statement execute function public.notify_toolbox_operation_events();

drop trigger if exists toolbox_operations_status_notify on public.toolbox_operations;
create trigger toolbox_operations_status_notify
  after update on public.toolbox_operations
  referencing new table as inserted old table as previous
  for each statement execute function public.notify_toolbox_operation_events();
