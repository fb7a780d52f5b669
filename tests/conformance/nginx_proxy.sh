#!/usr/bin/env bash
# Conformance: taskhost behind nginx with the shipped deploy/nginx/taskhost.conf, over HTTPS.
#
#   nginx_proxy.sh <taskhost-binary> <plugins-dir> <deploy/nginx/taskhost.conf>
#
# Starts taskhost on a free loopback port, makes a throwaway self-signed certificate, renders the
# shipped nginx file with only its marked placeholders replaced (upstream port, certificate paths,
# listen address, log path) into a private nginx prefix and runs Debian's nginx as the current
# user. Then, with curl over HTTPS: $execute?wait answers the finished job; a job's $stream
# delivers its events while the job runs (no buffering) and ends at the terminal state;
# /health/$stream delivers events; a body over the limit gets 413 (with and without
# Content-Length) while one at the limit reaches the host; X-Request-ID comes back.
# Prints "PASS: <check>" per check and "N passed, 0 failed"; exits 1 at the first failure.
# Without nginx (with SSL) or openssl it prints "SKIP: <reason>" and exits 77 (ctest's skip code,
# SKIP_RETURN_CODE in tests/CMakeLists.txt). Everything it started is stopped on exit.
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

WORK=$(mktemp -d "${TMPDIR:-/tmp}/taskhost-nginx-XXXXXX")
HOST_PID=""
NGINX_PID=""
STREAM_PID=""
passed=0
failed=0

