#!/usr/bin/env bash
# The quickstart: shows fts working end to end on this machine.
#
# The server, the poller and the store are not built yet (see the open issues), so for
# now this builds fts and shows what exists. It exits non-zero if anything it shows
# did not happen.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "Building fts (release)"
cargo build --release --locked --quiet
fts="$PWD/target/release/fts"

say "The commands fts offers"
"$fts" --help

say "The quickstart is not complete yet: serve, poll and publish are still being built."
