#!/usr/bin/env bash
# The Debian packages of a normal build (deploy/debian/packaging.cmake):
#
#   debian_packages.sh <build-dir> <source-dir>
#
# Builds taskhost and taskhost-dev with cpack into a scratch folder (the build
# itself is reused, not redone), reads their control data, extracts both with
# dpkg -x into a scratch root and checks the files: the binary (which must run
# --help), the systemd unit, the settings file, the state folder, the SDK. Then
# builds examples/out-of-tree against the extracted SDK. Prints PASS lines,
# exits non-zero at the first failure; 77 (skip) if a tool is missing.
set -euo pipefail

if [ $# -ne 2 ]; then
  echo "usage: $0 <build-dir> <source-dir>" >&2
  exit 2
fi
BUILD=$1
SRC=$2
for tool in cpack cmake dpkg-deb dpkg-shlibdeps file nm pkg-config; do
  command -v "$tool" >/dev/null || { echo "SKIP: $tool is not installed"; exit 77; }
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/taskhost-deb-XXXXXX")
passed=0
failed=0
cleanup() {
  local rc=$?
  if [ "$rc" -ne 0 ]; then
    # The last command's log.
    log=$(ls -t "$WORK"/*.log 2>/dev/null | head -n 1)
    [ -s "$log" ] && { echo "--- $log ---" >&2; tail -n 40 "$log" >&2; }
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# shellcheck source=../conformance/checks.sh
. "$SRC/tests/conformance/checks.sh"

run() {  # run NAME COMMAND...: quietly into $WORK/NAME.log; a failure fails NAME
  local name=$1
  shift
  "$@" >"$WORK/$name.log" 2>&1 || fail "$name" "failed: $*"
}
has_line() {  # has_line CHECK FILE LINE: FILE holds LINE exactly
  grep -qxF -- "$3" "$2" || fail "$1" "$2 has no line: $3"
}

# ---- build the packages ---------------------------------------------------------------------
run cpack cpack -G DEB --config "$BUILD/CPackConfig.cmake" -B "$WORK/out"
shopt -s nullglob
host_deb=("$WORK"/out/taskhost_*.deb)
dev_deb=("$WORK"/out/taskhost-dev_*_all.deb)
if [ ${#host_deb[@]} != 1 ] || [ ${#dev_deb[@]} != 1 ]; then fail "cpack -G DEB" "made: $(ls "$WORK/out")"; fi
pass "cpack -G DEB makes $(basename "${host_deb[0]}") and $(basename "${dev_deb[0]}")"

# ---- control data -------------------------------------------------------------------------
depends=$(dpkg-deb -f "${host_deb[0]}" Depends)
# dpkg-shlibdeps computed the libraries' packages; adduser is for postinst.
for package in libc6 libstdc++6 libsqlite3-0 adduser; do
  [[ ", $depends," == *", $package"[\ ,]* ]] || fail "taskhost Depends" "no $package in: $depends"
done
pass "taskhost depends on its libraries' packages (dpkg-shlibdeps) and adduser"
dev_depends=$(dpkg-deb -f "${dev_deb[0]}" Depends)
[[ "$dev_depends" == *nlohmann-json3-dev* ]] || fail "taskhost-dev Depends" "$dev_depends"
[ "$(dpkg-deb -f "${dev_deb[0]}" Architecture)" = all ] || fail "taskhost-dev is Architecture: all"
pass "taskhost-dev is Architecture: all and depends on nlohmann-json3-dev"

run control dpkg-deb -e "${host_deb[0]}" "$WORK/control"
has_line "conffiles" "$WORK/control/conffiles" /etc/taskhost/taskhost.conf
grep -q 'adduser --system' "$WORK/control/postinst" || fail "postinst creates the taskhost system user"
grep -qx '    chown taskhost:taskhost /var/lib/taskhost' "$WORK/control/postinst" ||
  fail "postinst gives taskhost its state folder"
grep -qx '    chown root:root /var/lib/taskhost/plugins' "$WORK/control/postinst" ||
  fail "postinst keeps the plugins folder root's: the service cannot rewrite its code"
for script in postinst prerm postrm; do
  [ -x "$WORK/control/$script" ] || fail "$script is executable"
  sh -n "$WORK/control/$script" || fail "$script is valid sh"
done
pass "maintainer scripts: postinst creates the taskhost user and hands it /var/lib/taskhost; conffiles"

# ---- the files ----------------------------------------------------------------------------
R=$WORK/root
run extract dpkg -x "${host_deb[0]}" "$R"
run extract-dev dpkg -x "${dev_deb[0]}" "$R"
for f in usr/bin/taskhost lib/systemd/system/taskhost.service etc/taskhost/taskhost.conf \
  usr/include/taskhost/sdk.hpp usr/include/taskhost/abi.h \
  usr/share/cmake/taskhost/taskhostConfig.cmake usr/share/cmake/taskhost/taskhostConfigVersion.cmake \
  usr/share/cmake/taskhost/TaskhostPlugin.cmake usr/share/cmake/taskhost/taskhost_plugin.map \
  usr/share/pkgconfig/taskhost.pc; do
  [ -f "$R/$f" ] || fail "package files" "missing: /$f"
done
[ -d "$R/var/lib/taskhost/plugins" ] || fail "package files" "missing: /var/lib/taskhost/plugins/"
pass "the packages hold the binary, unit, settings, state folder, headers and CMake package"

unit=$R/lib/systemd/system/taskhost.service
for line in 'ExecStart=/usr/bin/taskhost' 'ExecReload=/bin/kill -HUP $MAINPID' 'User=taskhost' \
  'EnvironmentFile=/etc/taskhost/taskhost.conf' 'StateDirectory=taskhost' 'WantedBy=multi-user.target'; do
  has_line "taskhost.service" "$unit" "$line"
done
pass "taskhost.service runs /usr/bin/taskhost as taskhost, reloads with SIGHUP, reads /etc/taskhost/taskhost.conf"
if command -v systemd-analyze >/dev/null; then
  # Checked as installed: /usr/bin/taskhost and the user are not on this machine.
  sed -e "s|/usr/bin/taskhost|$R/usr/bin/taskhost|" -e "s|/etc/taskhost/|$R/etc/taskhost/|" \
    -e '/^User=/d' -e '/^Group=/d' "$unit" >"$WORK/taskhost.service"
  if systemd-analyze verify "$WORK/taskhost.service" >"$WORK/verify.log" 2>&1 && ! [ -s "$WORK/verify.log" ]; then
    pass "systemd-analyze verify taskhost.service"
  elif grep -q -e 'Failed to connect\|System has not been booted\|Failed to initialize manager' "$WORK/verify.log"; then
    echo "SKIP: systemd-analyze verify cannot run here: $(head -n 1 "$WORK/verify.log")"
  else
    fail "systemd-analyze verify taskhost.service" "$(cat "$WORK/verify.log")"
  fi
else
  echo "SKIP: systemd-analyze verify (no systemd-analyze)"
fi

conf=$R/etc/taskhost/taskhost.conf
for line in '#TASKHOST_DB=/var/lib/taskhost/taskhost.db' '#TASKHOST_PLUGINS=/var/lib/taskhost/plugins' \
  '#TASKHOST_HOST=127.0.0.1' '#TASKHOST_PORT=8000'; do
  has_line "taskhost.conf" "$conf" "$line"
done
# The unit's defaults are the ones the settings file shows.
grep -qx 'Environment=TASKHOST_DB=/var/lib/taskhost/taskhost.db TASKHOST_PLUGINS=/var/lib/taskhost/plugins' "$unit" ||
  fail "taskhost.service sets the paths taskhost.conf shows"

# ---- the binary -----------------------------------------------------------------------------
"$R/usr/bin/taskhost" --help >"$WORK/help.log" 2>&1 || fail "taskhost --help (extracted)"
grep -q -- '--plugins' "$WORK/help.log" || fail "taskhost --help lists its flags"
# Every variable the settings file names is one the binary reads.
for variable in $(grep -o 'TASKHOST_[A-Z][A-Z_]*' "$conf" | sort -u); do
  grep -q "$variable\b" "$WORK/help.log" || fail "taskhost.conf names only real variables" "taskhost --help has no $variable"
done
version=$("$R/usr/bin/taskhost" --version) || fail "taskhost --version (extracted)"
[[ "$version" == "taskhost $(dpkg-deb -f "${host_deb[0]}" Version) "* ]] ||
  fail "the binary's version is the package's" "$version"
pass "the extracted taskhost runs --help and --version; every TASKHOST_* of taskhost.conf is one of its variables"

# ---- the SDK as installed by taskhost-dev ---------------------------------------------------
run configure cmake -S "$SRC/examples/out-of-tree" -B "$WORK/example" -DCMAKE_PREFIX_PATH="$R/usr"
grep -q "^taskhost_DIR:PATH=$R/usr/share/cmake/taskhost$" "$WORK/example/CMakeCache.txt" ||
  fail "find_package(taskhost) finds the extracted SDK"
run build cmake --build "$WORK/example"
[ "$(nm -D --defined-only "$WORK/example/wordcount.so" | awk '{print $3}')" = taskhost_plugin_v1 ] ||
  fail "the example exports only its entry"
cflags=$(PKG_CONFIG_PATH=$R/usr/share/pkgconfig pkg-config --cflags taskhost)
[[ "$cflags" == *"-I$R/usr/share/pkgconfig/../../include"* ]] || fail "taskhost.pc points into its root" "$cflags"
pass "examples/out-of-tree builds against the extracted taskhost-dev (find_package), and its taskhost.pc is relocatable"

echo "$passed passed, $failed failed"