cleanup() {
  local rc=$?
  stop "$STREAM_PID"
  stop "$NGINX_PID"
  stop "$HOST_PID"
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; then
    for f in stderr nginx-error.log; do
      [ -s "$WORK/$f" ] && { echo "--- $f ---" >&2; tail -n 40 "$WORK/$f" >&2; }
    done
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- taskhost on loopback ---------------------------------------------------------
"$TASKHOST" --port 0 --host 127.0.0.1 --plugins "$PLUGINS" --db "$WORK/taskhost.db" \
  --max-concurrency 1 --log-level warn >"$WORK/stdout" 2>"$WORK/stderr" &
HOST_PID=$!
wait_listening "$HOST_PID" "$WORK/stdout"
pass "taskhost listens on 127.0.0.1:$PORT"

# ---- nginx with the shipped file ----------------------------------------------------
start_nginx "$CONF" "$PORT"
pass "nginx with $(basename "$CONF") serves /health over HTTPS on 127.0.0.1:$NGINX_PORT"

# ---- TLS --------------------------------------------------------------------------------
# SECLEVEL=0 lets this client offer TLS 1.0/1.1 at all, so only the server can refuse them.
if curl -sk -o /dev/null --max-time 5 --tlsv1 --tls-max 1.1 --ciphers 'DEFAULT@SECLEVEL=0' "$BASE/health" 2>/dev/null; then
  fail "TLS below 1.2 is refused" "a TLS 1.1 handshake succeeded"
fi
https GET /health --tlsv1.2 --tls-max 1.2
[ "$STATUS" = 200 ] || fail "TLS 1.2 is accepted" "status $STATUS"
pass "TLS 1.0/1.1 refused, 1.2 accepted"

# ---- $execute?wait -----------------------------------------------------------------------
RID="nginx-test-$RANDOM$RANDOM"
https POST '/api/v1/tasks/greet_user/$execute?wait=10' -H 'Content-Type: application/json' \
  -H "X-Request-ID: $RID" -d '{"params": {"name": "nginx"}}'
[ "$STATUS" = 200 ] || fail "POST \$execute?wait=10" "status $STATUS: $BODY"
expect "POST \$execute?wait=10 answers 200 and the finished job" "$BODY" \
  '.status == "completed"' '.task_name == "greet_user"' '.artifact_id | type == "string"'
ids=$(header X-Request-ID)
[ "$ids" = "$RID" ] || fail "X-Request-ID sent by the client comes back" "sent $RID, got: $ids"
pass "X-Request-ID sent by the client comes back (once)"
https GET /api/v1/info
ids=$(header X-Request-ID)
[[ "$ids" =~ ^[0-9a-f]{32}$ ]] || fail "X-Request-ID is made when absent" "got: $ids"
pass "X-Request-ID is made up by nginx when the client sends none"
https GET /api/v1/info -H "X-Request-ID: two words" -H "X-Request-ID: and-a-second"
ids=$(header X-Request-ID)
[[ "$ids" =~ ^[0-9a-f]{32}$ ]] || fail "a malformed X-Request-ID is replaced" "got: $ids"
pass "a malformed X-Request-ID is replaced by nginx's own"

# An absolute Location names the address the client used, its port included.
https POST /api/v1/artifacts -H 'Content-Type: application/json' -d '{"data": 1}'
[ "$STATUS" = 201 ] || fail "POST /api/v1/artifacts" "status $STATUS: $BODY"
location=$(header Location)
[ "$location" = "$BASE/api/v1/artifacts/$(jq -r .id <<<"$BODY")" ] ||
  fail "Location names the client's scheme, host and port" "got: $location, base: $BASE"
pass "POST /api/v1/artifacts: Location names the client's scheme, host and port"

# The same over HTTP/1.1 (the calls above used HTTP/2 where curl has it).
https POST '/api/v1/tasks/greet_user/$execute?wait=10' --http1.1 -H 'Content-Type: application/json' \
  -d '{"params": {"name": "h1"}}'
[ "$STATUS" = 200 ] || fail "POST \$execute?wait=10 over HTTP/1.1" "status $STATUS: $BODY"
expect "POST \$execute?wait=10 over HTTP/1.1" "$BODY" '.status == "completed"'

# ---- a job's $stream, and a ?wait that waits ------------------------------------------
# One worker (--max-concurrency 1): a slow job holds it, so the next job stays pending and its
# stream says so in one small event, then nothing until the slow job ends. A buffering proxy
# would hold that event back until the stream ends. (It would hold it back from HTTP/1.1 clients:
# nginx's HTTP/2 output sends what it has, buffered or not. So the streams are read over HTTP/1.1.)
https POST '/api/v1/tasks/slow_task/$execute' -H 'Content-Type: application/json' \
  -d '{"params": {"seconds": 2}}'
[ "$STATUS" = 202 ] || fail "submit slow_task" "status $STATUS: $BODY"
https POST '/api/v1/tasks/hello/$execute' -H 'Content-Type: application/json' -d '{}'
[ "$STATUS" = 202 ] || fail "submit hello behind it" "status $STATUS: $BODY"
JOB_ID=$(printf '%s' "$BODY" | jq -r .job_id)
curl -sS -k -N --http1.1 --max-time 20 -o "$WORK/stream" "$BASE/api/v1/jobs/$JOB_ID/\$stream" 2>"$WORK/stream.err" &
STREAM_PID=$!
deadline=$((SECONDS + 5))
while [ $SECONDS -lt $deadline ] && ! grep -q '^data:' "$WORK/stream" 2>/dev/null; do
  kill -0 "$STREAM_PID" 2>/dev/null || break
  sleep 0.02
done
grep -q '^data:' "$WORK/stream" 2>/dev/null || fail "\$stream delivers events" "no data: line; $(cat "$WORK/stream.err")"
https GET "/api/v1/jobs/$JOB_ID"
expect "\$stream: the first event arrives while the job is pending (not buffered)" "$BODY" \
  '.status == "pending"'
# Meanwhile a long-poll that has to wait for both jobs ahead of it: nginx keeps it open.
started=$(date +%s%N)
https POST '/api/v1/tasks/greet_user/$execute?wait=10' -H 'Content-Type: application/json' \
  -d '{"params": {"name": "queued"}}'
waited_ms=$((($(date +%s%N) - started) / 1000000))
[ "$STATUS" = 200 ] || fail "\$execute?wait=10 behind a slow job" "status $STATUS after $waited_ms ms: $BODY"
expect "\$execute?wait=10 held open $waited_ms ms until the job ended" "$BODY" '.status == "completed"'
wait "$STREAM_PID" || fail "\$stream ends by itself" "curl: $(cat "$WORK/stream.err")"
STREAM_PID=""
events=$(grep -c '^data:' "$WORK/stream")
last=$(grep '^data:' "$WORK/stream" | tail -n 1 | sed 's/^data: *//')
[ "$events" -ge 2 ] || fail "\$stream delivers every change" "$events events"
expect "\$stream: $events events, ends at the terminal state" "$last" '.status == "completed"'

# /health/$stream never ends by itself: one event now, the next in 5 s; read it for 1 s, over
# HTTP/1.1 and HTTP/2 at once.
curl -sS -k -N --http2 --max-time 1 -o "$WORK/health-h2" "$BASE/health/\$stream?poll_interval=5" 2>/dev/null &
h2_pid=$!
curl -sS -k -N --http1.1 --max-time 1 -o "$WORK/health-h1" "$BASE/health/\$stream?poll_interval=5" 2>/dev/null || true
wait "$h2_pid" || true
for v in h1 h2; do
  events=$(grep -c '^data:' "$WORK/health-$v" || true)
  [ "$events" = 1 ] || fail "/health/\$stream over $v delivers its first event at once" "$events events in 1 s"
done
pass "/health/\$stream delivers its first event at once over HTTP/1.1 and HTTP/2 (not buffered)"

# The longest ?wait (60 s) and SSE gaps need a read timeout above them; too long to wait for here.
for t in $(sed 's/#.*//' "$CONF" | sed -n -E 's/.*proxy_read_timeout +([0-9]+)s;.*/\1/p'); do
  [ "$t" -gt 60 ] || fail "proxy_read_timeout exceeds the 60 s ?wait cap" "found ${t}s"
done
pass "proxy_read_timeout exceeds the host's 60 s ?wait cap"

# ---- body limit -------------------------------------------------------------------------
limit=$((10 * 1024 * 1024))  # client_max_body_size 10m = the host's --max-body-bytes default
{ printf '{"params": {}}'; head -c $((limit - 14)) /dev/zero | tr '\0' ' '; } >"$WORK/at-limit.json"
https POST '/api/v1/tasks/hello/$execute' -H 'Content-Type: application/json' --data-binary "@$WORK/at-limit.json"
[ "$STATUS" = 202 ] || fail "a body of exactly 10 MiB reaches the host" "status $STATUS: $BODY"
pass "a body of exactly 10 MiB reaches the host (202)"
{ cat "$WORK/at-limit.json"; printf ' '; } >"$WORK/over-limit.json"
host_413s() {  # 413s the host itself answered, from its /metrics (straight to loopback)
  curl -sS "http://127.0.0.1:$PORT/metrics" | sed -n -E 's/^taskhost_http_responses_total\{code="413"\} ([0-9]+).*/\1/p' | grep . || echo 0
}
before=$(host_413s)
RID="nginx-big-$RANDOM"
https POST '/api/v1/tasks/hello/$execute' -H 'Content-Type: application/json' -H "X-Request-ID: $RID" \
  --data-binary "@$WORK/over-limit.json"
[ "$STATUS" = 413 ] || fail "a body over 10 MiB gets 413" "status $STATUS: $BODY"
expect "a body over 10 MiB gets 413 problem+json" "$BODY" '.status == 413' \
  '.type == "urn:taskhost:error:content-too-large"'
[ "$(header X-Request-ID)" = "$RID" ] || fail "413 carries X-Request-ID" "got: $(header X-Request-ID)"
https POST '/api/v1/tasks/hello/$execute' --http1.1 -H 'Content-Type: application/json' \
  -H 'Transfer-Encoding: chunked' --data-binary "@$WORK/over-limit.json"
[ "$STATUS" = 413 ] || fail "a chunked body over 10 MiB gets 413" "status $STATUS: $BODY"
after=$(host_413s)
[ "$after" = "$before" ] || fail "nginx refuses the bodies, not the host" "the host answered $((after - before)) 413s"
pass "a chunked body over 10 MiB gets 413; nginx refused both, the host read neither"

echo "$passed passed, $failed failed"
