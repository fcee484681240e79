-- One row per requested operation (provision, deprovision, refresh) and its event stream.

create table if not exists public.toolbox_operations (
  id uuid primary key default gen_random_uuid(),
  account_id uuid not null,
  environment_id uuid not null references public.account_tool_environments (id),
  kind text not null check (kind in ('provision', 'deprovision', 'refresh')),
  status text not null default 'queued'
    check (status in ('queued', 'running', 'succeeded', 'failed')),
  attempts integer not null default 0,
  worker_id text,
  error_message text,
  result_json jsonb,
  requested_by text not null,
  created_at timestamptz not null default now(),
  started_at timestamptz,
  finished_at timestamptz,
  updated_at timestamptz not null default now()
);

-- At most one open operation per account: the database, not the queue, is the arbiter.
create unique index if not exists toolbox_operations_one_open_per_account
  on public.toolbox_operations (account_id) where status in ('queued', 'running');
create index if not exists toolbox_operations_account_idx
  on public.toolbox_operations (account_id, created_at desc);

create table if not exists public.toolbox_operation_events (
  id bigint generated always as identity primary key,
  operation_id uuid not null references public.toolbox_operations (id) on delete cascade,
  at timestamptz not null default now(),
  type text not null,
  message text,
  data jsonb
);

create index if not exists toolbox_operation_events_operation_idx
  on public.toolbox_operation_events (operation_id, id);
