#!/usr/bin/env bash
# Checks the dependency direction ARCHITECTURE.md promises: the message model and the crypto
# crate are pure (no async runtime, web framework, network stack or SQL driver), no
# server-side crate leaks into another's place, and the EVM library (alloy) stays in
# raleph-chain.
#
# Each crate is checked with all its features on: a rule that holds only while an optional
# backend is off (raleph-db's `postgres`, which the binary turns on) does not hold.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

fail=0

# The packages in `crate`'s normal (non-dev) dependency tree, all features on. Further
# arguments go to `cargo tree` (e.g. `--prune <package>`). A failing `cargo tree` fails the
# script: an empty tree would pass every rule.
tree_of() {
    local crate="$1"; shift
    local tree
    if ! tree="$(cargo tree -p "$crate" -e normal --all-features --prefix none --format '{p}' "$@")"; then
        echo "cargo tree failed for $crate" >&2
        exit 2
    fi
    awk '{print $1}' <<<"$tree" | sort -u
}

# Reports every `banned` package found in `tree` (the output of tree_of for `crate`).
check() {
    local crate="$1" tree="$2"; shift 2
    for banned in "$@"; do
        if grep -qx "$banned" <<<"$tree"; then
            echo "dependency rule broken: $crate depends on $banned" >&2
            fail=1
        fi
    done
}

forbid() {
    local crate="$1"; shift
    local tree
    # A plain assignment, so that a failing tree_of stops the script (set -e).
    tree="$(tree_of "$crate")"
    check "$crate" "$tree" "$@"
}

pure=(tokio axum hyper rusqlite libsqlite3-sys reqwest libp2p sqlx)
forbid raleph-message "${pure[@]}" raleph-crypto raleph-db raleph-pipeline raleph-api
forbid raleph-crypto "${pure[@]}" raleph-db raleph-pipeline raleph-api
forbid raleph-db axum raleph-pipeline raleph-api
# The unsafe SQLite tuning knows SQLite and nothing of raleph.
forbid raleph-sqlite-tuning tokio axum raleph-message raleph-db raleph-pipeline raleph-api
# raleph-db is synchronous: no tokio, with one exception. Its `postgres` feature uses the
# synchronous `postgres` client, which drives a private current-thread tokio runtime inside
# the driver (through tokio-postgres); raleph-db's API stays blocking and no tokio type
# crosses it. So tokio is allowed only below the `postgres` package: with that subtree cut
# off, it must not appear (not as a direct dependency, nor through any other path).
db_without_postgres="$(tree_of raleph-db --prune postgres)"
check raleph-db "$db_without_postgres" tokio
forbid raleph-pipeline axum rusqlite raleph-api
forbid raleph-api rusqlite libsqlite3-sys
forbid raleph-p2p axum rusqlite libsqlite3-sys raleph-db raleph-pipeline raleph-api raleph-storage
# Compute sees programs and files only through its own ProgramSource trait.
forbid raleph-compute rusqlite libsqlite3-sys raleph-db raleph-pipeline raleph-api raleph-storage raleph-p2p
forbid raleph-api wasmtime
forbid raleph-pipeline wasmtime
# The SDK is for others' programs: no server-side crate, no web framework, no SQL driver.
forbid raleph-sdk raleph-db raleph-pipeline raleph-api raleph-storage raleph-p2p raleph-compute raleph-chain axum rusqlite libsqlite3-sys
# The chain crate sees the node only through its own types: no store, pipeline, API or file
# store, and no SQL driver or web framework.
forbid raleph-chain raleph-db raleph-pipeline raleph-api raleph-storage rusqlite libsqlite3-sys axum
# alloy (its RPC client, signer and ABI code) stays in raleph-chain: the message model, the
# crypto crate, the store, the pipeline and the API do not link it.
alloy=(alloy-primitives alloy-sol-types alloy-provider alloy-rpc-client alloy-transport alloy-json-rpc alloy-rpc-types-eth alloy-network alloy-consensus alloy-signer alloy-signer-local)
for crate in raleph-message raleph-crypto raleph-db raleph-pipeline raleph-api; do
    forbid "$crate" "${alloy[@]}"
done

exit "$fail"
