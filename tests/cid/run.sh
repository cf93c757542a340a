#!/usr/bin/env bash
# Independent CID check: raleph's IPFS CIDs against the JS UnixFS importer.
#
#   RALEPH_BIN=/path/to/raleph tests/cid/run.sh [pytest args...]
#
# Installs the pinned npm packages (npm ci, from package-lock.json) when they are missing or
# the lock file changed, builds/refreshes the compat venv (scripts/python-env.sh), and runs
# tests/cid with it. Without RALEPH_BIN it uses ${CARGO_TARGET_DIR:-<repo>/target}/debug/raleph
# when that exists. Needs Node.js >= 20 and npm.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"

for tool in node npm; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "cid/run.sh: $tool not found (Node.js >= 20 with npm is needed)" >&2
        exit 1
    fi
done

stamp="$HERE/node_modules/.raleph-lock-sha256"
want="$(sha256sum "$HERE/package-lock.json" | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "cid/run.sh: installing the pinned npm packages (npm ci)" >&2
    (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error >&2)
    echo "$want" > "$stamp"
fi

VENV="$("$ROOT/scripts/python-env.sh")"

if [ -z "${RALEPH_BIN:-}" ]; then
    candidate="${CARGO_TARGET_DIR:-$ROOT/target}/debug/raleph"
    if [ -x "$candidate" ]; then
        export RALEPH_BIN="$candidate"
    fi
fi

cd "$ROOT"
exec "$VENV/bin/pytest" "$HERE" "$@"
