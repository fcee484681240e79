#!/usr/bin/env bash
# What needs a real Pulumi CLI (GitHub CI installs it; the offline machines cannot), run after
# the images are built:
#  1. the README's `start`: the automation service on its embedded default, with the local
#     images; its first toolbox request goes through the real Automation API engine (account
#     program, policy pack, Docker provider) until the DTMA heartbeats and the toolbox is
#     active; DELETE then leaves it deprovisioned with nothing left on the daemon;
#  2. `pulumi up -s local` for real on the same daemon: the operator stack's DTMA and backend
#     healthy; then `pulumi destroy`.
# Secrets are read from files and sent in headers, never put on a command line.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v pulumi >/dev/null || { echo "ci-real-engine: no pulumi CLI on PATH" >&2; exit 1; }

say() { printf '[real-engine] %s\n' "$*" >&2; }
work="$(mktemp -d)"
service_pid=""
cleanup() {
  if [ -n "$service_pid" ]; then kill "$service_pid" 2>/dev/null || true; wait "$service_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

port=18080
export DATA_DIR="$work/data" PORT="$port" HOST=0.0.0.0 LOG_LEVEL=info
export DTMA_IMAGE=agentopia/dtma:local BACKEND_IMAGE=agentopia/backend:local
say "starting the automation service on :$port"
npm run build -w automation >/dev/null
(cd automation && node --conditions=compiled dist/src/main.js >"$work/service.log" 2>&1) &
service_pid=$!
for _ in $(seq 1 120); do
  curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  sleep 1
done
curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null || { tail -n 50 "$work/service.log" >&2; exit 1; }

# The token as a curl config file (mode 0600), never on argv.
headers="$work/headers"
(umask 077 && printf 'header = "authorization: Bearer %s"\n' "$(cat "$DATA_DIR/secrets/service-token")" >"$headers")
api() { curl -fsS -K "$headers" -H 'content-type: application/json' "$@"; }

account="$(cat /proc/sys/kernel/random/uuid)"
say "POST /v1/toolboxes for $account"
api -X POST "http://127.0.0.1:$port/v1/toolboxes" -d "{\"account_id\":\"$account\"}" >/dev/null
status=""
for _ in $(seq 1 300); do
  status="$(api "http://127.0.0.1:$port/v1/toolboxes/$account" | jq -r .toolbox.status)"
  case "$status" in active | error_provisioning) break ;; esac
  sleep 2
done
if [ "$status" != active ]; then
  say "the toolbox is $status"
  api "http://127.0.0.1:$port/v1/toolboxes/$account" | jq . >&2
  tail -n 80 "$work/service.log" >&2
  exit 1
fi
say "active; deleting"
api -X DELETE "http://127.0.0.1:$port/v1/toolboxes/$account" >/dev/null
for _ in $(seq 1 150); do
  status="$(api "http://127.0.0.1:$port/v1/toolboxes/$account" | jq -r .toolbox.status)"
  case "$status" in deprovisioned | error_deprovisioning) break ;; esac
  sleep 2
done
[ "$status" = deprovisioned ] || { say "the toolbox is $status"; tail -n 80 "$work/service.log" >&2; exit 1; }
left="$(docker ps -aq --filter "label=agentopia.account=$account")"
[ -z "$left" ] || { say "containers left behind: $left"; exit 1; }
say "deprovisioned, nothing left on the daemon"

say "pulumi up -s local"
export PULUMI_CONFIG_PASSPHRASE_FILE="$work/passphrase"
(umask 077 && head -c 24 /dev/urandom | base64 >"$PULUMI_CONFIG_PASSPHRASE_FILE")
pulumi login "file://$work/operator-state" >/dev/null
pulumi stack select --create local --non-interactive
pulumi up -s local --yes --non-interactive --policy-pack policies
for role in dtma backend; do
  health="$(docker inspect --format '{{.State.Health.Status}}' "tbx-local-$role")"
  [ "$health" = healthy ] || { say "tbx-local-$role is $health"; exit 1; }
done
pulumi destroy -s local --yes --non-interactive
say "done"
