#!/usr/bin/env bash
# Builds every image the tests need, locally (docker pull is unavailable here). Idempotent:
# an image that already exists is kept, except the DTMA image, which docker's layer cache
# rebuilds in seconds when nothing changed.
#   agentopia-test/busybox:latest  FROM scratch + Debian's busybox-static (tool image in tests)
#   node:24-bookworm-slim          local stand-in for the Dockerfiles' base (stand-in-node-image.sh)
#   agentopia-test/mcp-echo:latest dtma/test/fixtures/mcp-echo (a tiny MCP server, FROM the stand-in)
#   agentopia-test/mcp-tools:latest backend/test/fixtures/mcp-tools (the gateway's test server, stdio or http)
#   agentopia-test/mcp-everything:latest backend/test/fixtures/mcp-everything (published server-everything)
#   agentopia/dtma:dev             dtma/Dockerfile
#   agentopia/backend:dev          backend/Dockerfile
set -euo pipefail

ROOT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

docker info > /dev/null 2>&1 || { echo "build-test-images: the Docker daemon is not reachable" >&2; exit 1; }

BUSYBOX_IMAGE=agentopia-test/busybox:latest
if docker image inspect "$BUSYBOX_IMAGE" > /dev/null 2>&1; then
  echo "build-test-images: $BUSYBOX_IMAGE already present"
else
  busybox_bin="$(command -v busybox || true)"
  linkage=""
  if [ -n "$busybox_bin" ]; then linkage="$(LC_ALL=C ldd "$busybox_bin" 2>&1 || true)"; fi
  if ! grep -qE 'not a dynamic|statically linked' <<< "$linkage"; then
    echo "build-test-images: a static busybox is needed (apt-get install -y busybox-static)" >&2
    exit 1
  fi
  ctx="$(mktemp -d)"
  trap 'rm -rf "$ctx"' EXIT
  cp "$busybox_bin" "$ctx/busybox"
  printf '%s\n' 'FROM scratch' 'COPY busybox /bin/busybox' \
    'ENTRYPOINT ["/bin/busybox"]' 'CMD ["sleep", "3600"]' > "$ctx/Dockerfile"
  docker build -q -t "$BUSYBOX_IMAGE" "$ctx" > /dev/null
  echo "build-test-images: built $BUSYBOX_IMAGE"
fi

bash "$ROOT_DIR/scripts/stand-in-node-image.sh" node:24-bookworm-slim

# A fixture image is kept while its label matches the fixture's files, rebuilt otherwise
# (npm ci inside, ~7 s uncached).
fixture_image() {
  local image="$1" dir="$2"
  shift 2
  local files=("$@") hash present
  hash="$(cd "$dir" && cat "${files[@]}" | sha256sum | cut -c1-16)"
  present="$(docker image inspect -f '{{ index .Config.Labels "agentopia.test.fixture-hash" }}' \
    "$image" 2> /dev/null || true)"
  if [ "$present" = "$hash" ]; then
    echo "build-test-images: $image already present"
    return
  fi
  tar -C "$dir" -c "${files[@]}" \
    | docker build -q --label "agentopia.test.fixture-hash=$hash" -t "$image" - > /dev/null
  echo "build-test-images: built $image"
}

fixture_image agentopia-test/mcp-echo:latest "$ROOT_DIR/dtma/test/fixtures/mcp-echo" \
  Dockerfile package.json package-lock.json server.mjs
fixture_image agentopia-test/mcp-tools:latest "$ROOT_DIR/backend/test/fixtures/mcp-tools" \
  Dockerfile package.json package-lock.json tools.mjs stdio.mjs http.mjs
fixture_image agentopia-test/mcp-everything:latest "$ROOT_DIR/backend/test/fixtures/mcp-everything" \
  Dockerfile package.json package-lock.json

echo "build-test-images: building agentopia/dtma:dev"
# Only what the Dockerfile copies goes into the context (not node_modules or the toolchain).
tar -C "$ROOT_DIR" -c package.json package-lock.json tsconfig.base.json \
  contract/package.json contract/tsconfig.build.json contract/src \
  servicekit/package.json servicekit/tsconfig.build.json servicekit/src \
  dtma/Dockerfile dtma/package.json dtma/tsconfig.build.json dtma/src \
  | docker build -q -t agentopia/dtma:dev -f dtma/Dockerfile - > /dev/null
echo "build-test-images: built agentopia/dtma:dev"

echo "build-test-images: building agentopia/backend:dev"
tar -C "$ROOT_DIR" -c package.json package-lock.json tsconfig.base.json \
  contract/package.json contract/tsconfig.build.json contract/src \
  servicekit/package.json servicekit/tsconfig.build.json servicekit/src \
  dtma/package.json dtma/tsconfig.build.json dtma/src \
  backend/Dockerfile backend/package.json backend/tsconfig.build.json backend/src \
  | docker build -q -t agentopia/backend:dev -f backend/Dockerfile - > /dev/null
echo "build-test-images: built agentopia/backend:dev"
