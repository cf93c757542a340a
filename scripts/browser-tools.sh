#!/usr/bin/env bash
# Installs what the explorer's browser tests need and prints where it is:
#   - Debian's Chromium (apt-get install chromium), when /usr/bin/chromium is missing;
#   - the pinned browser driver playwright-core (web/tests/package.json and its lock), from
#     the npm registry, once per lock file into $RALEPH_CACHE_DIR/browser-tools/<lock hash>/
#     (default ~/.cache/raleph), so every clone on the machine shares it.
#
# Prints two lines: RALEPH_CHROMIUM=<browser path> and RALEPH_PLAYWRIGHT_DIR=<install dir>.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TESTS="$ROOT/web/tests"
CACHE="${RALEPH_CACHE_DIR:-$HOME/.cache/raleph}"

for tool in node npm; do
    command -v "$tool" >/dev/null || { echo "browser-tools: $tool is required (Node.js >= 20)" >&2; exit 1; }
done

CHROMIUM="${RALEPH_CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$CHROMIUM" ]; then
    echo "browser-tools: installing Debian's chromium" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium >&2
    [ -x "$CHROMIUM" ] || { echo "browser-tools: apt-get did not install $CHROMIUM" >&2; exit 1; }
fi

lock_hash="$(cat "$TESTS/package.json" "$TESTS/package-lock.json" | sha256sum | cut -c1-16)"
TOOLS="$CACHE/browser-tools/$lock_hash"
if [ ! -e "$TOOLS/.installed" ]; then
    echo "browser-tools: installing playwright-core into $TOOLS" >&2
    rm -rf "$TOOLS"
    mkdir -p "$TOOLS"
    cp "$TESTS/package.json" "$TESTS/package-lock.json" "$TOOLS/"
    (cd "$TOOLS" && npm ci --no-audit --no-fund --loglevel=error >&2)
    [ -e "$TOOLS/node_modules/playwright-core/package.json" ] || { echo "browser-tools: npm ci did not install playwright-core" >&2; exit 1; }
    touch "$TOOLS/.installed"
fi

"$CHROMIUM" --version >&2
echo "RALEPH_CHROMIUM=$CHROMIUM"
echo "RALEPH_PLAYWRIGHT_DIR=$TOOLS"
