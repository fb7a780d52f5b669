#!/usr/bin/env bash
# Conformance: the task-execution guide's "Complete Workflow Example", step by
# step, with curl and jq, against a real taskhost.
#
#   guide_workflow.sh <taskhost-binary> <plugins-dir>
#
# Starts taskhost on a free port with a temporary SQLite file, runs each step
# of the walkthrough as the guide writes it, checks every response, prints
# "PASS: <step>" per step and ends with "N passed, 0 failed". Exits non-zero at
# the first failure. The host is always stopped on exit.
set -euo pipefail

if [ $# -ne 2 ]; then
  echo "usage: $0 <taskhost-binary> <plugins-dir>" >&2
  exit 2
fi
TASKHOST=$1
PLUGINS=$2
for tool in curl jq; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool is not installed" >&2; exit 2; }
done
[ -x "$TASKHOST" ] || { echo "FAIL: $TASKHOST is not an executable" >&2; exit 2; }
[ -d "$PLUGINS" ] || { echo "FAIL: $PLUGINS is not a folder" >&2; exit 2; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/taskhost-guide-XXXXXX")
HOST_PID=""
passed=0
failed=0

cleanup() {
  local rc=$?
  if [ -n "$HOST_PID" ] && kill -0 "$HOST_PID" 2>/dev/null; then
    kill -TERM "$HOST_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$HOST_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$HOST_PID" 2>/dev/null || true
    wait "$HOST_PID" 2>/dev/null || true
  fi
  if [ "$rc" -ne 0 ] && [ -s "$WORK/stderr" ]; then
    echo "--- taskhost stderr ---" >&2
    cat "$WORK/stderr" >&2
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# shellcheck source=checks.sh
. "$(dirname "$0")/checks.sh"
# http METHOD URL [curl args...]: sets STATUS and BODY.
http() {
  local method=$1 url=$2
  shift 2
  local out
  out=$(curl -sS -X "$method" -o "$WORK/body" -w '%{http_code}' "$@" "$url") || fail "$method $url" "curl failed"
  STATUS=$out
  BODY=$(cat "$WORK/body")
}

# ---- start the service --------------------------------------------------------
"$TASKHOST" --port 0 --host 127.0.0.1 --plugins "$PLUGINS" --db "$WORK/taskhost.db" \
  --log-level warn >"$WORK/stdout" 2>"$WORK/stderr" &
HOST_PID=$!
wait_listening "$HOST_PID" "$WORK/stdout"
BASE="http://127.0.0.1:$PORT"
pass "start service on port $PORT"

# ---- the guide's walkthrough ---------------------------------------------------

# List all tasks
http GET "$BASE/api/v1/tasks"
[ "$STATUS" = 200 ] || fail "list all tasks" "status $STATUS: $BODY"
expect "list all tasks" "$BODY" \
  'type == "array" and length > 0' \
  '[.[].name] == ([.[].name] | sort)' \
  'any(.[]; .name == "greet_user")' \
  'all(.[]; has("name") and has("docstring") and has("signature") and has("parameters") and has("tags"))'

# Filter tasks by tags
http GET "$BASE/api/v1/tasks?tags=demo,simple"
[ "$STATUS" = 200 ] || fail "filter tasks by tags" "status $STATUS: $BODY"
expect "filter tasks by tags demo,simple" "$BODY" \
  'type == "array"' \
  '[.[].name] == ["greet_user"]' \
  '.[0].tags == ["demo", "simple"]'

# Get task metadata
http GET "$BASE/api/v1/tasks/greet_user"
[ "$STATUS" = 200 ] || fail "get task metadata" "status $STATUS: $BODY"
expect "get greet_user metadata" "$BODY" \
  '.name == "greet_user"' \
  '.docstring == "Simple task that returns a greeting."' \
  '.tags == ["demo", "simple"]' \
  '.parameters | length == 1' \
  '.parameters[0].name == "name"' \
  '.parameters[0].default == "World"' \
  '.parameters[0].required == false' \
  '.signature | type == "string"'

# Execute task (the URL exactly as the guide writes it: \$execute)
JOB_RESPONSE=$(curl -s -X POST http://127.0.0.1:$PORT/api/v1/tasks/greet_user/\$execute \
  -H "Content-Type: application/json" \
  -d '{"params": {"name": "Alice"}}') || fail "execute greet_user" "curl failed"
expect "execute greet_user" "$JOB_RESPONSE" \
  '.job_id | type == "string" and test("^[0-7][0-9A-HJKMNP-TV-Z]{25}$")' \
  '.message == "Task '"'"'greet_user'"'"' submitted for execution. Job ID: \(.job_id)"'

JOB_ID=$(echo $JOB_RESPONSE | jq -r '.job_id') || fail "read job id" "not JSON: $JOB_RESPONSE"
echo "Job ID: $JOB_ID"

# Monitor job status
http GET "$BASE/api/v1/jobs/$JOB_ID"
[ "$STATUS" = 200 ] || fail "monitor job status" "status $STATUS: $BODY"
expect "monitor job status" "$BODY" \
  ".id == \"$JOB_ID\"" \
  '.status | IN("pending", "running", "completed")' \
  '.submitted_at | test("Z$")'

# Wait for completion (bounded: at most 10 s)
status=""
for _ in $(seq 1 100); do
  status=$(curl -s "$BASE/api/v1/jobs/$JOB_ID" | jq -r '.status' 2>/dev/null) || status=""
  case "$status" in
    completed | failed | canceled) break ;;
  esac
  sleep 0.1
done
[ "$status" = completed ] || fail "wait for completion" "job status after 10 s: $status"
pass "wait for completion"

# ...and get the artifact ID
ARTIFACT_ID=$(curl -s http://127.0.0.1:$PORT/api/v1/jobs/$JOB_ID | jq -r '.result') ||
  fail "get artifact id from .result" "request failed"
echo "Artifact ID: $ARTIFACT_ID"
[[ "$ARTIFACT_ID" =~ ^[0-7][0-9A-HJKMNP-TV-Z]{25}$ ]] || fail "get artifact id from .result" "got '$ARTIFACT_ID'"
pass "get artifact id from .result"

# Get task results from artifact
http GET "$BASE/api/v1/artifacts/$ARTIFACT_ID"
[ "$STATUS" = 200 ] || fail "get task results from artifact" "status $STATUS: $BODY"
expect "get task results from artifact" "$BODY" \
  ".id == \"$ARTIFACT_ID\"" \
  '.data == {"task_name":"greet_user","params":{"name":"Alice"},"result":{"message":"Hello, Alice!"},"error":null}'

# The walkthrough ran where --isolation (TASKHOST_ISOLATION, as inherited)
# says: worker processes by default, none with in-process.
http GET "$BASE/api/v1/system"
[ "$STATUS" = 200 ] || fail "tasks ran in the isolation asked for" "status $STATUS: $BODY"
if [ "${TASKHOST_ISOLATION:-process}" = in-process ]; then
  expect "tasks ran in the host (in-process)" "$BODY" '.worker_processes == []'
else
  expect "tasks ran in worker processes" "$BODY" \
    "any(.worker_processes[]; .plugin == \"demo\" and .jobs_served >= 1 and .pid != $HOST_PID)"
fi

echo "$passed passed, $failed failed"
