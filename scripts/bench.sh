#!/usr/bin/env bash
# fts against nginx + curl, side by side in one run, on 127.0.0.1 only, with the same
# ECDSA P-256 certificates from `fts keygen` for both (docs/PERFORMANCE.md explains the
# figures and what limits them). Prints medians of RUNS alternating runs and ratios:
#
#   1. verified install of a 1 GiB file: `fts poll --once` (receive, hash, fsync,
#      rename) vs `curl -o` from nginx (TLS 1.3, ssl_verify_client on) then
#      (a) sha256sum, (b) openssl dgst -sha256, (c) no check; in context, curl then an
#      fsync of the file, fts into tmpfs, and the disk alone (dd of 1 GiB, fdatasync);
#   2. server CPU per GiB sent: the fts serve process vs the nginx worker;
#   3. server CPU per empty poll / empty GET over a full mutual-TLS handshake, and
#      with session resumption (examples/loadgen.rs drives both, same rustls client);
#   4. peak RSS of server and client for a 1 GiB and a 4 GiB transfer, and server RSS
#      per idle connection with 1,000 connections open (handshake done);
#   5. fts publish of a 1 GiB file vs openssl dgst -sha256 of it;
#   6. the log (issue 18): a host's verification of one answer from a log of 10^6
#      leaves, and the bytes the log adds to an answer (examples/logverify.rs).
#
# Bounded (a watchdog stops it after 25 minutes; about 10 is usual), stops every
# process it started, removes its files. Needs about 12 GiB free for the 4 GiB case
# (skipped below 20 GiB free). Installs nginx-light, curl and time from Debian when
# missing. Knobs: RUNS=5 CONNECTIONS=1000 IDLE=1000 BENCH_DIR=/var/tmp, and
# PARTS="install huge polls idle publish log" to run only some parts (install: rows 1, 2
# and the 1 GiB memory rows; huge: the 4 GiB transfer; polls: row 3; idle: the idle
# connections; publish: row 5; log: row 6), e.g. PARTS=polls for a two-minute check of
# row 3. The empty polls of row 3 carry `log-size` (the store's checkpoint size), as
# every `fts poll` does since issue 18, so this build's server answers each with a
# `log` frame and `done` (POLL_LOG=0: without `log-size`, as before issue 18).
# FTS_BASELINE=/path/to/another/fts runs a second server with that binary (same store,
# certificates and flags) and adds rows to two parts, alternated with this build's in
# every run: to install, rows 1b and 2b (that binary's `fts poll` from its server, into
# ext4 and into tmpfs, and its server's CPU per GiB); to polls, row 3b (the same empty
# polls against it). scripts/compare.sh REV sets it up.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."

runs="${RUNS:-5}"
connections="${CONNECTIONS:-1000}"
idle="${IDLE:-1000}"
base="${BENCH_DIR:-/var/tmp}"
size_mib="${SIZE_MIB:-1024}" # for a quick trial of the script only: the figures are for 1024
parts=" ${PARTS:-install huge polls idle publish log} "
want() { [[ "$parts" == *" $1 "* ]]; }
for part in $parts; do
  case "$part" in install | huge | polls | idle | publish | log) ;; *) echo "bench.sh: unknown part $part in PARTS" >&2; exit 2 ;; esac
done

say() { printf '== %s\n' "$*" >&2; }

