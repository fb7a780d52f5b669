# Shared by the conformance scripts (sourced): PASS/FAIL lines and jq checks.
# The sourcing script sets passed=0 failed=0.

pass() {
  passed=$((passed + 1))
  echo "PASS: $1"
}
fail() {
  failed=$((failed + 1))
  echo "FAIL: $1" >&2
  [ $# -ge 2 ] && printf '%s\n' "$2" >&2
  echo "$passed passed, $failed failed"
  exit 1
}
# expect CHECK JSON JQ-FILTER...: every filter must yield true on JSON.
expect() {
  local check=$1 body=$2
  shift 2
  local f
  for f in "$@"; do
    printf '%s' "$body" | jq -e "$f" >/dev/null 2>&1 || fail "$check" "check failed: $f
response: $body"
  done
  pass "$check"
}
# wait_listening PID STDOUT_FILE: waits up to 20 s for the host's
# "taskhost listening on http://127.0.0.1:PORT" line; sets PORT.
wait_listening() {
  local pid=$1 out=$2 line deadline=$((SECONDS + 20))
  PORT=""
  while [ $SECONDS -lt $deadline ]; do
    line=""
    # Only a complete (newline-terminated) first line counts.
    if [ "$(wc -l <"$out")" -ge 1 ]; then line=$(head -n 1 "$out"); fi
    if [[ "$line" =~ ^taskhost\ listening\ on\ http://127\.0\.0\.1:([0-9]+)$ ]]; then
      PORT=${BASH_REMATCH[1]}
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || fail "start taskhost" "the host exited before listening"
    sleep 0.05
  done
  fail "start taskhost" "no listening line within 20 s"
}
