#!/usr/bin/env bash
# Runs the fuzz targets of fuzz/ (SECURITY.md, "Fuzzing") for a while each, failing on any
# crash, panic, timeout or memory blow-up.
#
# Stable toolchain: cargo-fuzz with `-s none` builds libFuzzer targets with coverage
# instrumentation only (`-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-...`, stable
# codegen options); no sanitizer, so no nightly and no RUSTC_BOOTSTRAP. Rust code is memory
# safe and the targets look for panics and broken properties, which need no sanitizer.
#
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]   (default: every target, FUZZ_SECONDS each)
# Env: FUZZ_SECONDS     seconds per target (default 5)
#      FUZZ_RSS_MB      memory limit of a run, MB (default 2048; also the largest allocation)
#      FUZZ_TIMEOUT     seconds one input may take before it counts as a hang (default 10)
#      RALEPH_CACHE_DIR cache root (default ~/.cache/raleph): the fuzz build goes to its
#                       fuzz-target/ (never the main target dir: other RUSTFLAGS), the corpus a
#                       run grows to its fuzz-corpus/<target>/ (the committed seeds in
#                       fuzz/corpus/<target>/ are only read)
# A crash is written to fuzz/artifacts/<target>/; replay it with
#   cargo fuzz run -s none --fuzz-dir fuzz <target> fuzz/artifacts/<target>/<file>
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

CARGO_FUZZ_VERSION=0.13.2
SECONDS_EACH="${1:-${FUZZ_SECONDS:-5}}"
shift $(($# > 0 ? 1 : 0))
RSS_MB="${FUZZ_RSS_MB:-2048}"
TIMEOUT="${FUZZ_TIMEOUT:-10}"
CACHE="${RALEPH_CACHE_DIR:-$HOME/.cache/raleph}"
TARGET_DIR="$CACHE/fuzz-target"
CORPUS_DIR="$CACHE/fuzz-corpus"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
unset CARGO_TARGET_DIR

if ! cargo fuzz --version 2>/dev/null | grep -qx "cargo-fuzz $CARGO_FUZZ_VERSION"; then
    echo "installing cargo-fuzz $CARGO_FUZZ_VERSION" >&2
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

# fuzz/Cargo.lock pins the fuzz build (the versions of the main Cargo.lock, plus libFuzzer).
# A dependency added to a crate of the node makes it stale: then it is brought up to date
# (only what changed is resolved), and should be committed.
if ! cargo fetch --locked --manifest-path fuzz/Cargo.toml 2>/dev/null; then
    echo "fuzz/Cargo.lock is behind the crates' manifests: updating it (commit it)" >&2
    cargo fetch --manifest-path fuzz/Cargo.toml
fi

if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list --fuzz-dir fuzz)
fi

started=$(date +%s)
cargo fuzz build -s none --fuzz-dir fuzz --target-dir "$TARGET_DIR"
echo "fuzz build: $(($(date +%s) - started)) s" >&2
# Run what was just built (`cargo fuzz run` would build again before each target).
BIN="$TARGET_DIR/$(rustc -vV | sed -n 's/^host: //p')/release"

failed=()
for target in "${targets[@]}"; do
    mkdir -p "$CORPUS_DIR/$target" "fuzz/artifacts/$target"
    log="$CACHE/fuzz-$target.log"
    echo "fuzz $target: ${SECONDS_EACH}s" >&2
    if "$BIN/$target" -artifact_prefix="fuzz/artifacts/$target/" \
        -max_total_time="$SECONDS_EACH" -rss_limit_mb="$RSS_MB" -timeout="$TIMEOUT" \
        -print_final_stats=1 "$CORPUS_DIR/$target" "fuzz/corpus/$target" >"$log" 2>&1; then
        grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)' "$log" |
            sed "s/^/  $target: /" >&2 || true
    else
        echo "fuzz $target FAILED (log: $log):" >&2
        grep -E -A30 'panicked|ERROR: libFuzzer|SUMMARY' "$log" | head -60 >&2 || tail -40 "$log" >&2
        failed+=("$target")
    fi
done

echo "fuzzing took $(($(date +%s) - started)) s" >&2
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz targets failed: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
