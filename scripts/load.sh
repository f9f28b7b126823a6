#!/usr/bin/env bash
# The full load run, on 127.0.0.1 only: 200 hosts (200 client ids, each with its own
# certificate made by `fts keygen`) poll one `fts serve` at once through the real
# verifying client, 5 polls each, while 300 idle TCP connections that never start a
# handshake are held open. Prints the figures: polls ok/failed, p50/p99 poll
# duration, idle connections closed by the handshake timeout, and the server's peak
# RSS (VmHWM); exits non-zero if a poll failed, an idle connection stayed open, or the
# peak RSS reached 200 MiB. Bounded: the driver stops after its polls and a 60 s watch
# of the idle connections, under a 10-minute timeout; the server is stopped on exit.
#
# Sizes can be changed: CLIENTS=200 POLLS=5 IDLE=300 HANDSHAKE_TIMEOUT=5s scripts/load.sh
# FTS_BIN=/path/to/fts serves (and provisions) with that binary instead of this tree's,
# as scripts/compare.sh does to set an older build beside this one.
# The driver is examples/load (its logic, examples/load/driver.rs, also runs reduced
# in the test suite as tests/it/load.rs).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."

clients="${CLIENTS:-200}"
polls="${POLLS:-5}"
idle="${IDLE:-300}"
handshake_timeout="${HANDSHAKE_TIMEOUT:-5s}"

echo "== building fts and the load driver (release)"
cargo build --release --locked --quiet --bin fts --example load
target="${CARGO_TARGET_DIR:-$PWD/target}"
fts="${FTS_BIN:-$target/release/fts}"
driver="$target/release/examples/load"

enter_workdir fts-load
# 300 idle connections + 200 hosts' connections, lock files and state files.
ulimit -n 4096 2>/dev/null || ulimit -n "$(ulimit -Hn)"

echo "== provisioning a CA, the server, $clients hosts and the signing key in $work"
"$fts" keygen ca >/dev/null
"$fts" keygen server --name localhost --name 127.0.0.1 >/dev/null
"$fts" keygen signing >/dev/null
for n in $(seq 1 "$clients"); do "$fts" keygen client --id "host-$n" >/dev/null; done

echo "== publishing: three files for every host, one for each of the first ten"
head -c 1024 /dev/urandom > notice.txt
head -c $((256 * 1024)) /dev/urandom > tool.bin
head -c $((1024 * 1024)) /dev/urandom > patch.deb
for f in notice.txt tool.bin patch.deb; do "$fts" publish "$f" --to all >/dev/null; done
for n in $(seq 1 10); do
  echo "for host-$n" > "own-$n.conf"
  "$fts" publish "own-$n.conf" --as own.conf --to "host-$n" >/dev/null
done

# Every simulated host connects from 127.0.0.1, one source to the per-source limits:
# lift them, as a NAT gateway in --trusted-proxy would be.
"$fts" serve --listen 127.0.0.1:0 --handshake-timeout "$handshake_timeout" \
  --max-handshakes-per-ip 100000 --max-connection-rate-per-ip 100000 \
  --log-format json 2> serve.log &
server_pid=$!
addr=$(wait_for_listening "$server_pid" serve.log) || exit 1
echo "== fts serve (pid $server_pid) on $addr, handshake timeout $handshake_timeout"

echo "== $clients hosts x $polls polls, beside $idle idle TCP connections"
status=0
timeout 600 "$driver" --server "$addr" --certs certs --work hosts --ids host- --clients "$clients" \
  --polls "$polls" --idle "$idle" --idle-limit 60 --server-pid "$server_pid" --max-rss-mib 200 || status=$?
exit "$status"