install_missing() {
  local missing=()
  command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
  command -v curl >/dev/null || missing+=(curl)
  [ -x /usr/bin/time ] || missing+=(time)
  command -v openssl >/dev/null || missing+=(openssl)
  [ ${#missing[@]} -eq 0 ] && return
  say "installing ${missing[*]} from Debian packages"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq >/dev/null || true
  for p in "${missing[@]}"; do
    if [ "$p" = nginx ]; then
      $sudo apt-get install -y -qq nginx-light >/dev/null 2>&1 || $sudo apt-get install -y -qq nginx >/dev/null
      # The package starts a system nginx on port 80; this benchmark runs its own.
      $sudo systemctl stop nginx >/dev/null 2>&1 || true
    else
      $sudo apt-get install -y -qq "$p" >/dev/null
    fi
  done
}
install_missing
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)

say "building fts, examples/loadgen and examples/logverify (release)"
cargo build --release --locked --quiet --bin fts --example loadgen --example logverify
target="${CARGO_TARGET_DIR:-$PWD/target}"
fts="$target/release/fts"
loadgen="$target/release/examples/loadgen"
logverify="$target/release/examples/logverify"

mkdir -p "$base"
work=$(mktemp -d "$base/fts-bench.XXXXXX")
pids=()
watchdog=""
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ -n "$watchdog" ]; then
    kill "$watchdog" 2>/dev/null || true
    wait "$watchdog" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
(
  trap 'kill "$s" 2>/dev/null; exit 0' TERM
  sleep 1500 &
  s=$!
  wait "$s"
  echo "bench.sh: the 25-minute bound passed: stopping" >&2
  kill -TERM $$
) >/dev/null &
watchdog=$!
ulimit -n 8192 2>/dev/null || ulimit -n "$(ulimit -Hn)"
cd "$work"

free_gib=$(( $(df -Pk "$work" | awk 'NR==2 {print $4}') / 1048576 ))
big4=1
if [ "${SKIP_4G:-0}" = 1 ] || ! want huge; then
  big4=0
elif [ "$free_gib" -lt 20 ]; then
  say "only $free_gib GiB free in $base: the 4 GiB case is skipped (it needs 20 GiB)"
  big4=0
fi

