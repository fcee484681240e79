-- Agentopia's tool catalog and the tool instances on a toolbox, whose status the DTMA's heartbeat
-- reports. Created only where missing (Agentopia's Supabase database already has them), so the
-- same SQL runs there, through the Supabase CLI, and on a plain PostgreSQL.

do $$
begin
  create type public.account_tool_installation_status_enum as enum (
    'pending_install', 'installing', 'active', 'error_install', 'pending_uninstall',
    'uninstalling', 'uninstalled', 'error_uninstall', 'pending_config', 'stopped', 'starting',
    'stopping', 'error_runtime', 'disabled', 'pending_deploy', 'deploying', 'running', 'error',
    'pending_delete', 'deleting'
  );
exception when duplicate_object then null;
end $$;

-- Values the heartbeat writes; an older Agentopia database may lack some of them.
alter type public.account_tool_installation_status_enum add value if not exists 'running';
alter type public.account_tool_installation_status_enum add value if not exists 'stopped';
alter type public.account_tool_installation_status_enum add value if not exists 'starting';
alter type public.account_tool_installation_status_enum add value if not exists 'stopping';
alter type public.account_tool_installation_status_enum add value if not exists 'error_runtime';

create table if not exists public.tool_catalog (
  id uuid primary key default gen_random_uuid(),
  tool_name text not null unique,
  description text,
  package_identifier text,
  docker_image_url text,
  version_info jsonb,
  default_config_template jsonb,
  -- [{env_var_name}]: the secrets a tool needs, delivered as environment variables.
  required_secrets_schema jsonb,
  required_config_schema jsonb,
  resource_requirements jsonb,
  status text not null default 'available',
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

create table if not exists public.account_tool_instances (
  id uuid primary key default gen_random_uuid(),
  account_tool_environment_id uuid not null
    references public.account_tool_environments (id) on delete cascade,
  tool_catalog_id uuid references public.tool_catalog (id),
  instance_name_on_toolbox text,
  status_on_toolbox public.account_tool_installation_status_enum not null default 'pending_install',
  config_values jsonb,
  port_mapping_json jsonb,
  base_config_override_json jsonb,
  last_heartbeat_from_dtma timestamptz,
  version text,
  instance_error_message text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

-- Columns the heartbeat reads or writes, for a table that predates them.
alter table public.account_tool_instances
  add column if not exists status_on_toolbox public.account_tool_installation_status_enum,
  add column if not exists last_heartbeat_from_dtma timestamptz,
  add column if not exists updated_at timestamptz not null default now();

create index if not exists account_tool_instances_environment_idx
  on public.account_tool_instances (account_tool_environment_id);

-- As for the toolbox table: owners read the instances on their own toolbox, signed-in users read
-- the catalog; the service (table owner / Supabase service role) bypasses RLS.
alter table public.tool_catalog enable row level security;
alter table public.account_tool_instances enable row level security;

drop policy if exists "signed-in users read the catalog" on public.tool_catalog;
create policy "signed-in users read the catalog" on public.tool_catalog
  for select using (auth.uid() is not null);

drop policy if exists "owner reads own tool instances" on public.account_tool_instances;
create policy "owner reads own tool instances" on public.account_tool_instances
  for select using (
    exists (
      select 1 from public.account_tool_environments e
      where e.id = account_tool_environment_id and e.user_id = auth.uid()
    )
  );
