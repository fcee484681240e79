#!/usr/bin/env bash
# Builds the images the `local` stack names (Pulumi.local.yaml) from this repository's
# Dockerfiles. Where Docker Hub is unreachable, build the base stand-in first:
#   bash scripts/stand-in-node-image.sh node:24-bookworm-slim
set -euo pipefail
cd "$(dirname "$0")/.."
docker build -t agentopia/dtma:local -f dtma/Dockerfile .
docker build -t agentopia/backend:local -f backend/Dockerfile .