# --- helpers -------------------------------------------------------------------------
clk=$(getconf CLK_TCK)
now_ns() { date +%s%N; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; } # utime + stime, all threads
status_kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
declare -A samples
add() { samples[$1]="${samples[$1]:-} $2"; }
median() { tr ' ' '\n' <<<"${samples[$1]:-}" | grep . | sort -g | awk '{v[NR] = $1} END {
  if (NR == 0) { print "nan"; exit } if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
calc() { awk "BEGIN { printf \"%.${2:-2}f\", $1 }"; }
free_port() {
  local port
  while :; do
    port=$(( 20000 + RANDOM % 30000 ))
    ss -Htln "sport = :$port" 2>/dev/null | grep -q . || { echo "$port"; return; }
  done
}

# --- machine -------------------------------------------------------------------------
say "machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1), $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) RAM; load average $(cut -d ' ' -f 1-3 /proc/loadavg)"
say "work folder $work ($(df -PT "$work" | awk 'NR==2 {print $2}'), $free_gib GiB free)"

# --- provisioning ---------------------------------------------------------------------
say "provisioning certificates with fts keygen (ECDSA P-256) and test files"
"$fts" keygen ca >/dev/null
"$fts" keygen server --name 127.0.0.1 --name localhost >/dev/null
"$fts" keygen signing >/dev/null
for id in bench-big bench-huge bench-empty; do "$fts" keygen client --id "$id" >/dev/null; done
if want install || want publish; then head -c $((size_mib << 20)) /dev/urandom >big.bin; else : >big.bin; fi
[ "$big4" -eq 1 ] && head -c $((4 << 30)) /dev/urandom >big4.bin
mkdir www && : >www/empty && ln big.bin www/big.bin
[ "$big4" -eq 1 ] && ln big4.bin www/big4.bin

# The disk's durable write speed bounds everything that fsyncs a gigabyte.
sync
t0=$(now_ns)
dd if=/dev/zero of=ddtest bs=1M count=512 conv=fdatasync status=none
disk_mbs=$(calc "512 * 1048576 / (($(now_ns) - $t0) / 1e9) / 1e6" 0)
rm -f ddtest
say "disk: $disk_mbs MB/s durable write (dd 512 MiB, conv=fdatasync)"

"$fts" publish big.bin --to bench-big --store store >/dev/null
[ "$big4" -eq 1 ] && "$fts" publish big4.bin --to bench-huge --store store >/dev/null
# Every publish appends a leaf and signs log/checkpoint: the polls ask from its size.
log_size=$(sed -n 2p store/log/checkpoint)
log_args=(--log-size "$log_size")
[ "${POLL_LOG:-1}" = 0 ] && log_args=() # POLL_LOG=0: polls as before issue 18, no log-size

# --- servers --------------------------------------------------------------------------
# Every connection comes from 127.0.0.1: the per-source limits are lifted (as for a
# --trusted-proxy), so that they do not turn the load generator away.
"$fts" --log-format json serve --listen 127.0.0.1:0 --store store --status-dir status \
  --request-timeout 300s --max-polls-per-client 100 \
  --max-handshakes-per-ip 100000 --max-connection-rate-per-ip 100000 2>serve.log &
fts_pid=$!
pids+=("$fts_pid")
addr=$(wait_for_listening "$fts_pid" serve.log) || exit 1
baseline="${FTS_BASELINE:-}"
if [ -n "$baseline" ] && { want polls || want install; }; then
  mkdir -p status-baseline
  "$baseline" --log-format json serve --listen 127.0.0.1:0 --store store --status-dir status-baseline \
    --request-timeout 300s --max-polls-per-client 100 \
    --max-handshakes-per-ip 100000 --max-connection-rate-per-ip 100000 2>serve-baseline.log &
  base_pid=$!
  pids+=("$base_pid")
  base_addr=$(wait_for_listening "$base_pid" serve-baseline.log) || exit 1
fi

port=$(free_port)
mkdir nginx
user_line=""
[ "$(id -u)" -eq 0 ] && user_line="user root;"
cat >nginx/nginx.conf <<EOF
$user_line
worker_processes 1;
worker_rlimit_nofile 8192;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
  default_type application/octet-stream;
  access_log $work/nginx/access.log;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  sendfile on;
  keepalive_timeout 300s;
  client_header_timeout 300s;
  server {
    listen 127.0.0.1:$port ssl;
    ssl_protocols TLSv1.3;
    ssl_certificate $work/certs/server.crt;
    ssl_certificate_key $work/certs/server.key;
    ssl_verify_client on;
    ssl_client_certificate $work/certs/ca.crt;
    ssl_session_cache shared:SSL:10m;
    ssl_session_tickets on;
    root $work/www;
  }
}
EOF
"$nginx_bin" -p "$work/nginx" -e "$work/nginx/error.log" -c "$work/nginx/nginx.conf" -g 'daemon off;' &
nginx_pid=$!
pids+=("$nginx_pid")
worker=""
for _ in $(seq 1 100); do
  worker=$(pgrep -P "$nginx_pid" | head -n 1 || true)
  [ -n "$worker" ] && ss -Htln "sport = :$port" | grep -q . && break
  kill -0 "$nginx_pid" 2>/dev/null || { cat nginx/error.log >&2; echo "nginx did not start" >&2; exit 1; }
  sleep 0.1
done
[ -n "$worker" ] || { echo "no nginx worker" >&2; exit 1; }
nginx_addr="127.0.0.1:$port"
say "fts serve pid $fts_pid on $addr; nginx $("$nginx_bin" -v 2>&1 | sed 's/.*\///') worker pid $worker on $nginx_addr"

curl_args=(curl -sS --fail --tlsv1.3 --cacert certs/ca.crt --cert certs/bench-big.crt --key certs/bench-big.key)
curl_get() { "${curl_args[@]}" -o "$2" "https://$nginx_addr$1"; } # URL-PATH OUT
curl_get /empty /dev/null || { cat nginx/error.log >&2; echo "curl cannot fetch from nginx" >&2; exit 1; }

