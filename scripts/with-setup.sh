#!/usr/bin/env bash
# Runs the set-up, then the given command with the project's tools first on PATH.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$ROOT/scripts/setup.sh"
export PATH="$ROOT/.torpor/node/bin:$ROOT/.torpor/bin:$ROOT/node_modules/.bin:$PATH"
exec "$@"
