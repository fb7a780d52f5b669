#!/usr/bin/env bash
# Conformance: the README's "Running a fleet" setup. Three hosts on one PostgreSQL database behind
# nginx with the shipped deploy/nginx/taskhost.conf, its upstream given one server line per host.
#
#   nginx_fleet.sh <taskhost-binary> <plugins-dir> <deploy/nginx/taskhost.conf>
#
# Uses the cluster at TASKHOST_TEST_PG_URL (scripts/test starts one) with a schema of its own;
# migrates it with `taskhost migrate` and starts the hosts with --no-migrate, as the README does.
# Then, over HTTPS through nginx: the hosts list each other; $execute?wait answers, with the jobs
# spread over the hosts; a job submitted through one request is waited on and streamed through
# others, whichever host runs it; and a rolling restart of every host, one at a time, while
# requests keep coming, fails none of them. Prints "PASS: <check>" per check; exits 1 at the first
# failure; without nginx, openssl, psql or TASKHOST_TEST_PG_URL prints "SKIP: <reason>", exits 77.
# shellcheck disable=SC2016  # $execute and $stream in single quotes are meant literally
set -euo pipefail

if [ $# -ne 3 ]; then
  echo "usage: $0 <taskhost-binary> <plugins-dir> <taskhost.conf>" >&2
  exit 2
fi
TASKHOST=$1
PLUGINS=$2
CONF=$3
# shellcheck source=checks.sh
. "$(dirname "$0")/checks.sh"
# shellcheck source=nginx_common.sh
. "$(dirname "$0")/nginx_common.sh"
check_tools "$TASKHOST" "$PLUGINS" "$CONF"
[ -n "${TASKHOST_TEST_PG_URL:-}" ] || skip "TASKHOST_TEST_PG_URL is not set (scripts/test starts a PostgreSQL cluster)"
command -v psql >/dev/null || skip "psql is not installed (Debian package postgresql-client-15)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/taskhost-fleet-XXXXXX")
SCHEMA="fleet_$(date +%s)_$$"
HOST_PIDS=("" "" "")
PORTS=("" "" "")
NGINX_PID=""
LOAD_PID=""
passed=0
failed=0

