#!/usr/bin/env bash
# TLS audit of `fts serve`, on 127.0.0.1 only, with sslyze (PyPI) and openssl.
#
# Provisions credentials with the real `fts keygen` in a temporary folder, starts
# `fts serve`, and checks:
#   1. TLS 1.3 only: sslyze (with the client certificate and key) finds TLS 1.3 cipher
#      suites accepted and none for SSL 2.0, SSL 3.0, TLS 1.0, 1.1 or 1.2; openssl
#      s_client cannot make a TLS 1.2, 1.1 or 1.0 handshake; no 0-RTT early data (openssl,
#      with a real session ticket);
#   2. no answer without a client certificate: a well-formed poll request sent by
#      openssl s_client without -cert gets no byte back (the same request with the
#      certificate gets its `done` frame, as a control), and sslyze without the
#      client certificate sees the server require one;
#   3. the certificate chain and names: the certificate the server presents is the one
#      `fts keygen server` made, it validates against the fts CA (sslyze with that CA
#      as its trust store, and `openssl verify`) for the IP 127.0.0.1 and the name
#      localhost, with the serverAuth usage, and not for another name.
# Prints a verdict per check and exits non-zero if any failed. Bounded: every network
# step has a timeout, and the server is stopped on exit.
#
# sslyze is installed into a venv ($FTS_SSLYZE_VENV, default ~/.cache/fts-sslyze-venv)
# when it is missing. FTS_BIN=path uses an already built fts instead of building one.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."

venv="${FTS_SSLYZE_VENV:-$HOME/.cache/fts-sslyze-venv}"
if ! "$venv/bin/python" -c 'import sslyze' 2>/dev/null; then
  echo "== installing sslyze into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip
  "$venv/bin/pip" install --quiet sslyze
fi
py="$venv/bin/python"

if [ -n "${FTS_BIN:-}" ]; then
  fts="$FTS_BIN"
else
  echo "== building fts (release)"
  cargo build --release --locked --quiet --bin fts
  fts="${CARGO_TARGET_DIR:-$PWD/target}/release/fts"
fi

enter_workdir fts-tls-audit

echo "== provisioning with fts keygen in $work"
"$fts" keygen ca >/dev/null
"$fts" keygen server --name localhost --name 127.0.0.1 >/dev/null
"$fts" keygen client --id audit-01 >/dev/null
"$fts" keygen signing >/dev/null
mkdir store

"$fts" --log-format json serve --listen 127.0.0.1:0 2> serve.log &
server_pid=$!
addr=$(wait_for_listening "$server_pid" serve.log) || exit 1
port="${addr##*:}"
echo "== fts serve listening on $addr"

failed=0
verdict() { # verdict OK|FAIL "what"
  printf '  [%s] %s\n' "$1" "$2"
  [ "$1" = OK ] || failed=$((failed + 1))
}

# --- sslyze, with the client certificate -------------------------------------------
echo "== sslyze with the client certificate"
timeout 300 "$py" -m sslyze --quiet \
  --cert certs/audit-01.crt --key certs/audit-01.key \
  --sslv2 --sslv3 --tlsv1 --tlsv1_1 --tlsv1_2 --tlsv1_3 \
  --certinfo --certinfo_ca_file certs/ca.crt \
  --json_out sslyze.json "127.0.0.1:$port" > sslyze.txt 2>&1 || true
"$py" - sslyze.json > sslyze-checks.txt <<'PY' || true
import json, sys
data = json.load(open(sys.argv[1]))
results = data.get("server_scan_results") or []
if not results or results[0].get("scan_status") != "COMPLETED":
    print("FAIL sslyze could not scan the server:", json.dumps(results[0] if results else data)[:400])
    sys.exit(0)
scan = results[0]["scan_result"]

def accepted(key):
    attempt = scan.get(key) or {}
    if attempt.get("status") != "COMPLETED":
        return None
    return [s["cipher_suite"]["name"] for s in attempt["result"]["accepted_cipher_suites"]]

for key, label in [("ssl_2_0_cipher_suites", "SSL 2.0"), ("ssl_3_0_cipher_suites", "SSL 3.0"),
                   ("tls_1_0_cipher_suites", "TLS 1.0"), ("tls_1_1_cipher_suites", "TLS 1.1"),
                   ("tls_1_2_cipher_suites", "TLS 1.2")]:
    suites = accepted(key)
    if suites is None:
        print(f"FAIL sslyze: the {label} scan did not complete")
    elif suites:
        print(f"FAIL sslyze: {label} accepted: {', '.join(suites)}")
    else:
        print(f"OK sslyze: {label} refused (no cipher suite accepted)")
