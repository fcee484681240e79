#!/usr/bin/env bash
# Builds the images the `local` stack names (Pulumi.local.yaml) from this repository's
# Dockerfiles. Where Docker Hub is unreachable, build the base stand-in first:
#   bash scripts/stand-in-node-image.sh node:24-bookworm-slim
set -euo pipefail
cd "$(dirname "$0")/.."
docker build -t agentopia/dtma:local -f dtma/Dockerfile .
if [ ! -f backend/Dockerfile ]; then
  echo "build-local-images: backend/Dockerfile does not exist yet (the backend service has not landed);" \
    "agentopia/backend:local cannot be built, so 'pulumi up -s local' cannot start the backend" >&2
  exit 1
fi
docker build -t agentopia/backend:local -f backend/Dockerfile .
