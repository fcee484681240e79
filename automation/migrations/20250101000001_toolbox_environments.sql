-- Agentopia's toolbox table and status enum, kept as Agentopia defined them, plus the columns the
-- automation service needs. Written to run both on a Supabase project that already has the
-- Agentopia schema (everything is "if not exists") and on a plain PostgreSQL.

do $$
begin
  create type public.account_tool_environment_status_enum as enum (
    'inactive', 'pending_creation', 'creating', 'active', 'error_creation', 'pending_deletion',
    'deleting', 'error_deletion', 'unresponsive', 'scaling', 'pending_provision', 'provisioning',
    'error_provisioning', 'pending_deprovision', 'deprovisioning', 'deprovisioned',
    'error_deprovisioning', 'awaiting_heartbeat'
  );
exception when duplicate_object then null;
end $$;

-- An older Agentopia database may lack the newer values.
alter type public.account_tool_environment_status_enum add value if not exists 'pending_provision';
alter type public.account_tool_environment_status_enum add value if not exists 'provisioning';
alter type public.account_tool_environment_status_enum add value if not exists 'error_provisioning';
alter type public.account_tool_environment_status_enum add value if not exists 'pending_deprovision';
alter type public.account_tool_environment_status_enum add value if not exists 'deprovisioning';
alter type public.account_tool_environment_status_enum add value if not exists 'deprovisioned';
alter type public.account_tool_environment_status_enum add value if not exists 'error_deprovisioning';
alter type public.account_tool_environment_status_enum add value if not exists 'awaiting_heartbeat';
alter type public.account_tool_environment_status_enum add value if not exists 'unresponsive';

create table if not exists public.account_tool_environments (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null,
  do_droplet_id bigint unique,
  do_droplet_name text,
  public_ip_address inet,
  status public.account_tool_environment_status_enum not null default 'inactive',
  region_slug text,
  size_slug text,
  image_slug text,
  name text,
  description text,
  last_heartbeat_at timestamptz,
  dtma_last_known_version text,
  dtma_health_details_json jsonb,
  provisioning_error_message text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

-- The automation service's columns. account_id is the Agentopia account (= its user id).
alter table public.account_tool_environments
  add column if not exists account_id uuid,
  add column if not exists stack_name text,
  add column if not exists target text,
  add column if not exists public_ipv6_address inet,
  add column if not exists backend_url text,
  add column if not exists outputs_json jsonb,
  add column if not exists token_generation integer not null default 0,
  -- sha256 (hex) of the DTMA's current and previous token: heartbeats are looked up by hash.
  add column if not exists dtma_token_hash text,
  add column if not exists dtma_token_previous_hash text,
  -- AES-256-GCM envelope (version:iv:tag:ciphertext, base64) of the toolbox's tokens.
  add column if not exists tokens_ciphertext text;

create unique index if not exists account_tool_environments_account_id_key
  on public.account_tool_environments (account_id);
create unique index if not exists account_tool_environments_dtma_token_hash_key
  on public.account_tool_environments (dtma_token_hash);
create index if not exists account_tool_environments_dtma_token_previous_hash_idx
  on public.account_tool_environments (dtma_token_previous_hash);
create index if not exists account_tool_environments_status_idx
  on public.account_tool_environments (status);
