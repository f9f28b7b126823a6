#!/usr/bin/env bash
# This build against an older revision, side by side in one run, on 127.0.0.1 only:
#
#   1. server CPU per empty poll (full handshake and resumed): scripts/bench.sh
#      PARTS=polls with FTS_BASELINE set to REV's binary, both servers alternated in
#      every run (row 3b), RUNS=7 by default;
#   2. scripts/load.sh (200 hosts x 5 polls beside 300 idle connections) served by
#      REV's binary and by this build's, alternated LOAD_RUNS=3 times each; prints the
#      p99 poll duration of every run and the medians.
#
# Usage: scripts/compare.sh REV (a commit, e.g. the main a change started from).
# REV is built (release) in a temporary git worktree with its own target folder under
# BENCH_DIR (default /var/tmp), both removed on exit. Bounded by the scripts it runs.
set -euo pipefail
cd "$(dirname "$0")/.."

rev="${1:?usage: scripts/compare.sh REV}"
base="${BENCH_DIR:-/var/tmp}"
runs="${RUNS:-7}"
load_runs="${LOAD_RUNS:-3}"

old=$(mktemp -d "$base/fts-compare.XXXXXX")
cleanup() {
  git worktree remove --force "$old/tree" >/dev/null 2>&1 || true
  rm -rf "$old"
}
trap cleanup EXIT

echo "== building $rev (release) in $old"
git worktree add --detach --quiet "$old/tree" "$rev"
(cd "$old/tree" && CARGO_TARGET_DIR="$old/target" cargo build --release --locked --quiet --bin fts)
old_fts="$old/target/release/fts"
echo "== building this tree (release)"
cargo build --release --locked --quiet --bin fts --example load --example loadgen
new_fts="${CARGO_TARGET_DIR:-$PWD/target}/release/fts"

echo "== 1. CPU per empty poll: this build vs $rev, $runs alternating runs"
PARTS=polls RUNS="$runs" FTS_BASELINE="$old_fts" scripts/bench.sh | grep -E '^\| (#|-|3)'

echo "== 2. scripts/load.sh p99: $rev vs this build, $load_runs alternating runs each"
p99() { sed -n 's/.* p99 \([0-9.]*\) ms.*/\1/p'; }
old_p99=() new_p99=()
for r in $(seq 1 "$load_runs"); do
  for which in old new; do
    # Alternate the order too, so that neither always runs on a warmer machine.
    [ $((r % 2)) -eq 0 ] && which=$([ "$which" = old ] && echo new || echo old)
    bin=$([ "$which" = old ] && echo "$old_fts" || echo "$new_fts")
    v=$(FTS_BIN="$bin" scripts/load.sh 2>&1 | p99)
    echo "   run $r $which: p99 ${v:-?} ms"
    if [ "$which" = old ]; then old_p99+=("${v:-nan}"); else new_p99+=("${v:-nan}"); fi
  done
done
med() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
mo=$(med "${old_p99[@]}") mn=$(med "${new_p99[@]}")
# The allowance of issue 16: at most 10 % or 50 ms more, whichever is larger.
allow=$(awk -v b="$mo" 'BEGIN { printf "%.1f", (b * 0.10 > 50 ? b * 1.10 : b + 50) }')
verdict=$(awk -v n="$mn" -v a="$allow" 'BEGIN { print (n <= a ? "met" : "NOT met") }')
echo "load.sh p99 median: $rev $mo ms, this build $mn ms (allowed <= $allow ms): $verdict"
