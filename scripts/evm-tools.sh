#!/usr/bin/env bash
# Installs the pinned EVM tools of the chain tests (contracts/package.json and its lock: the
# Solidity compiler solcjs and anvil, both from the npm registry), compiles each contract
# (contracts/AlephSync.sol, contracts/AlephMerkleVerifier.sol) and checks that the result
# equals its committed artifact (contracts/<name>.json: ABI, creation and runtime bytecode),
# then prints the anvil binary's path on its last line.
#
#   scripts/evm-tools.sh           install if missing, check the artifact, print anvil's path
#   scripts/evm-tools.sh --write   the same, but (re)write the artifacts instead of checking them
#
# The tools are installed once per lock file into $RALEPH_CACHE_DIR/evm-tools/<lock hash>/
# (default ~/.cache/raleph), so every clone on the machine shares them and a new pin installs
# beside the old one.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CONTRACTS="$ROOT/contracts"
# The contracts: contracts/<name>.sol, compiled to contracts/<name>.json.
CONTRACT_NAMES=(AlephSync AlephMerkleVerifier)
CACHE="${RALEPH_CACHE_DIR:-$HOME/.cache/raleph}"

mode=check
case "${1:-}" in
    "") ;;
    --write) mode=write ;;
    *) echo "usage: $0 [--write]" >&2; exit 2 ;;
esac

for tool in node npm; do
    command -v "$tool" >/dev/null || { echo "evm-tools: $tool is required (Node.js >= 20)" >&2; exit 1; }
done

lock_hash="$(cat "$CONTRACTS/package.json" "$CONTRACTS/package-lock.json" | sha256sum | cut -c1-16)"
TOOLS="$CACHE/evm-tools/$lock_hash"
SOLCJS="$TOOLS/node_modules/.bin/solcjs"
ANVIL="$TOOLS/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"

if [ ! -x "$SOLCJS" ] || [ ! -x "$ANVIL" ] || [ ! -e "$TOOLS/.installed" ]; then
    echo "evm-tools: installing solc and anvil into $TOOLS" >&2
    rm -rf "$TOOLS"
    mkdir -p "$TOOLS"
    cp "$CONTRACTS/package.json" "$CONTRACTS/package-lock.json" "$TOOLS/"
    (cd "$TOOLS" && npm ci --no-audit --no-fund --loglevel=error >&2)
    [ -x "$SOLCJS" ] || { echo "evm-tools: npm ci did not install solcjs at $SOLCJS" >&2; exit 1; }
    [ -x "$ANVIL" ] || { echo "evm-tools: npm ci did not install anvil at $ANVIL" >&2; exit 1; }
    touch "$TOOLS/.installed"
fi

# Each contract is compiled on its own (one source, one standard-JSON input): optimizer on
# (200 runs, solc's usual default), the outputs the artifact keeps. The metadata hash appended
# to the bytecode covers the source, so any edit of a .sol file shows up as a changed artifact.
compile() {
    local name="$1" input raw output
    input="$(node -e '
const fs = require("fs");
const [file, name] = process.argv.slice(1);
process.stdout.write(JSON.stringify({
  language: "Solidity",
  sources: { [name + ".sol"]: { content: fs.readFileSync(file, "utf8") } },
  settings: {
    optimizer: { enabled: true, runs: 200 },
    outputSelection: { "*": { [name]: ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
  },
}));
' "$CONTRACTS/$name.sol" "$name")"
    # solcjs prints warning lines (missing SMT solvers) before the JSON: drop them.
    raw="$(cd "$TOOLS" && printf '%s' "$input" | "$SOLCJS" --standard-json)"
    output="$(printf '%s\n' "$raw" | sed -n '/^{/,$p')"
    [ -n "$output" ] || { echo "evm-tools: solcjs printed no JSON for $name:" >&2; printf '%s\n' "$raw" >&2; return 1; }
    printf '%s' "$output" | node -e '
const fs = require("fs");
const [tools, name] = process.argv.slice(1);
const out = JSON.parse(fs.readFileSync(0, "utf8"));
const errors = (out.errors || []).filter((e) => e.severity === "error");
if (errors.length) {
  for (const e of errors) console.error(e.formattedMessage || e.message);
  process.exit(1);
}
const c = out.contracts[name + ".sol"][name];
const version = require(tools + "/node_modules/solc/package.json").version;
process.stdout.write(JSON.stringify({
  contractName: name,
  compiler: "solc " + version,
  optimizer: { enabled: true, runs: 200 },
  abi: c.abi,
  bytecode: "0x" + c.evm.bytecode.object,
  deployedBytecode: "0x" + c.evm.deployedBytecode.object,
}, null, 2) + "\n");
' "$TOOLS" "$name"
}

for name in "${CONTRACT_NAMES[@]}"; do
    artifact="$CONTRACTS/$name.json"
    compiled="$(compile "$name")" || { echo "evm-tools: compiling contracts/$name.sol failed" >&2; exit 1; }
    if [ "$mode" = write ]; then
        printf '%s\n' "$compiled" >"$artifact"
        echo "evm-tools: wrote $artifact" >&2
    elif ! diff -u "$artifact" <(printf '%s\n' "$compiled") >&2; then
        echo "evm-tools: contracts/$name.json does not match contracts/$name.sol compiled by the pinned solc." >&2
        echo "evm-tools: if the source change is intended, run scripts/evm-tools.sh --write and commit the artifact." >&2
        exit 1
    fi
done

"$ANVIL" --version >&2
echo "$ANVIL"