fts_poll() { # ID DEST STATE TIMEFILE [BINARY SERVER-ADDR]: this build's client and server by default
  /usr/bin/time -f '%e %M' -o "$4" timeout 300 "${5:-$fts}" --log-format json poll --once --server "${6:-$addr}" \
    --id "$1" --cert "certs/$1.crt" --key "certs/$1.key" --ca certs/ca.crt --trust certs/signing.pub \
    --dest "$2" --state "$3" >/dev/null 2>>poll.log
}
shm=""
if [ -d /dev/shm ] && [ "$(df -Pk /dev/shm | awk 'NR==2 {print $4}')" -gt $((3 << 20)) ]; then
  shm=$(mktemp -d /dev/shm/fts-bench.XXXXXX)
  trap 'rm -rf "$shm"; cleanup' EXIT
fi

# --- 1 and 2: a 1 GiB verified install, and server CPU per GiB ----------------------
want install && say "1/2. verified install of 1 GiB, $runs alternating runs (a sync before each, untimed)"
fts_run() { # RUN [base]: this build (samples fts_*), or the baseline's client and server (base_*)
  local r=$1 k=${2:-fts} bin=$fts a=$addr pid=$fts_pid c0 t0 t1 c1
  [ "$k" = base ] && { bin=$baseline; a=$base_addr; pid=$base_pid; }
  sync
  c0=$(cpu_ticks "$pid")
  t0=$(now_ns)
  fts_poll bench-big "dest-$r" "state-$r.json" "time-$k-$r" "$bin" "$a"
  t1=$(now_ns)
  c1=$(cpu_ticks "$pid")
  cmp -s big.bin "dest-$r/big.bin" || { echo "the installed file differs ($k)" >&2; exit 1; }
  add "${k}_s" "$(calc "($t1 - $t0) / 1e9" 3)"
  add "${k}_cpu" "$(calc "($c1 - $c0) / $clk * 1024 / $size_mib" 3)"
  add "${k}_client_rss" "$(awk '{print $2}' "time-$k-$r")"
  rm -rf "dest-$r" "state-$r.json"
  if [ -n "$shm" ]; then
    t0=$(now_ns)
    fts_poll bench-big "$shm/dest-$r" "$shm/state-$r.json" "time-shm-$k-$r" "$bin" "$a"
    add "${k}_shm_s" "$(calc "($(now_ns) - $t0) / 1e9" 3)"
    rm -rf "${shm:?}/dest-$r" "$shm/state-$r.json"
  fi
}
nginx_run() {
  local r=$1 c0 t0 t1 c1
  sync
  c0=$(cpu_ticks "$worker")
  t0=$(now_ns)
  /usr/bin/time -f '%e %M' -o "time-curl-$r" "${curl_args[@]}" -o "got-$r" "https://$nginx_addr/big.bin"
  t1=$(now_ns)
  c1=$(cpu_ticks "$worker")
  add curl_s "$(calc "($t1 - $t0) / 1e9" 3)"
  add nginx_cpu "$(calc "($c1 - $c0) / $clk * 1024 / $size_mib" 3)"
  add curl_rss "$(awk '{print $2}' "time-curl-$r")"
  t0=$(now_ns); sha256sum "got-$r" >/dev/null; t1=$(now_ns)
  add sha256sum_s "$(calc "($t1 - $t0) / 1e9" 3)"
  t0=$(now_ns); openssl dgst -sha256 "got-$r" >/dev/null; t1=$(now_ns)
  add openssl_s "$(calc "($t1 - $t0) / 1e9" 3)"
  t0=$(now_ns); sync "got-$r"; t1=$(now_ns)
  add fsync_s "$(calc "($t1 - $t0) / 1e9" 3)"
  cmp -s big.bin "got-$r" || { echo "curl's file differs" >&2; exit 1; }
  rm -f "got-$r"
  # The disk alone, in the same run: how long it takes the same size durably.
  sync
  t0=$(now_ns)
  dd if=/dev/zero of="dd-$r" bs=64K count=$((size_mib * 16)) conv=fdatasync status=none
  add dd_s "$(calc "($(now_ns) - $t0) / 1e9" 3)"
  rm -f "dd-$r"
}
last() { awk '{print $NF}' <<<"${samples[$1]:-}"; }
want install && for r in $(seq 1 "$runs"); do
  # 1b/2b: the baseline runs between this build and curl, so that it comes after this
  # build in odd runs and before it in even ones.
  if [ $((r % 2)) -eq 1 ]; then
    fts_run "$r"; [ -z "$baseline" ] || fts_run "$r" base; nginx_run "$r"
  else
    nginx_run "$r"; [ -z "$baseline" ] || fts_run "$r" base; fts_run "$r"
  fi
  printf '   run %d: fts %ss (tmpfs %ss, server %s CPU s/GiB), curl %ss (+sha256sum %ss, +openssl %ss, +fsync %ss), dd %ss%s\n' \
    "$r" "$(last fts_s)" "$(last fts_shm_s)" "$(last fts_cpu)" "$(last curl_s)" "$(last sha256sum_s)" "$(last openssl_s)" \
    "$(last fsync_s)" "$(last dd_s)" "${baseline:+; baseline $(last base_s)s (tmpfs $(last base_shm_s)s, server $(last base_cpu))}" >&2
