#!/usr/bin/env bash
# Issue 20, the fleet view at 50,000 hosts (docs/PERFORMANCE.md, "Issue 20"): builds
# `examples/fleet_status` and `fts` in release and runs the three measures, each
# printing its figures beside its target with PASS or FAIL:
#
#   1. views:    a status folder of HOSTS hosts (written through fts-status's
#                record_poll / record_offered / record_receipts, receipts signed by
#                each host's own key) and a store of 300 signed entries; the library
#                calls of `fts status` timed alone, then the real `fts status` (fleet
#                summary and `--file web.conf`, text and --json), medians of RUNS.
#                Target: each under 2 s. views-db (issue 21): the same folder imported
#                into PostgreSQL (`fts status-db import`), and `fts status --status-db`
#                timed the same way (under scripts/with-postgres.sh).
#   2. receipts: the real server in-process over mutual TLS, RECEIPT_HOSTS client
#                certificates of one CA, every host sending one receipt at the same
#                moment (twice: certificates new, then known), RUNS times over with a
#                fresh CA, folder and server each. Target: every acknowledged receipt
#                in the log, none lost.
#   3. memory:   the VmRSS of a process whose StatusDir learns BOOK_HOSTS hosts, then
#                of a real `fts serve --plaintext` after HOSTS distinct client ids
#                polled it (twice). Target: under 200 MiB.
#
# 127.0.0.0/8 only (the receipt hosts connect from 127.1.x.y, the pollers from
# 127.2.0.x, to the server on 127.0.0.1). Bounded: every phase under `timeout`; the
# server is stopped and the temporary folder (about 250 MiB at 50,000 hosts, in
# $TMPDIR, default /tmp) removed on exit, whatever happens. Exits 1 when a target
# is missed.
#
#   scripts/bench-fleet.sh                  # HOSTS=50000 RUNS=5 RECEIPT_HOSTS=1000 BOOK_HOSTS=50000
#   HOSTS=5000 RUNS=3 scripts/bench-fleet.sh   # a quick trial
#   PARTS="views receipts" scripts/bench-fleet.sh
#   PARTS="views views-db" scripts/with-postgres.sh scripts/bench-fleet.sh   # both backends
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."

hosts="${HOSTS:-50000}"
runs="${RUNS:-5}"
receipt_hosts="${RECEIPT_HOSTS:-1000}"
book_hosts="${BOOK_HOSTS:-$hosts}"
receipt_share="${RECEIPT_SHARE:-60}"
parts="${PARTS:-views receipts memory}"

build_with_example fleet_status

enter_workdir fts-fleet
# 1,000 TLS connections on both ends in one process, and the pollers' sockets.
ulimit -n 8192 2>/dev/null || ulimit -n "$(ulimit -Hn)"
status=0
load() { printf 'load average: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"; }
echo "== $(nproc) cores, $(load), in $work"

has() { [[ " $parts " == *" $1 "* ]]; }

if has views || has views-db || has memory; then
  echo "== building the fleet: $hosts hosts, $receipt_share % of the reachable ones sending receipts"
  timeout 1200 "$bench" build --dir fleet --hosts "$hosts" --receipt-share "$receipt_share"
fi

if has views; then
  echo "== 1. fts status at $hosts hosts ($(load))"
  timeout 1200 "$bench" views --dir fleet --runs "$runs" --fts "$fts" || status=1
fi

if has views-db; then
  # The same fleet in PostgreSQL (issue 21): run under scripts/with-postgres.sh, or
  # with FTS_TEST_POSTGRES and FTS_TEST_POSTGRES_PASSWORD_FILE naming a cluster.
  if [[ -z ${FTS_TEST_POSTGRES:-} ]]; then
    echo "== 1b. skipped: no PostgreSQL (run under scripts/with-postgres.sh)"
  else
    echo "== 1b. fts status --status-db at $hosts hosts ($(load))"
    pw="$FTS_TEST_POSTGRES_PASSWORD_FILE"
    PGPASSWORD="$(cat "$pw")" psql -X -q -d "$FTS_TEST_POSTGRES/postgres" -c "DROP DATABASE IF EXISTS fts_bench" -c "CREATE DATABASE fts_bench"
    db=(--status-db "$FTS_TEST_POSTGRES/fts_bench" --status-db-password-file "$pw")
    "$fts" status-db migrate "${db[@]}"
    started=$(date +%s.%N)
    "$fts" status-db import --status-dir fleet/status "${db[@]}"
    echo "import: $(python3 -c "print(f'{$(date +%s.%N) - $started:.2f}')") s"
    for view in "" "--json" "--file web.conf" "--file web.conf --json"; do
      times=()
      for _ in $(seq "$runs"); do
        started=$(date +%s.%N)
        # shellcheck disable=SC2086 # the view's words
        "$fts" status --store fleet/store "${db[@]}" $view >/dev/null 2>&1 || true
        times+=("$(python3 -c "print($(date +%s.%N) - $started)")")
      done
      median=$(printf '%s\n' "${times[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
      verdict=$(python3 -c "print('PASS' if $median < 2 else 'FAIL')")
      [[ $verdict == PASS ]] || status=1
      printf 'fts status %-24s median %.2f s of %s (target < 2 s) %s\n' "${view:-(summary)}" "$median" "$runs" "$verdict"
    done
    PGPASSWORD="$(cat "$pw")" psql -X -q -d "$FTS_TEST_POSTGRES/postgres" -c "DROP DATABASE fts_bench WITH (FORCE)"
  fi
fi

if has receipts; then
  echo "== 2. receipts of $receipt_hosts hosts at once ($(load))"
  timeout 900 "$bench" receipts --hosts "$receipt_hosts" --rounds 2 --runs "$runs" || status=1
fi

if has memory; then
  echo "== 3a. the last-polls book of a StatusDir with $book_hosts hosts ($(load))"
  timeout 600 "$bench" book --hosts "$book_hosts" --step 10000 || status=1

  echo "== 3b. fts serve --plaintext after $hosts distinct client ids polled ($(load))"
  "$fts" serve --plaintext --listen 127.0.0.1:0 --store fleet/store --status-dir serve-status \
    --log-format json 2> serve.log &
  server_pid=$!
  addr=$(wait_for_listening "$server_pid" serve.log) || exit 1
  timeout 900 "$bench" polls --server "$addr" --server-pid "$server_pid" --hosts "$hosts" --rounds 2 \
    --concurrency 32 --sources 64 || status=1
  kill "$server_pid" 2>/dev/null || true
  timeout 60 tail --pid="$server_pid" -f /dev/null || kill -9 "$server_pid" 2>/dev/null || true
  server_pid=""
fi

echo "== done ($(load)); verdict: $([[ $status == 0 ]] && echo PASS || echo FAIL)"
exit "$status"
