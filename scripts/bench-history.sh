#!/usr/bin/env bash
# What a host enrolled after a long history receives (issue 19, docs/PERFORMANCE.md
# "Issue 19"): a store of WEEKS weekly releases of three files of SIZE bytes each, with
# two release-key rotations on the way; a fresh host polls once (`fts poll --once`) and
# the script prints, per run, the files and bytes the server sent (from its `poll` log
# line) and the wall time of the poll. With FTS_BASELINE=/path/to/fts (an earlier
# release, which receives every version whole) its client polls the same server
# alternately, with the first trust file (it cannot follow rotations, so the history
# is published without them then). Medians of RUNS runs. 127.0.0.1 only, bounded
# (every command under `timeout`), removes its files.
#
#   scripts/bench-history.sh                      # WEEKS=52 SIZE=1048576 RUNS=3
#   FTS_BASELINE=target/previous-release/fts scripts/bench-history.sh
set -euo pipefail
cd "$(dirname "$0")/.."

WEEKS=${WEEKS:-52}
SIZE=${SIZE:-1048576}
RUNS=${RUNS:-3}
FTS=${FTS_BIN:-target/release/fts}
[[ -x "$FTS" ]] || cargo build --release --locked --bin fts >&2
FTS=$(realpath "$FTS")
BASE=${FTS_BASELINE:+$(realpath "$FTS_BASELINE")}

work=$(mktemp -d "${BENCH_DIR:-/var/tmp}/fts-history.XXXXXX")
serve_pid=""
cleanup() { [[ -n "$serve_pid" ]] && kill "$serve_pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
cd "$work"
t() { timeout 120 "$@"; }

t "$FTS" keygen ca >/dev/null
t "$FTS" keygen server --name 127.0.0.1 >/dev/null
t "$FTS" keygen signing >/dev/null
t "$FTS" keygen client --id web-01 >/dev/null
cp certs/signing.pub first.pub
rotations=yes
[[ -n "$BASE" ]] && rotations=no
for week in $(seq 1 "$WEEKS"); do
  if [[ $rotations == yes && ( $week == $((WEEKS / 3)) || $week == $((2 * WEEKS / 3)) ) ]]; then
    t "$FTS" keygen rotate >/dev/null
  fi
  for name in openssl.deb app.conf motd; do
    head -c "$SIZE" /dev/urandom >"$name"
    t "$FTS" publish "$name" --to web-01 >/dev/null
  done
done

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$FTS" serve --listen "127.0.0.1:$port" --log-format json --poll-after 1s >serve.log 2>&1 &
serve_pid=$!
for _ in $(seq 50); do grep -q listening serve.log && break; sleep 0.1; done

declare -A samples
add() { samples[$1]="${samples[$1]:-} $2"; }
median() { tr ' ' '\n' <<<"${samples[$1]:-}" | grep . | sort -g | awk '{v[NR] = $1} END { print v[int((NR + 1) / 2)] }'; }
poll_once() { # NAME BINARY TRUST
  rm -rf "in-$1"
  local before start end line
  before=$(grep -c '"poll"' serve.log || true)
  start=$(date +%s%N)
  t "$2" poll --once --server "127.0.0.1:$port" --id web-01 --dest "in-$1" --trust "$3" >/dev/null 2>&1
  end=$(date +%s%N)
  sleep 0.2
  line=$(grep '"poll"' serve.log | tail -n +"$((before + 1))")
  add "$1_ms" $(((end - start) / 1000000))
  add "$1_files" "$(grep -o '"files":[0-9]*' <<<"$line" | cut -d: -f2 | awk '{s += $1} END {print s + 0}')"
  add "$1_bytes" "$(grep -o '"bytes":[0-9]*' <<<"$line" | cut -d: -f2 | awk '{s += $1} END {print s + 0}')"
  add "$1_polls" "$(wc -l <<<"$line")"
}
for _ in $(seq "$RUNS"); do
  poll_once this "$FTS" certs/signing.pub
  [[ -n "$BASE" ]] && poll_once base "$BASE" first.pub
done
printf 'history: %s weeks x 3 files of %s bytes (%s entries), rotations: %s\n' "$WEEKS" "$SIZE" "$((WEEKS * 3))" "$rotations"
for who in this ${BASE:+base}; do
  printf '%-5s files sent %s, bytes sent %s, answers %s, poll wall time %s ms (median of %s)\n' \
    "$who" "$(median "${who}_files")" "$(median "${who}_bytes")" "$(median "${who}_polls")" "$(median "${who}_ms")" "$RUNS"
done