done
server_hwm_1g=$(status_kib "$fts_pid" VmHWM)

# --- 4: memory for a 4 GiB transfer -------------------------------------------------
server_hwm_4g="skipped"
client_rss_4g="skipped"
if [ "$big4" -eq 1 ]; then
  say "4. a 4 GiB transfer (once)"
  sync
  t0=$(now_ns)
  fts_poll bench-huge dest-4g state-4g.json time-fts-4g
  fts_4g_s=$(calc "($(now_ns) - $t0) / 1e9" 1)
  cmp -s big4.bin dest-4g/big4.bin || { echo "the installed 4 GiB file differs" >&2; exit 1; }
  rm -rf dest-4g state-4g.json
  server_hwm_4g=$(status_kib "$fts_pid" VmHWM)
  client_rss_4g=$(awk '{print $2}' time-fts-4g)
  say "   4 GiB installed in $fts_4g_s s"
fi

# --- 3: server CPU per empty poll --------------------------------------------------
want polls && say "3. server CPU per empty poll: $connections connections per run, $runs alternating runs"
handshakes() { # MODE SERVER-PID KEY [--resume]
  local c0 c1 out
  c0=$(cpu_ticks "$2")
  if [ "$1" = fts ]; then
    out=$(timeout 300 "$loadgen" fts --server "$addr" --certs certs --id bench-empty --connections "$connections" \
      "${log_args[@]}" ${4:-})
  elif [ "$1" = baseline ]; then
    out=$(timeout 300 "$loadgen" fts --server "$base_addr" --certs certs --id bench-empty --connections "$connections" \
      "${log_args[@]}" ${4:-})
  else
    out=$(timeout 300 "$loadgen" http --server "$nginx_addr" --certs certs --id bench-empty --path /empty \
      --connections "$connections" ${4:-})
  fi
  c1=$(cpu_ticks "$2")
  add "$3" "$(calc "($c1 - $c0) / $clk / $connections * 1e6" 0)"
  add "$3_resumed" "$(sed -n 's/.*resumed \([0-9]*\).*/\1/p' <<<"$out")"
  add "$3_logged" "$(sed -n 's/.*log frames \([0-9]*\).*/\1/p' <<<"$out")"
}
want polls && for r in $(seq 1 "$runs"); do
  if [ $((r % 2)) -eq 1 ]; then
    handshakes fts "$fts_pid" fts_full; handshakes http "$worker" nginx_full
    handshakes fts "$fts_pid" fts_resumed --resume; handshakes http "$worker" nginx_resumed --resume
  else
    handshakes http "$worker" nginx_full; handshakes fts "$fts_pid" fts_full
    handshakes http "$worker" nginx_resumed --resume; handshakes fts "$fts_pid" fts_resumed --resume
  fi
  # 3b: this build against the baseline binary, in alternating order too.
  if [ -n "$baseline" ]; then
    if [ $((r % 2)) -eq 1 ]; then
      handshakes baseline "$base_pid" base_full; handshakes fts "$fts_pid" new_full
      handshakes baseline "$base_pid" base_resumed --resume; handshakes fts "$fts_pid" new_resumed --resume
    else
      handshakes fts "$fts_pid" new_full; handshakes baseline "$base_pid" base_full
      handshakes fts "$fts_pid" new_resumed --resume; handshakes baseline "$base_pid" base_resumed --resume
    fi
  fi
