#!/usr/bin/env bash
# The whole check: formatter + linter, type check, then every test (real Temporal, real CRIU: run as root).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
biome ci .
tsc --noEmit
vitest run