sql() { psql -X -q -A -t -v ON_ERROR_STOP=1 "$TASKHOST_TEST_PG_URL" -c "SET search_path = $SCHEMA; $1"; }
cleanup() {
  local rc=$?
  stop "$LOAD_PID"
  stop "$NGINX_PID"
  for pid in "${HOST_PIDS[@]}"; do stop "$pid" 10; done
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; then
    for f in host-1.err host-2.err host-3.err nginx-error.log load.log; do
      [ -s "$WORK/$f" ] && { echo "--- $f ---" >&2; grep -v "no live upstreams" "$WORK/$f" | tail -n 30 >&2; }
    done
  fi
  psql -X -q "$TASKHOST_TEST_PG_URL" -c "DROP SCHEMA IF EXISTS $SCHEMA CASCADE" >/dev/null 2>&1 || true
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- the database, migrated once ------------------------------------------------------
psql -X -q -v ON_ERROR_STOP=1 "$TASKHOST_TEST_PG_URL" -c "CREATE SCHEMA $SCHEMA" >/dev/null
sep='?'
[[ "$TASKHOST_TEST_PG_URL" == *\?* ]] && sep='&'
DB="${TASKHOST_TEST_PG_URL}${sep}options=-csearch_path%3D$SCHEMA"
"$TASKHOST" migrate --db "$DB" >"$WORK/migrate.log" 2>&1 || fail "taskhost migrate" "$(cat "$WORK/migrate.log")"
pass "taskhost migrate: $(tail -n 1 "$WORK/migrate.log")"

# ---- three hosts ------------------------------------------------------------------------
# start_host I [PORT]: host fleet-I on PORT (a free one the first time), as the README starts them.
start_host() {
  local i=$1 port=${2:-0}
  "$TASKHOST" --db "$DB" --no-migrate --port "$port" --host 127.0.0.1 --host-id "fleet-$i" --lease-s 3 \
    --plugins "$PLUGINS" --log-level warn >"$WORK/host-$i.out" 2>>"$WORK/host-$i.err" &
  HOST_PIDS[i - 1]=$!
  wait_listening "${HOST_PIDS[$((i - 1))]}" "$WORK/host-$i.out"
  PORTS[i - 1]=$PORT  # set by wait_listening
}
for i in 1 2 3; do start_host "$i"; done
pass "three hosts listen on 127.0.0.1:${PORTS[0]}, :${PORTS[1]}, :${PORTS[2]}"

start_nginx "$CONF" "${PORTS[@]}"
pass "nginx with $(basename "$CONF") and three upstream servers serves /health over HTTPS"

deadline=$((SECONDS + 10))
while :; do
  https GET /api/v1/system/hosts
  [ "$(printf '%s' "$BODY" | jq length)" = 3 ] && break
  [ $SECONDS -lt $deadline ] || fail "the hosts list each other" "$BODY"
  sleep 0.1
done
expect "GET /api/v1/system/hosts through nginx lists the three hosts" "$BODY" \
  '[.[].id] == ["fleet-1", "fleet-2", "fleet-3"]' 'all(.[]; .plugins | length > 0)'

# ---- jobs through nginx -------------------------------------------------------------------
for n in $(seq 1 12); do
  https POST '/api/v1/tasks/greet_user/$execute?wait=10' -H 'Content-Type: application/json' \
    -d "{\"params\": {\"name\": \"n$n\"}}"
  [ "$STATUS" = 200 ] || fail "\$execute?wait=10 through nginx" "status $STATUS: $BODY"
done
hosts_used=$(sql "SELECT count(DISTINCT run_by) FROM jobs WHERE task_name = 'greet_user'")
[ "$hosts_used" -ge 2 ] || fail "nginx spreads the jobs over the hosts" "all ran on $hosts_used host(s)"
pass "12 jobs through nginx answered 200 completed, run by $hosts_used hosts"

# A job submitted in one request, waited on and streamed in others: nginx sends each to the next
# host, which need not be the one running it.
https POST '/api/v1/tasks/slow_task/$execute' -H 'Content-Type: application/json' -d '{"params": {"seconds": 1}}'
[ "$STATUS" = 202 ] || fail "submit slow_task" "status $STATUS: $BODY"
JOB_ID=$(printf '%s' "$BODY" | jq -r .job_id)
curl -sS -k -N --http1.1 --max-time 20 -o "$WORK/stream" "$BASE/api/v1/jobs/$JOB_ID/\$stream" 2>"$WORK/stream.err" &
stream_pid=$!
https GET "/api/v1/jobs/$JOB_ID?wait=10"
expect "GET ?wait=10 through nginx answers when the job ends, whichever host runs it" "$BODY" \
  '.status == "completed"'
wait "$stream_pid" || fail "\$stream ends by itself" "curl: $(cat "$WORK/stream.err")"
last=$(grep '^data:' "$WORK/stream" | tail -n 1 | sed 's/^data: *//')
expect "\$stream through nginx follows the job to its end" "$last" '.status == "completed"'
ran_on=$(sql "SELECT run_by FROM jobs WHERE id = '$JOB_ID'")
pass "(the job ran on $ran_on)"

# ---- a rolling restart while requests keep coming -------------------------------------------
# Each host in turn: stopped (SIGTERM: it finishes what it has), started again with its id and
# port. nginx passes a request whose host refuses the connection on to the next one.
(
  ok=0 bad=0
  while [ ! -f "$WORK/stop-load" ]; do
    code=$(curl -sk -o "$WORK/load-body" -w '%{http_code}' --max-time 15 -X POST -H 'Content-Type: application/json' \
      -d '{"params": {"name": "rolling"}}' "$BASE/api/v1/tasks/greet_user/\$execute?wait=10" || echo 000)
    if [ "$code" = 200 ]; then ok=$((ok + 1)); else bad=$((bad + 1)); echo "status $code: $(cat "$WORK/load-body")"; fi
  done
  echo "ok=$ok bad=$bad"
) >"$WORK/load.log" 2>&1 &
LOAD_PID=$!
for i in 1 2 3; do
  port=${PORTS[$((i - 1))]}
  stop "${HOST_PIDS[$((i - 1))]}" 10
  start_host "$i" "$port"
  # nginx passes over a host whose connection was refused for fail_timeout (2 s), as the README
  # says to wait between hosts: not observable from outside nginx, so waited for by the clock.
  sleep 2.2
done
touch "$WORK/stop-load"
wait "$LOAD_PID" || true
LOAD_PID=""
summary=$(tail -n 1 "$WORK/load.log")
[[ "$summary" =~ ^ok=([0-9]+)\ bad=0$ ]] && [ "${BASH_REMATCH[1]}" -gt 0 ] ||
  fail "a rolling restart fails no request" "$(cat "$WORK/load.log")"
pass "a rolling restart of the three hosts: ${BASH_REMATCH[1]} requests through nginx, none failed"
left=$(sql "SELECT count(*) FROM jobs WHERE status NOT IN ('completed')")
[ "$left" = 0 ] || fail "every job completed" "$left did not: $(sql "SELECT status, error FROM jobs WHERE status <> 'completed'")"
pass "every job completed ($(sql "SELECT count(*) FROM jobs") in all)"

echo "$passed passed, $failed failed"