done

# --- 4: RSS per idle connection ---------------------------------------------------
want idle && say "4. server RSS with $idle idle connections (handshake done)"
idle_rss() { # MODE SERVER-ADDR SERVER-PID
  local before after lg out=idle-$1.out
  before=$(status_kib "$3" VmRSS)
  timeout 300 "$loadgen" "$1" --server "$2" --certs certs --id bench-empty --connections "$idle" --hold 120 >"$out" &
  lg=$!
  pids+=("$lg")
  for _ in $(seq 1 1200); do grep -q ready "$out" && break; kill -0 "$lg" 2>/dev/null || break; sleep 0.1; done
  grep -q ready "$out" || { echo "the idle connections did not open" >&2; exit 1; }
  sleep 2
  after=$(status_kib "$3" VmRSS)
  kill "$lg" 2>/dev/null || true
  wait "$lg" 2>/dev/null || true
  echo "$before $after"
}
if want idle; then
  read -r fts_idle_before fts_idle_after < <(idle_rss idle-fts "$addr" "$fts_pid")
  sleep 1
  read -r nginx_idle_before nginx_idle_after < <(idle_rss idle-http "$nginx_addr" "$worker")
fi

# --- 5: publish --------------------------------------------------------------------
want publish && say "5. publish of 1 GiB vs openssl dgst -sha256, $runs alternating runs (a sync before each)"
publish_run() {
  local r=$1 t0
  sync
  t0=$(now_ns)
  "$fts" publish big.bin --to bench-pub --store "pub-$r" >/dev/null
  add publish_s "$(calc "($(now_ns) - $t0) / 1e9" 3)"
  rm -rf "pub-$r"
}
dgst_run() {
  local t0
  sync
  t0=$(now_ns)
  openssl dgst -sha256 big.bin >/dev/null
  add dgst_s "$(calc "($(now_ns) - $t0) / 1e9" 3)"
}
want publish && for r in $(seq 1 "$runs"); do
  if [ $((r % 2)) -eq 1 ]; then publish_run "$r"; dgst_run; else dgst_run; publish_run "$r"; fi
done

# --- 6: the log: a host's verification of one answer, and answer sizes --------------
if want log; then
  say "6. the log: 1,000 host verifications of one answer from a log of 10^6 leaves (examples/logverify)"
  timeout 600 "$logverify" >logverify.out
  sed 's/^/   /' logverify.out >&2
  # "NAME ... median Y ...": the median of the line that starts with $1.
  lv_median() { awk -v k="$1" 'index($0, k) == 1 { for (i = 1; i < NF; i++) if ($i == "median") print $(i + 1) }' logverify.out; }
  lv_verify=$(lv_median "verify (check_frame")
  lv_direct=$(lv_median "LogBook::check_frame")
  lv_per_target=$(sed -n 's/.*one entry each): \([0-9]*\) bytes.*/\1/p' logverify.out)
  lv_log3=$(sed -n 's/.*1000 leaves behind.*3 targets \([0-9]*\).*/\1/p' logverify.out)
  lv_inclusion=$(sed -n 's/.*inclusion: median \([0-9]*\),.*/\1/p' logverify.out)
