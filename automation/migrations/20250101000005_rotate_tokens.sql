-- Token rotation is an operation of its own (POST /v1/toolboxes/:account_id/rotate-tokens).
alter table public.toolbox_operations drop constraint if exists toolbox_operations_kind_check;
alter table public.toolbox_operations add constraint toolbox_operations_kind_check
  check (kind in ('provision', 'deprovision', 'refresh', 'rotate_tokens'));
