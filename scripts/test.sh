#!/usr/bin/env bash
# The one command that runs every test of raleph, on a fresh machine or a warm one.
#
# It installs what is missing (rustfmt and clippy components, the Python venvs of the
# compatibility suite), keeps its build directory outside the clone so later runs are
# incremental, then runs: formatting and lint checks, the dependency-direction check, the
# Rust test suites (the store's conformance tests against SQLite and a private PostgreSQL
# server, which it starts; the chain tests against anvil, installed with the Solidity compiler
# from the npm registry by scripts/evm-tools.sh; the explorer's pages in Debian's Chromium, driven
# by playwright-core, installed by scripts/browser-tools.sh), and the compatibility suite that drives a real node through the
# published Python SDK and CLI.
#
# Env: RALEPH_CACHE_DIR  cache root (default ~/.cache/raleph; the PostgreSQL test cluster
#                        of scripts/postgres.sh lives in its pg/)
#      CARGO_TARGET_DIR  build directory (default $RALEPH_CACHE_DIR/target)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export RALEPH_CACHE_DIR="${RALEPH_CACHE_DIR:-$HOME/.cache/raleph}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$RALEPH_CACHE_DIR/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
mkdir -p "$RALEPH_CACHE_DIR"

step() { echo "==> $*" >&2; }

step "toolchain components"
for component in rustfmt clippy; do
    if ! rustup component list --installed 2>/dev/null | grep -q "^$component"; then
        rustup component add "$component"
    fi
done

# The compute tests build a WebAssembly test program (crates/raleph-compute/guest).
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
    rustup target add wasm32-wasip2
fi

step "format"
cargo fmt --all -- --check

step "lint"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "dependency direction"
scripts/check-deps.sh

step "PostgreSQL (backend conformance tests)"
DATABASE_URL="$(scripts/postgres.sh | sed -n 's/^DATABASE_URL=//p')"
[ -n "$DATABASE_URL" ] || { echo "scripts/postgres.sh printed no DATABASE_URL" >&2; exit 1; }
# The PostgreSQL tests fail, rather than skip, if the server cannot be reached.
export DATABASE_URL RALEPH_REQUIRE_POSTGRES=1

step "Python program runtime (microVM kernel, initrd, root filesystem from Debian packages; installs QEMU and squashfs-tools)"
RALEPH_PYTHON_RUNTIME_DIR="$(scripts/build-python-runtime.sh | tail -n 1)"
export RALEPH_PYTHON_RUNTIME_DIR

step "EVM tools (solc and anvil from the npm registry; the sync contract's artifact is checked)"
RALEPH_ANVIL="$(scripts/evm-tools.sh | tail -n 1)"
[ -x "$RALEPH_ANVIL" ] || { echo "scripts/evm-tools.sh printed no anvil path" >&2; exit 1; }
# The chain tests fail, rather than skip, if anvil cannot be started.
export RALEPH_ANVIL RALEPH_REQUIRE_ANVIL=1

step "browser tools (Debian's Chromium, playwright-core from the npm registry: the explorer's tests)"
BROWSER_TOOLS="$(scripts/browser-tools.sh)"
RALEPH_CHROMIUM="$(printf '%s\n' "$BROWSER_TOOLS" | sed -n 's/^RALEPH_CHROMIUM=//p')"
RALEPH_PLAYWRIGHT_DIR="$(printf '%s\n' "$BROWSER_TOOLS" | sed -n 's/^RALEPH_PLAYWRIGHT_DIR=//p')"
[ -x "$RALEPH_CHROMIUM" ] && [ -d "$RALEPH_PLAYWRIGHT_DIR" ] || { echo "scripts/browser-tools.sh printed no browser" >&2; exit 1; }
export RALEPH_CHROMIUM RALEPH_PLAYWRIGHT_DIR
# The explorer's browser test fails, rather than skips, without them.
export RALEPH_REQUIRE_BROWSER=1

step "rust tests"
cargo test --workspace --locked

step "build the node"
cargo build -p raleph --locked

step "python clients"
VENV="$(scripts/python-env.sh)"

step "compatibility suite (aleph-sdk-python, aleph-client)"
RALEPH_BIN="$CARGO_TARGET_DIR/debug/raleph" "$VENV/bin/pytest" tests/compat -q -p no:cacheprovider

step "independent CID check (JS UnixFS importer)"
RALEPH_BIN="$CARGO_TARGET_DIR/debug/raleph" tests/cid/run.sh -q -p no:cacheprovider

step "fuzz targets (scripts/fuzz.sh: each parser fuzzed for a few seconds)"
scripts/fuzz.sh "${FUZZ_SECONDS:-5}"

step "all tests passed"