suites = accepted("tls_1_3_cipher_suites")
if suites:
    print(f"OK sslyze: TLS 1.3 accepted with {', '.join(suites)}")
else:
    print("FAIL sslyze: no TLS 1.3 cipher suite accepted")

info = scan.get("certificate_info") or {}
if info.get("status") != "COMPLETED":
    print("FAIL sslyze: the certificate scan did not complete")
else:
    deployment = info["result"]["certificate_deployments"][0]
    chain = deployment["received_certificate_chain"]
    # sslyze names the store given with --certinfo_ca_file "Supplied CA file".
    custom = [r for r in deployment["path_validation_results"]
              if r["trust_store"]["name"] == "Supplied CA file"]
    if custom and all(r["was_validation_successful"] for r in custom):
        print(f"OK sslyze: the served chain ({len(chain)} certificate(s)) validates against the fts CA")
    else:
        print("FAIL sslyze: the served chain does not validate against the fts CA:",
              json.dumps([(r["trust_store"]["name"], r.get("openssl_error_string")) for r in
                          deployment["path_validation_results"]])[:400])
    public = [r for r in deployment["path_validation_results"] if r not in custom]
    if not any(r["was_validation_successful"] for r in public):
        print("OK sslyze: no public trust store validates it (a private CA, as it should be)")
    else:
        print("FAIL sslyze: a public trust store validates the server certificate")
PY
while read -r status text; do verdict "$status" "$text"; done < sslyze-checks.txt
[ -s sslyze-checks.txt ] || { verdict FAIL "sslyze produced no result"; sed -n 1,20p sslyze.txt; }

# --- openssl: older versions ----------------------------------------------------------
echo "== openssl s_client: older protocol versions"
for version in tls1_2 tls1_1 tls1; do
  if echo | timeout 15 openssl s_client -connect "127.0.0.1:$port" "-$version" -cipher 'DEFAULT:@SECLEVEL=0' \
      -cert certs/audit-01.crt -key certs/audit-01.key -CAfile certs/ca.crt > "s_client-$version.txt" 2>&1 \
      && grep -q '^New, TLS' "s_client-$version.txt"; then
    verdict FAIL "openssl: a -$version handshake succeeded"
  else
    verdict OK "openssl: a -$version handshake fails"
  fi
done

