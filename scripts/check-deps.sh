#!/usr/bin/env bash
# Checks the dependency direction ARCHITECTURE.md promises: the message model and the crypto
# crate are pure (no async runtime, web framework, network stack or SQL driver), and no
# server-side crate leaks into another's place.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

fail=0
forbid() {
    local crate="$1"; shift
    local tree
    tree="$(cargo tree -p "$crate" -e normal --prefix none --format '{p}' 2>/dev/null | awk '{print $1}' | sort -u)"
    for banned in "$@"; do
        if grep -qx "$banned" <<<"$tree"; then
            echo "dependency rule broken: $crate depends on $banned" >&2
            fail=1
        fi
    done
}

pure=(tokio axum hyper rusqlite libsqlite3-sys reqwest libp2p sqlx)
forbid raleph-message "${pure[@]}" raleph-crypto raleph-db raleph-pipeline raleph-api
forbid raleph-crypto "${pure[@]}" raleph-db raleph-pipeline raleph-api
forbid raleph-db tokio axum raleph-pipeline raleph-api
forbid raleph-pipeline axum rusqlite raleph-api
forbid raleph-api rusqlite libsqlite3-sys
forbid raleph-p2p axum rusqlite libsqlite3-sys raleph-db raleph-pipeline raleph-api raleph-storage
# Compute sees programs and files only through its own ProgramSource trait.
forbid raleph-compute rusqlite libsqlite3-sys raleph-db raleph-pipeline raleph-api raleph-storage raleph-p2p
forbid raleph-api wasmtime
forbid raleph-pipeline wasmtime
forbid raleph-sdk raleph-db raleph-pipeline raleph-api raleph-storage axum rusqlite

exit "$fail"
