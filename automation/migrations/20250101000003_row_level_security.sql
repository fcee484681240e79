-- End users read their own rows; the service (table owner / Supabase service role) bypasses RLS.
-- On plain PostgreSQL there is no Supabase auth schema: create a minimal auth.uid() that reads
-- the same request setting PostgREST sets, only when none exists, so Supabase's is never replaced.

do $$
begin
  if not exists (select 1 from pg_namespace where nspname = 'auth') then
    create schema auth;
  end if;
  if not exists (
    select 1 from pg_proc p join pg_namespace n on n.oid = p.pronamespace
    where n.nspname = 'auth' and p.proname = 'uid'
  ) then
    create function auth.uid() returns uuid language sql stable as
      $f$ select nullif(current_setting('request.jwt.claim.sub', true), '')::uuid $f$;
  end if;
end $$;

alter table public.account_tool_environments enable row level security;
alter table public.toolbox_operations enable row level security;
alter table public.toolbox_operation_events enable row level security;

drop policy if exists "owner reads own toolbox" on public.account_tool_environments;
create policy "owner reads own toolbox" on public.account_tool_environments
  for select using (user_id = auth.uid());

drop policy if exists "owner reads own operations" on public.toolbox_operations;
create policy "owner reads own operations" on public.toolbox_operations
  for select using (
    exists (
      select 1 from public.account_tool_environments e
      where e.id = environment_id and e.user_id = auth.uid()
    )
  );

drop policy if exists "owner reads own operation events" on public.toolbox_operation_events;
create policy "owner reads own operation events" on public.toolbox_operation_events
  for select using (
    exists (
      select 1 from public.toolbox_operations o
      join public.account_tool_environments e on e.id = o.environment_id
      where o.id = operation_id and e.user_id = auth.uid()
    )
  );
