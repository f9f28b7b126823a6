# Shared by the scripts in this folder: source it, do not run it.

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