fi

# --- report ------------------------------------------------------------------------
verdict() { if awk "BEGIN { exit !($1) }"; then echo met; else echo "NOT met"; fi; }
mib() { calc "$1 / 1024" 1; }

cat <<EOF

fts vs nginx + curl, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1),
$(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) RAM, load average now $(cut -d ' ' -f 1-3 /proc/loadavg), disk $disk_mbs MB/s durable write;
medians of $runs alternating runs; parts:$parts

| # | measure                                               | fts        | other                      | ratio  | target  |
|---|-------------------------------------------------------|------------|----------------------------|--------|---------|
EOF
if want install; then
  fts_s=$(median fts_s); curl_s=$(median curl_s)
  a_s=$(calc "$curl_s + $(median sha256sum_s)" 3)
  b_s=$(calc "$curl_s + $(median openssl_s)" 3)
  d_s=$(calc "$curl_s + $(median fsync_s)" 3)
  fts_cpu=$(median fts_cpu); nginx_cpu=$(median nginx_cpu)
  cat <<EOF
| 1 | install 1 GiB, s: fts poll vs curl + sha256sum (a)    | $fts_s | $a_s | $(calc "$fts_s / $a_s") | < 1: $(verdict "$fts_s < $a_s") |
| 1 | install 1 GiB, s: fts poll vs curl + openssl dgst (b) | $fts_s | $b_s | $(calc "$fts_s / $b_s") | < 1: $(verdict "$fts_s < $b_s") |
| 1 | install 1 GiB, s: fts poll vs curl, no check (c)      | $fts_s | $curl_s | $(calc "$fts_s / $curl_s") | <= 1: $(verdict "$fts_s <= $curl_s") |
| 1 | (context) fts poll vs curl + fsync of the file (d)    | $fts_s | $d_s | $(calc "$fts_s / $d_s") | - |
| 1 | (context) fts poll into tmpfs (fsync free) vs (c)     | $(median fts_shm_s) | $curl_s | $(calc "$(median fts_shm_s) / $curl_s") | - |
| 1 | (context) fts poll vs the disk alone (dd, fdatasync)  | $fts_s | $(median dd_s) | $(calc "$fts_s / $(median dd_s)") | - |
| 2 | server CPU s per GiB sent: fts serve vs nginx worker  | $fts_cpu | $nginx_cpu | $(calc "$fts_cpu / $nginx_cpu") | <= 1: $(verdict "$fts_cpu <= $nginx_cpu") |
EOF
  if [ -n "$baseline" ]; then
    base_s=$(median base_s); base_shm_s=$(median base_shm_s); base_cpu=$(median base_cpu)
    # The allowance of issue 17: the tmpfs row and row 2 at most 5 % above the baseline.
    cat <<EOF
| 1b | install 1 GiB, s: this build vs baseline             | $fts_s | $base_s | $(calc "$fts_s / $base_s") | - |
| 1b | install into tmpfs, s: this build vs baseline        | $(median fts_shm_s) | $base_shm_s | $(calc "$(median fts_shm_s) / $base_shm_s") | <= 1.05: $(verdict "$(median fts_shm_s) <= 1.05 * $base_shm_s") |
| 2b | server CPU s per GiB sent: this build vs baseline    | $fts_cpu | $base_cpu | $(calc "$fts_cpu / $base_cpu") | <= 1.05: $(verdict "$fts_cpu <= 1.05 * $base_cpu") |
EOF
  fi
fi
if want polls; then
  ff=$(median fts_full); nf=$(median nginx_full); fr=$(median fts_resumed); nr=$(median nginx_resumed)
  cat <<EOF
