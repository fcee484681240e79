-- A toolbox's token material lives apart from the row its owner reads (issue 13, item 11). RLS
-- lets the owner select every column of account_tool_environments, so the DTMA token hashes and
-- the tokens' ciphertext move to a table no end user can read: row-level security on and no
-- policy (the service, as table owner or Supabase's service role, bypasses it), and no grant to
-- Supabase's client roles where they exist. The owner's `select *` keeps working, without them.
-- Plain SQL, re-runnable, for the Supabase CLI as for the service's own migrator.

create table if not exists public.account_tool_environment_credentials (
  environment_id uuid primary key
    references public.account_tool_environments (id) on delete cascade,
  -- sha256 (hex) of the DTMA's current and previous token: heartbeats are looked up by hash.
  dtma_token_hash text not null,
  dtma_token_previous_hash text,
  -- AES-256-GCM envelope (version:iv:tag:ciphertext, base64) of the toolbox's tokens, bound to
  -- the account id.
  tokens_ciphertext text not null,
  updated_at timestamptz not null default now()
);

create unique index if not exists account_tool_environment_credentials_dtma_token_hash_key
  on public.account_tool_environment_credentials (dtma_token_hash);
create index if not exists account_tool_environment_credentials_dtma_token_previous_hash_idx
  on public.account_tool_environment_credentials (dtma_token_previous_hash);

alter table public.account_tool_environment_credentials enable row level security;
revoke all on public.account_tool_environment_credentials from public;
do $$
declare r text;
begin
  foreach r in array array['anon', 'authenticated'] loop
    if exists (select 1 from pg_roles where rolname = r) then
      execute format('revoke all on public.account_tool_environment_credentials from %I', r);
    end if;
  end loop;
end $$;

-- Move what the environments held, then drop it there (with its indexes); once moved, nothing.
do $$
begin
  if exists (
    select 1 from information_schema.columns
    where table_schema = 'public' and table_name = 'account_tool_environments'
      and column_name = 'tokens_ciphertext'
  ) then
    execute $m$
      insert into public.account_tool_environment_credentials
        (environment_id, dtma_token_hash, dtma_token_previous_hash, tokens_ciphertext)
      select id, dtma_token_hash, dtma_token_previous_hash, tokens_ciphertext
      from public.account_tool_environments
      where dtma_token_hash is not null and tokens_ciphertext is not null
      on conflict (environment_id) do nothing
    $m$;
    alter table public.account_tool_environments
      drop column dtma_token_hash,
      drop column dtma_token_previous_hash,
      drop column tokens_ciphertext;
  end if;
end $$;
