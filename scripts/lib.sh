# Shared by the scripts in this folder: source it, do not run it.

# enter_workdir NAME: makes a fresh temporary folder (in $TMPDIR, default /tmp), sets
# `work` to it and changes into it. On exit the server whose pid the script put in
# `server_pid` (if still running) is stopped and the folder removed.
enter_workdir() {
  work=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
  server_pid=""
  trap leave_workdir EXIT
  cd "$work"
}
leave_workdir() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then kill "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}

# wait_for_listening PID LOG: prints the address `fts serve --log-format json` (PID,
# logging to LOG) reports it listens on, once it does. Fails, showing the log, if the
# server exits first or says nothing within 10 s.
wait_for_listening() {
  local pid=$1 log=$2 addr=""
  for _ in $(seq 1 100); do
    addr=$(sed -n 's/.*"message":"listening","addr":"\([^"]*\)".*/\1/p' "$log" | head -n 1)
    if [ -n "$addr" ]; then
      echo "$addr"
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      cat "$log" >&2
      echo "fts serve did not start" >&2
      return 1
    fi
    sleep 0.1
  done
  echo "fts serve did not report its address within 10 s" >&2
  return 1
}

# build_with_example NAME: builds fts and examples/NAME in release (from the checkout's
# root) and sets `fts` (FTS_BIN if given) and `bench` to their absolute paths.
build_with_example() {
  echo "== building fts and examples/$1 (release)"
  cargo build --release --locked --quiet --bin fts --example "$1"
  local target="${CARGO_TARGET_DIR:-$PWD/target}"
  fts="$(realpath "${FTS_BIN:-$target/release/fts}")"
  bench="$(realpath "$target/release/examples/$1")"
}
