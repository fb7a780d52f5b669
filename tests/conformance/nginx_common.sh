# shellcheck shell=bash disable=SC2034  # sets variables for the sourcing script
# Shared by the nginx conformance scripts (sourced after checks.sh): the tools they need, stopping
# what they started, HTTPS calls through nginx, and nginx started with the shipped
# deploy/nginx/taskhost.conf. The sourcing script sets WORK (a private folder) before calling these.

skip() {
  echo "SKIP: $1"
  exit 77
}

# check_tools TASKHOST PLUGINS CONF: sets NGINX; skips (exit 77) without nginx with SSL or openssl,
# fails (exit 2) without curl, jq or python3 or with arguments that name nothing.
check_tools() {
  NGINX=$(command -v nginx || true)
  [ -z "$NGINX" ] && [ -x /usr/sbin/nginx ] && NGINX=/usr/sbin/nginx
  [ -n "$NGINX" ] || skip "nginx is not installed (Debian package nginx; scripts/test installs it)"
  "$NGINX" -V 2>&1 | grep -q -- '--with-http_ssl_module' || skip "$NGINX is built without http_ssl_module"
  command -v openssl >/dev/null || skip "openssl is not installed (Debian package openssl)"
  local tool
  for tool in curl jq python3; do
    command -v "$tool" >/dev/null || { echo "FAIL: $tool is not installed" >&2; exit 2; }
  done
  [ -x "$1" ] || { echo "FAIL: $1 is not an executable" >&2; exit 2; }
  [ -d "$2" ] || { echo "FAIL: $2 is not a folder" >&2; exit 2; }
  [ -f "$3" ] || { echo "FAIL: $3 is not a file" >&2; exit 2; }
}

# stop PID [SECONDS]: TERM, up to SECONDS (default 5), then KILL.
stop() {
  local pid=$1 tenths=$((${2:-5} * 10))
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 "$tenths"); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# https METHOD PATH [curl args...]: sets STATUS, BODY and HEADERS (the response header block).
https() {
  local method=$1 path=$2
  shift 2
  STATUS=$(curl -sS -k -X "$method" -o "$WORK/body" -D "$WORK/headers" -w '%{http_code}' \
    --max-time 30 "$@" "$BASE$path") || fail "$method $path" "curl failed (status ${STATUS:-none})"
  BODY=$(cat "$WORK/body")
  HEADERS=$(tr -d '\r' <"$WORK/headers")
}
# header NAME: the values of response header NAME in HEADERS, one a line.
header() { printf '%s\n' "$HEADERS" | sed -n "s/^$1: *//Ip"; }
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_nginx CONF PORT...: makes a throwaway certificate, renders CONF with only the placeholders
# an operator changes replaced (the upstream's server line becomes one line per host PORT, written
# as the README's "Running a fleet" says; the certificate; where nginx listens and logs), starts nginx as the
# current user with a private prefix and waits until /health answers through it. Sets NGINX_PID,
# NGINX_PORT and BASE.
start_nginx() {
  local conf=$1
  shift
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=localhost \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout "$WORK/tls.key" -out "$WORK/tls.pem" >"$WORK/openssl.log" 2>&1 ||
    fail "make a self-signed certificate" "$(cat "$WORK/openssl.log")"
  local servers="" port options=""
  # Several hosts: as the README's fleet setup has them (a host that fails is passed over for 2 s).
  [ $# -gt 1 ] && options=" max_fails=1 fail_timeout=2s"
  for port in "$@"; do servers+="\\1server 127.0.0.1:$port$options;\\n"; done
  NGINX_PORT=$(free_port)
  sed -E \
    -e "s#^([[:space:]]*)server 127\.0\.0\.1:8000;.*#${servers%\\n}#" \
    -e "s#127\.0\.0\.1:8000#127.0.0.1:$1#g" \
    -e "s#^([[:space:]]*)listen 443 #\1listen 127.0.0.1:$NGINX_PORT #" \
    -e '/^[[:space:]]*listen \[::\]:443 /d' \
    -e "s#/etc/ssl/certs/taskhost\.pem#$WORK/tls.pem#" \
    -e "s#/etc/ssl/private/taskhost\.key#$WORK/tls.key#" \
    -e "s#/var/log/nginx/#$WORK/#" \
    "$conf" >"$WORK/taskhost.conf"
  # Anything the renderer missed would point nginx at the machine's own files or ports.
  local leftover
  leftover=$(sed 's/#.*//' "$WORK/taskhost.conf" | grep -nE ':8000|listen [^1]|/etc/|/var/' || true)
  [ -z "$leftover" ] || fail "render $conf" "placeholders left (update nginx_common.sh's sed):
$leftover"
  local user_line=""
  # nginx started by root would run its workers as nobody, who cannot enter this private prefix.
  [ "$(id -u)" -eq 0 ] && user_line="user root root;"
  cat >"$WORK/nginx.conf" <<NGINX_CONF
# Debian's /etc/nginx/nginx.conf reduced to what taskhost.conf needs, with a private prefix.
$user_line
worker_processes 1;
events { worker_connections 256; }
http {
    default_type application/octet-stream;
    access_log off;
    client_body_temp_path $WORK/client_body;
    proxy_temp_path $WORK/proxy;
    fastcgi_temp_path $WORK/fastcgi;
    uwsgi_temp_path $WORK/uwsgi;
    scgi_temp_path $WORK/scgi;
    include $WORK/taskhost.conf;
}
NGINX_CONF
  local nginx_args=(-p "$WORK/" -c "$WORK/nginx.conf" -e "$WORK/nginx-error.log"
    -g "daemon off; pid $WORK/nginx.pid; error_log $WORK/nginx-error.log;")
  "$NGINX" -t "${nginx_args[@]}" >"$WORK/nginx-t.log" 2>&1 || fail "nginx -t" "$(cat "$WORK/nginx-t.log")"
  "$NGINX" "${nginx_args[@]}" 2>>"$WORK/nginx-error.log" &
  NGINX_PID=$!
  BASE="https://127.0.0.1:$NGINX_PORT"
  local deadline=$((SECONDS + 10)) code=000
  while [ $SECONDS -lt $deadline ]; do
    code=$(curl -sk -o /dev/null -w '%{http_code}' --max-time 2 "$BASE/health" || true)
    [ "$code" = 200 ] && break
    kill -0 "$NGINX_PID" 2>/dev/null || fail "start nginx" "nginx exited"
    sleep 0.05
  done
  [ "$code" = 200 ] || fail "start nginx" "GET /health through nginx: $code after 10 s"
}
