-- Fleet operations (issue 11): health-gated upgrade waves with rollback, orphan reconciliation,
-- per-account images, which images each toolbox runs and since when, and the operator stacks'
-- canaries as records. Idempotent, like every migration here (the Supabase CLI may apply it too).

-- Per-account images: set by an upgrade (or its rollback); null = the service's settings.
-- deployed_*: what the last successful `up` deployed; images_deployed_at: since when.
-- Operator canaries (managed_by = 'operator') are declared by an operator stack (operator_stack)
-- under their own id there (operator_toolbox_id); the service only registers them.
alter table public.account_tool_environments
  add column if not exists dtma_image text,
  add column if not exists backend_image text,
  add column if not exists deployed_dtma_image text,
  add column if not exists deployed_backend_image text,
  add column if not exists images_deployed_at timestamptz,
  add column if not exists managed_by text not null default 'service',
  add column if not exists operator_stack text,
  add column if not exists operator_toolbox_id text;

alter table public.account_tool_environments
  drop constraint if exists account_tool_environments_managed_by_check;
alter table public.account_tool_environments add constraint account_tool_environments_managed_by_check
  check (managed_by in ('service', 'operator'));

create unique index if not exists account_tool_environments_operator_toolbox_key
  on public.account_tool_environments (operator_stack, operator_toolbox_id)
  where managed_by = 'operator';

-- Every change of a toolbox's deployed images, kept: "which version does each toolbox run, and
-- since when" is the newest row per toolbox; the older rows are its history.
create table if not exists public.toolbox_image_history (
  id bigint generated always as identity primary key,
  environment_id uuid not null references public.account_tool_environments (id) on delete cascade,
  account_id uuid not null,
  dtma_image text,
  backend_image text,
  since timestamptz not null default now()
);
create index if not exists toolbox_image_history_environment_idx
  on public.toolbox_image_history (environment_id, id desc);

create or replace function public.record_toolbox_images() returns trigger
language plpgsql as $$
begin
  if new.deployed_dtma_image is distinct from old.deployed_dtma_image
     or new.deployed_backend_image is distinct from old.deployed_backend_image then
    new.images_deployed_at := now();
    insert into public.toolbox_image_history (environment_id, account_id, dtma_image, backend_image)
    values (new.id, new.account_id, new.deployed_dtma_image, new.deployed_backend_image);
  end if;
  return new;
end $$;

drop trigger if exists account_tool_environments_images on public.account_tool_environments;
create trigger account_tool_environments_images
  before update of deployed_dtma_image, deployed_backend_image on public.account_tool_environments
  for each row execute function public.record_toolbox_images();

-- An upgrade step and its rollback are operations of the account, through the same queue: the
-- one-open-operation-per-account index keeps them from overlapping the account's own.
alter table public.toolbox_operations drop constraint if exists toolbox_operations_kind_check;
alter table public.toolbox_operations add constraint toolbox_operations_kind_check
  check (kind in ('provision', 'deprovision', 'refresh', 'rotate_tokens', 'upgrade', 'rollback'));

-- Fleet operations: an upgrade (its plan in request_json) or a reconciliation run (its report in
-- result_json). One unfinished upgrade per environment.
create table if not exists public.fleet_operations (
  id uuid primary key default gen_random_uuid(),
  kind text not null check (kind in ('upgrade', 'reconcile')),
  environment text not null,
  status text not null default 'queued'
    check (status in ('queued', 'running', 'stopped', 'aborted', 'succeeded', 'failed')),
  request_json jsonb not null,
  result_json jsonb,
  current_wave integer not null default 0,
  stop_reason text,
  error_message text,
  requested_by text not null,
  worker_id text,
  attempts integer not null default 0,
  created_at timestamptz not null default now(),
  started_at timestamptz,
  finished_at timestamptz,
  updated_at timestamptz not null default now()
);
create unique index if not exists fleet_operations_one_upgrade_per_environment
  on public.fleet_operations (environment) where kind = 'upgrade' and finished_at is null;
create unique index if not exists fleet_operations_one_reconcile_per_environment
  on public.fleet_operations (environment) where kind = 'reconcile' and finished_at is null;
create index if not exists fleet_operations_kind_idx
  on public.fleet_operations (kind, created_at desc);

create table if not exists public.fleet_operation_events (
  id bigint generated always as identity primary key,
  operation_id uuid not null references public.fleet_operations (id) on delete cascade,
  at timestamptz not null default now(),
  type text not null,
  message text,
  data jsonb
);
create index if not exists fleet_operation_events_operation_idx
  on public.fleet_operation_events (operation_id, id);

-- One row per toolbox of an upgrade: its wave, the images it had (to roll back to), every step.
create table if not exists public.fleet_upgrade_targets (
  upgrade_id uuid not null references public.fleet_operations (id) on delete cascade,
  environment_id uuid not null references public.account_tool_environments (id),
  account_id uuid not null,
  wave integer not null,
  state text not null default 'pending' check (state in (
    'pending', 'upgrading', 'verifying', 'upgraded', 'failed', 'skipped',
    'rolling_back', 'verifying_rollback', 'rolled_back', 'rollback_failed')),
  -- The record's image settings before the upgrade (null: the service's), and what it ran.
  previous_dtma_setting text,
  previous_backend_setting text,
  previous_dtma_image text,
  previous_backend_image text,
  operation_id uuid references public.toolbox_operations (id),
  rollback_operation_id uuid references public.toolbox_operations (id),
  -- Set when an `up` finished: health must be proven before it.
  deadline_at timestamptz,
  step_finished_at timestamptz,
  reason text,
  failure_reason text,
  waiting_since timestamptz,
  started_at timestamptz,
  finished_at timestamptz,
  updated_at timestamptz not null default now(),
  primary key (upgrade_id, account_id)
);
create index if not exists fleet_upgrade_targets_wave_idx
  on public.fleet_upgrade_targets (upgrade_id, wave, state);
create index if not exists fleet_upgrade_targets_operation_idx
  on public.fleet_upgrade_targets (operation_id);

-- The service (table owner / Supabase service role) bypasses RLS; owners read their toolbox's
-- image history, nothing of the fleet tables.
alter table public.toolbox_image_history enable row level security;
alter table public.fleet_operations enable row level security;
alter table public.fleet_operation_events enable row level security;
alter table public.fleet_upgrade_targets enable row level security;

drop policy if exists "owner reads own image history" on public.toolbox_image_history;
create policy "owner reads own image history" on public.toolbox_image_history
  for select using (
    exists (
      select 1 from public.account_tool_environments e
      where e.id = environment_id and e.user_id = auth.uid()
    )
  );
