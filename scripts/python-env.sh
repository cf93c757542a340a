#!/usr/bin/env bash
# Build (or refresh) the Python environments used by the compatibility suite in tests/compat.
#
#   venv-compat      aleph-sdk-python 2.4.0 + pytest (tests/compat/requirements.txt)
#   venv-compat-cli  aleph-client, the `aleph` CLI    (tests/compat/requirements-cli.txt)
#
# Both live under ${RALEPH_CACHE_DIR:-$HOME/.cache/raleph}. A venv is created when missing
# (or broken) and its requirements are (re)installed only when the requirements file (or
# the interpreter version) changed since the last successful install: the sha256 is stored
# inside the venv. When everything is up to date this is a fast no-op.
#
# stdout: exactly one line, the path of venv-compat (the CLI venv is its sibling
# "<path>-cli", which tests/compat/conftest.py finds by itself). Progress goes to stderr.
#
# Usage:  VENV=$(scripts/python-env.sh) && RALEPH_BIN=... "$VENV/bin/pytest" tests/compat
# Env:    RALEPH_CACHE_DIR  cache root (default ~/.cache/raleph)
#         PYTHON            interpreter used to create the venvs (default python3)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE_DIR="${RALEPH_CACHE_DIR:-$HOME/.cache/raleph}"
PYTHON="${PYTHON:-python3}"
VENV="$CACHE_DIR/venv-compat"
VENV_CLI="$CACHE_DIR/venv-compat-cli"
REQ="$ROOT/tests/compat/requirements.txt"
REQ_CLI="$ROOT/tests/compat/requirements-cli.txt"

log() { echo "python-env: $*" >&2; }

mkdir -p "$CACHE_DIR"

# Serialise concurrent runs (two test jobs starting at once) when flock is available.
if command -v flock >/dev/null 2>&1; then
    exec 9>"$CACHE_DIR/.python-env.lock"
    flock 9
fi

if ! command -v "$PYTHON" >/dev/null 2>&1; then
    log "error: $PYTHON not found"
    exit 1
fi

ensure_venv_module() {
    # Debian splits venv/ensurepip into python3-venv; install it when missing.
    if "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
        return 0
    fi
    if command -v apt-get >/dev/null 2>&1; then
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        local minor
        minor="$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
        log "installing python3-venv with apt-get"
        $sudo apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-venv >&2 ||
            DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "python${minor}-venv" >&2
    fi
    if ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
        log "error: $PYTHON has no working venv/ensurepip module"
        exit 1
    fi
}

# ensure <venv dir> <requirements file>
ensure() {
    local venv="$1" req="$2"
    local stamp="$venv/.requirements.sha256"
    local want
    want="$( { sha256sum "$req" | cut -d' ' -f1; "$PYTHON" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1)"

    # A venv whose interpreter no longer runs (python upgraded/removed) is rebuilt.
    if [ -d "$venv" ] && ! "$venv/bin/python" -c 'pass' >/dev/null 2>&1; then
        log "removing broken venv $venv"
        rm -rf "$venv"
    fi
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        return 0
    fi
    if [ ! -x "$venv/bin/python" ]; then
        ensure_venv_module
        log "creating venv $venv"
        "$PYTHON" -m venv "$venv" >&2
    fi
    log "installing $(basename "$req") into $venv"
    rm -f "$stamp"
    "$venv/bin/python" -m pip install --disable-pip-version-check -q -r "$req" >&2
    echo "$want" >"$stamp"
}

ensure "$VENV" "$REQ"
ensure "$VENV_CLI" "$REQ_CLI"

echo "$VENV"