# --- a poll with and without the client certificate -------------------------------------
request() { # one poll request frame for audit-01
  local json='{"request-type":"poll","protocol":1,"client-id":"audit-01"}'
  local len=${#json}
  printf "\\x$(printf %02x $((len >> 8)))\\x$(printf %02x $((len & 255)))%s" "$json"
}
echo "== a poll request over openssl s_client, with and without the client certificate"
request | timeout 15 openssl s_client -connect "127.0.0.1:$port" -tls1_3 -alpn fts/1 -quiet \
  -CAfile certs/ca.crt -verify_return_error -verify_ip 127.0.0.1 \
  -cert certs/audit-01.crt -key certs/audit-01.key > with-cert.out 2> with-cert.err || true
if grep -q '"type":"done"' with-cert.out; then
  verdict OK "with the client certificate the poll is answered (done frame)"
else
  verdict FAIL "with the client certificate the poll got no done frame: $(head -c 300 with-cert.err)"
fi
request | timeout 15 openssl s_client -connect "127.0.0.1:$port" -tls1_3 -alpn fts/1 -quiet \
  -CAfile certs/ca.crt > no-cert.out 2> no-cert.err || true
if [ ! -s no-cert.out ]; then
  verdict OK "without a client certificate no byte is answered ($(grep -o 'alert [a-z ]*' no-cert.err | head -n 1 || true))"
else
  verdict FAIL "without a client certificate the server answered $(wc -c < no-cert.out) bytes"
fi

# 0-RTT: sslyze's early-data probe expects an HTTP server (it reads an answer after
# its handshake, and fts closes a connection without ALPN), so openssl checks it: the
# session ticket of a real poll must allow no early data, and a resumption that offers
# early data must not get it sent.
echo "== early data (0-RTT)"
request > request.bin
timeout 15 openssl s_client -connect "127.0.0.1:$port" -tls1_3 -alpn fts/1 -ign_eof -sess_out session.pem \
  -cert certs/audit-01.crt -key certs/audit-01.key -CAfile certs/ca.crt < request.bin > session.txt 2>&1 || true
max_early=$(openssl sess_id -in session.pem -noout -text 2>/dev/null | sed -n 's/.*Max Early Data: *\([0-9]*\).*/\1/p')
if [ "$max_early" = 0 ]; then
  verdict OK "the server's session tickets allow no early data (Max Early Data: 0)"
else
  verdict FAIL "the server's session ticket allows early data: '${max_early:-no ticket}'"
fi
timeout 15 openssl s_client -connect "127.0.0.1:$port" -tls1_3 -alpn fts/1 -ign_eof -sess_in session.pem \
  -early_data request.bin -cert certs/audit-01.crt -key certs/audit-01.key -CAfile certs/ca.crt \
  < /dev/null > early.txt 2>&1 || true
if grep -aq 'Early data was accepted' early.txt; then
  verdict FAIL "a resumed connection got early data accepted"
elif grep -aqE 'Early data was (not sent|rejected)' early.txt; then
  verdict OK "a resumed connection offering early data: $(grep -aoE 'Early data was (not sent|rejected)' early.txt | head -n 1)"
else
  verdict FAIL "the early-data attempt ended without a verdict: $(grep -a -m1 -i error early.txt || true)"
fi

echo "== sslyze without the client certificate"
timeout 120 "$py" -m sslyze --quiet --tlsv1_3 --json_out sslyze-nocert.json "127.0.0.1:$port" \
  > sslyze-nocert.txt 2>&1 || true
"$py" - sslyze-nocert.json > sslyze-nocert-checks.txt <<'PY' || true
import json, sys
data = json.load(open(sys.argv[1]))
result = (data.get("server_scan_results") or [{}])[0]
connectivity = result.get("connectivity_result") or {}
requirement = connectivity.get("client_auth_requirement")
error = result.get("connectivity_error_trace") or result.get("connectivity_status")
if requirement == "REQUIRED" or (result.get("scan_status") == "ERROR_NO_CONNECTIVITY"):
    print(f"OK sslyze without a client certificate: client authentication {requirement or 'refused the connection'}")
else:
    print(f"FAIL sslyze without a client certificate: requirement {requirement}, status {result.get('scan_status')}")
PY
while read -r status text; do verdict "$status" "$text"; done < sslyze-nocert-checks.txt
[ -s sslyze-nocert-checks.txt ] || verdict FAIL "sslyze without a certificate produced no result"

# --- the certificate the server presents, and its names -----------------------------------
echo "== the server certificate: chain and names"
echo | timeout 15 openssl s_client -connect "127.0.0.1:$port" -tls1_3 -alpn fts/1 -showcerts \
  -cert certs/audit-01.crt -key certs/audit-01.key -CAfile certs/ca.crt > chain.txt 2>&1 || true
sed -n '/-----BEGIN CERTIFICATE-----/,/-----END CERTIFICATE-----/p' chain.txt | \
  awk '/BEGIN/{n++} n==1' > served.pem
if [ -s served.pem ] && [ "$(openssl x509 -in served.pem -noout -fingerprint -sha256)" = \
     "$(openssl x509 -in certs/server.crt -noout -fingerprint -sha256)" ]; then
  verdict OK "the served certificate is the one fts keygen server made"
else
  verdict FAIL "the served certificate is not certs/server.crt"
fi
check_name() { # check_name OK|FAIL flag value
  if openssl verify -CAfile certs/ca.crt -purpose sslserver "$2" "$3" served.pem > verify.txt 2>&1; then
    got=OK
  else
    got=FAIL
  fi
  if [ "$got" = "$1" ]; then
    verdict OK "openssl verify $2 $3 -purpose sslserver: $( [ "$1" = OK ] && echo valid || echo refused, as it should be)"
  else
    verdict FAIL "openssl verify $2 $3: expected $1, got $got ($(tr '\n' ' ' < verify.txt))"
  fi
}
check_name OK -verify_ip 127.0.0.1
check_name OK -verify_hostname localhost
check_name FAIL -verify_hostname fts.example.net
check_name FAIL -verify_ip 127.0.0.2
if openssl x509 -in served.pem -noout -ext basicConstraints 2>/dev/null | grep -q 'CA:TRUE'; then
  verdict FAIL "the server certificate is a CA"
else
  verdict OK "the server certificate is not a CA"
fi

echo
if [ "$failed" -eq 0 ]; then
  echo "TLS AUDIT PASSED: TLS 1.3 only, no answer without a client certificate, chain and names as expected"
else
  echo "TLS AUDIT FAILED: $failed check(s) failed (details above; sslyze output kept in the log lines)"
  exit 1
fi
