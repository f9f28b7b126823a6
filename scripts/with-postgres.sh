#!/usr/bin/env bash
# Runs a command with a throwaway PostgreSQL cluster for the tests that need one
# (the status database: crates/status-db/tests, tests/it/status_db.rs):
#
#     scripts/with-postgres.sh cargo test --workspace
#
# The cluster lives in a temp folder, belongs to an unprivileged user (postgres when
# run as root: initdb refuses root), listens on 127.0.0.1 at a free port and on a
# socket in that folder, with a random password (scram-sha-256), and is stopped and
# removed when the command ends, whatever its exit. The command sees:
#   FTS_TEST_POSTGRES                 postgresql://fts@127.0.0.1:PORT (no database)
#   FTS_TEST_POSTGRES_PASSWORD_FILE   the password file (mode 600)
# Without PostgreSQL (no /usr/lib/postgresql/*/bin/initdb, nor FTS_POSTGRES_BIN) the
# command runs without them and those tests skip, saying so; with FTS_REQUIRE_POSTGRES
# set (CI) this script fails instead.
set -euo pipefail

if (($# == 0)); then
  echo "usage: scripts/with-postgres.sh COMMAND [ARGS...]" >&2
  exit 2
fi

bin="${FTS_POSTGRES_BIN:-}"
if [[ -z $bin ]]; then
  bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)"
fi
if [[ -z $bin || ! -x $bin/initdb ]]; then
  if [[ -n ${FTS_REQUIRE_POSTGRES:-} ]]; then
    echo "with-postgres: FTS_REQUIRE_POSTGRES is set and PostgreSQL is not installed" >&2
    exit 1
  fi
  echo "with-postgres: PostgreSQL is not installed: the status database tests skip" >&2
  exec "$@"
fi

dir="$(mktemp -d /tmp/fts-pg.XXXXXX)"
as=()
if [[ $(id -u) == 0 ]]; then
  chown postgres:postgres "$dir"
  as=(runuser -u postgres --)
fi
stop() {
  "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap stop EXIT

password="$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
umask 077
printf '%s\n' "$password" >"$dir/password"
printf '%s\n' "$password" >"$dir/initdb-password"
[[ $(id -u) == 0 ]] && chown postgres:postgres "$dir/initdb-password"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"

"${as[@]}" "$bin/initdb" -D "$dir/data" -U fts --auth=scram-sha-256 --pwfile="$dir/initdb-password" \
  -E UTF8 --locale=C >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
"${as[@]}" "$bin/pg_ctl" -D "$dir/data" -w -l "$dir/log" \
  -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=200" start >/dev/null \
  || { cat "$dir/log" >&2; exit 1; }
echo "with-postgres: PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (folder $dir)" >&2

export FTS_TEST_POSTGRES="postgresql://fts@127.0.0.1:$port"
export FTS_TEST_POSTGRES_PASSWORD_FILE="$dir/password"
umask 022
set +e
"$@"
rc=$?
set -e
exit "$rc"