| 3 | server CPU us per empty poll, full handshake          | $ff | $nf | $(calc "$ff / $nf") | <= 0.5: $(verdict "$ff <= $nf / 2") |
| 3 | server CPU us per empty poll, resumed                 | $fr | $nr | $(calc "$fr / $nr") | <= 0.5: $(verdict "$fr <= $nr / 2") |
| 3 | (resumed handshakes out of $connections, fts / nginx)        | $(median fts_resumed_resumed) | $(median nginx_resumed_resumed) | - | - |
| 3 | (fts answers with a log frame, of $connections: full / resumed) | $(median fts_full_logged) / $(median fts_resumed_logged) | - | - | - |
EOF
  if [ -n "$baseline" ]; then
    bf=$(median base_full); nwf=$(median new_full); br=$(median base_resumed); nwr=$(median new_resumed)
    # The allowance of issue 16: at most 5 % or 20 us more, whichever is larger.
    allow() { awk -v b="$1" 'BEGIN { printf "%.0f", (b * 0.05 > 20 ? b * 1.05 : b + 20) }'; }
    cat <<EOF
| 3b | CPU us per empty poll, full: this build vs baseline   | $nwf | $bf | $(calc "$nwf / $bf") | <= $(allow "$bf"): $(verdict "$nwf <= $(allow "$bf")") |
| 3b | CPU us per empty poll, resumed: this build vs baseline | $nwr | $br | $(calc "$nwr / $br") | <= $(allow "$br"): $(verdict "$nwr <= $(allow "$br")") |
| 3b | (answers with a log frame, of $connections, resumed: this build / baseline) | $(median new_resumed_logged) | $(median base_resumed_logged) | - | - |
EOF
  fi
fi
if want install; then cat <<EOF
| 4 | peak RSS MiB, 1 GiB: fts serve / nginx worker          | $(mib "$server_hwm_1g") | $(mib "$(status_kib "$worker" VmHWM)") | - | <= 20: $(verdict "$server_hwm_1g <= 20480") |
| 4 | peak RSS MiB, 1 GiB: fts poll / curl                  | $(mib "$(median fts_client_rss)") | $(mib "$(median curl_rss)") | - | <= 20: $(verdict "$(median fts_client_rss) <= 20480") |
EOF
fi
if [ "$big4" -eq 1 ]; then cat <<EOF
| 4 | peak RSS MiB, 4 GiB: fts serve (VmHWM, cumulative)    | $(mib "$server_hwm_4g") | - | - | <= 20: $(verdict "$server_hwm_4g <= 20480") |
| 4 | peak RSS MiB, 4 GiB: fts poll                         | $(mib "$client_rss_4g") | - | - | <= 20: $(verdict "$client_rss_4g <= 20480") |
EOF
fi
if want idle; then
  fts_idle_kib=$(calc "($fts_idle_after - $fts_idle_before) / $idle" 1)
  nginx_idle_kib=$(calc "($nginx_idle_after - $nginx_idle_before) / $idle" 1)
  cat <<EOF
| 4 | server RSS KiB per idle connection ($idle open)        | $fts_idle_kib | $nginx_idle_kib | $(calc "$fts_idle_kib / $nginx_idle_kib") | <= 64: $(verdict "$fts_idle_kib <= 64") |
EOF
fi
if want log; then cat <<EOF
| 6 | host verification of one answer, us (10^6 leaves, 3 targets, 1 entry) | $lv_verify | - | - | < 500: $(verdict "$lv_verify < 500") |
| 6 | (the same by LogBook::check_frame, its state file on tmpfs), us | $lv_direct | - | - | - |
| 6 | log bytes per target in an answer (log frame of 3 targets $lv_log3, inclusion $lv_inclusion per entry) | $lv_per_target | - | - | <= 2048: $(verdict "$lv_per_target <= 2048") |
EOF
fi
if want publish; then cat <<EOF
| 5 | publish 1 GiB, s: fts publish vs openssl dgst -sha256 | $(median publish_s) | $(median dgst_s) | $(calc "$(median publish_s) / $(median dgst_s)") | <= 1.1: $(verdict "$(median publish_s) <= 1.1 * $(median dgst_s)") |
EOF
fi
