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
