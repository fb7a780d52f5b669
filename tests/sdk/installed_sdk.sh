#!/usr/bin/env bash
# The SDK as a plugin author gets it, without this source tree:
#
#   installed_sdk.sh <taskhost-binary> <build-dir> <source-dir>
#
# Installs the SDK of <build-dir> to a scratch prefix, and again from an
# SDK-only configure that cannot find any host dependency (the two must be the
# same files). Against that prefix, builds examples/out-of-tree (C++) and
# examples/c-plugin (C) with find_package(taskhost), with a plain include() of
# TaskhostPlugin.cmake, with the README's g++ line and with pkg-config, and
# checks the find_package version rule. Then serves the plugins with the real
# taskhost on a free loopback port and calls their tasks. Prints PASS lines,
# exits non-zero at the first failure; 77 (skip) if a tool is missing.
set -euo pipefail

if [ $# -ne 3 ]; then
  echo "usage: $0 <taskhost-binary> <build-dir> <source-dir>" >&2
  exit 2
fi
TASKHOST=$1
BUILD=$2
SRC=$3
for tool in cmake g++ gcc nm pkg-config curl jq sha256sum; do
  command -v "$tool" >/dev/null || { echo "SKIP: $tool is not installed"; exit 77; }
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/taskhost-sdk-XXXXXX")
HOST_PID=""
passed=0
failed=0
cleanup() {
  local rc=$?
  if [ -n "$HOST_PID" ] && kill -0 "$HOST_PID" 2>/dev/null; then
    kill -TERM "$HOST_PID" 2>/dev/null || true
    wait "$HOST_PID" 2>/dev/null || true
  fi
  if [ "$rc" -ne 0 ]; then
    # The last command's log, and the host's.
    for log in "$(ls -t "$WORK"/*.log 2>/dev/null | head -n 1)" "$WORK/stderr"; do
      [ -s "$log" ] && { echo "--- $log ---" >&2; tail -n 40 "$log" >&2; }
    done
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# shellcheck source=../conformance/checks.sh
. "$SRC/tests/conformance/checks.sh"

# run NAME COMMAND...: runs quietly into $WORK/NAME.log; a failure fails NAME.
run() {
  local name=$1
  shift
  "$@" >"$WORK/$name.log" 2>&1 || fail "$name" "failed: $*"
}
# exports_only_entry CHECK SO: the plugin's only dynamic symbol is its entry.
exports_only_entry() {
  local symbols
  symbols=$(nm -D --defined-only "$2" | awk '{print $3}')
  [ "$symbols" = taskhost_plugin_v1 ] || fail "$1" "$2 exports: $symbols"
}
# readme_block MARKER: the fenced block that follows the README line holding MARKER.
readme_block() {
  awk -v marker="$1" 'index($0, marker) { found = 1; next }
    found && /^```/ { if (inside) exit; inside = 1; next }
    found && inside { print }' "$SRC/README.md"
}

# ---- install: from the full build, and from an SDK-only configure -------------------------
run install cmake --install "$BUILD" --prefix "$WORK/prefix" --component sdk
# Every dependency of the host made unfindable: the SDK must not need one.
no_host_deps=()
for package in SQLite3 Boost spdlog CLI11 OpenSSL PkgConfig Threads doctest; do
  no_host_deps+=("-DCMAKE_DISABLE_FIND_PACKAGE_$package=ON")
done
run sdk-only cmake -S "$SRC" -B "$WORK/sdk-only" -DTASKHOST_SDK_ONLY=ON --no-warn-unused-cli "${no_host_deps[@]}"
run sdk-only-install cmake --install "$WORK/sdk-only" --prefix "$WORK/sdk"
diff -r "$WORK/prefix" "$WORK/sdk" >"$WORK/diff.log" || fail "SDK-only install = full build's SDK install"
P=$WORK/sdk
for f in include/taskhost/sdk.hpp include/taskhost/abi.h share/cmake/taskhost/taskhostConfig.cmake \
  share/cmake/taskhost/taskhostConfigVersion.cmake share/cmake/taskhost/TaskhostPlugin.cmake \
  share/cmake/taskhost/taskhost_plugin.map share/pkgconfig/taskhost.pc; do
  [ -f "$P/$f" ] || fail "SDK installed" "missing: $f"
done
pass "SDK installs (component sdk), and an SDK-only configure without host dependencies installs the same files"

# The README's raw build, started now: it compiles beside the CMake builds.
mkdir -p "$WORK/raw" "$WORK/pc"
cp "$SRC/examples/out-of-tree/wordcount.cpp" "$WORK/raw/"
raw_line=$(readme_block 'tests/sdk/installed_sdk.sh: g++')
[[ "$raw_line" == g++* ]] || fail "README g++ line" "not found in README.md: '$raw_line'"
# Installed in /usr the headers need no -I; here they are in $P.
raw_line=${raw_line//\/usr\/share\/cmake\/taskhost/$P\/share\/cmake\/taskhost}
raw_line="${raw_line/g++/g++ -I$P/include}"
(cd "$WORK/raw" && eval "$raw_line") >"$WORK/raw.log" 2>&1 &
raw_pid=$!

# ---- find_package(taskhost): the examples, with the README's CMakeLists.txt --------------
readme_cmake=$(readme_block 'tests/sdk/installed_sdk.sh: CMakeLists.txt')
[ "$readme_cmake" = "$(cat "$SRC/examples/out-of-tree/CMakeLists.txt")" ] ||
  fail "README CMakeLists.txt" "README.md's block differs from examples/out-of-tree/CMakeLists.txt"
run cpp-configure cmake -S "$SRC/examples/out-of-tree" -B "$WORK/cpp" -DCMAKE_PREFIX_PATH="$P"
grep -q "^taskhost_DIR:PATH=$P/share/cmake/taskhost$" "$WORK/cpp/CMakeCache.txt" ||
  fail "find_package(taskhost) finds the scratch prefix" "$(grep taskhost_DIR "$WORK/cpp/CMakeCache.txt")"
run cpp-build cmake --build "$WORK/cpp"
exports_only_entry "C++ example built with find_package" "$WORK/cpp/wordcount.so"
pass "examples/out-of-tree (C++, the README's CMakeLists.txt) builds with find_package(taskhost)"

run c-configure cmake -S "$SRC/examples/c-plugin" -B "$WORK/c" -DCMAKE_PREFIX_PATH="$P"
run c-build cmake --build "$WORK/c"
exports_only_entry "C example built with find_package" "$WORK/c/c_square.so"
pass "examples/c-plugin (plain C, LANGUAGES C) builds with find_package(taskhost)"

wait "$raw_pid" || fail "README g++ line" "failed: $raw_line"
exports_only_entry "README g++ line" "$WORK/raw/wordcount.so"
pass "the README's g++ line builds the C++ example"

export PKG_CONFIG_PATH=$P/share/pkgconfig
pkg_cflags=$(pkg-config --cflags taskhost) || fail "pkg-config --cflags taskhost"
pkg_flags=$(pkg-config --variable=plugin_flags taskhost)
[[ "$pkg_cflags" == *-std=c++20* && "$pkg_flags" == *--version-script=* ]] ||
  fail "pkg-config taskhost" "cflags: $pkg_cflags; plugin_flags: $pkg_flags"
# shellcheck disable=SC2086 # flags are words
(cd "$WORK/pc" && g++ $pkg_cflags $pkg_flags -o wordcount.so "$SRC/examples/out-of-tree/wordcount.cpp") \
  >"$WORK/pc.log" 2>&1 &
pc_pid=$!

mkdir -p "$WORK/gcc"
gcc -shared -fPIC -fvisibility=hidden -Wl,--no-undefined \
  -Wl,--version-script="$P/share/cmake/taskhost/taskhost_plugin.map" -I"$P/include" \
  -o "$WORK/gcc/c_square.so" "$SRC/examples/c-plugin/c_square.c" >"$WORK/gcc.log" 2>&1 || fail "gcc line (C example)"
exports_only_entry "gcc line (C example)" "$WORK/gcc/c_square.so"
pass "the C example builds with one gcc line"

# ---- TaskhostPlugin.cmake alone, installed and in the source tree ------------------------
include_n=0
for cmake_dir in "$P/share/cmake/taskhost" "$SRC/sdk/cmake"; do
  project=$WORK/include-$((++include_n))
  mkdir -p "$project"
  cat >"$project/CMakeLists.txt" <<EOF
cmake_minimum_required(VERSION 3.25)
project(plain_include LANGUAGES C)
include($cmake_dir/TaskhostPlugin.cmake)
taskhost_add_plugin(c_square SOURCES $SRC/examples/c-plugin/c_square.c)
EOF
  run include-configure cmake -S "$project" -B "$project/build"
  run include-build cmake --build "$project/build"
  exports_only_entry "include($cmake_dir/TaskhostPlugin.cmake)" "$project/build/c_square.so"
done
pass "a plain include() of TaskhostPlugin.cmake (installed, and in the source tree) builds a plugin"

# ---- the version rule: the ABI's major must match, its minor be at least the one asked -----
abi_major=$(sed -n 's/^#define TH_ABI_MAJOR \([0-9]*\)u\?$/\1/p' "$P/include/taskhost/abi.h")
abi_minor=$(sed -n 's/^#define TH_ABI_MINOR \([0-9]*\)u\?$/\1/p' "$P/include/taskhost/abi.h")
[ -n "$abi_major" ] || fail "ABI major in abi.h"
[ -n "$abi_minor" ] || fail "ABI minor in abi.h"
mkdir -p "$WORK/version"
for ask in "$abi_major:1" "$abi_major.$abi_minor:1" "$abi_major.$((abi_minor + 1)):0" "$((abi_major + 1)):0" \
  "$((abi_major - 1)):0"; do
  version=${ask%:*} want=${ask#*:}
  cat >"$WORK/version/CMakeLists.txt" <<EOF
cmake_minimum_required(VERSION 3.25)
project(version LANGUAGES NONE)
find_package(taskhost $version QUIET NO_CMAKE_SYSTEM_PATH)
message(STATUS "found=\${taskhost_FOUND}")
EOF
  rm -rf "$WORK/version/build"
  run version cmake -S "$WORK/version" -B "$WORK/version/build" -DCMAKE_PREFIX_PATH="$P"
  found=0
  grep -q -- "-- found=1" "$WORK/version.log" && found=1
  [ "$found" = "$want" ] || fail "find_package(taskhost $version)" "found=$found, expected $want (SDK $abi_major.$abi_minor)"
done
pass "find_package(taskhost N[.M]) accepts ABI $abi_major.$abi_minor for N=$abi_major, M<=$abi_minor only"

# ---- below C++20: one clear error, then nothing --------------------------------------------
if g++ -std=c++17 -fsyntax-only -I"$P/include" "$SRC/examples/out-of-tree/wordcount.cpp" >"$WORK/cxx17.log" 2>&1; then
  fail "C++17 is refused" "g++ -std=c++17 compiled the example"
fi
# gcc goes on after #error: sdk.hpp then stops it with a missing include.
diagnostics=$(grep -E ': (fatal )?error: ' "$WORK/cxx17.log")
if [[ "$(head -n 1 <<<"$diagnostics")" != *"#error"*"needs C++20"* ]] || [ "$(wc -l <<<"$diagnostics")" -ne 2 ] ||
  [[ "$(tail -n 1 <<<"$diagnostics")" != *"fatal error: taskhost: stopped"* ]]; then
  fail "C++17 is refused" "$(cat "$WORK/cxx17.log")"
fi
pass "g++ -std=c++17 stops at sdk.hpp's one #error, nothing after it ($(wc -l <"$WORK/cxx17.log") lines)"

wait "$pc_pid" || fail "pkg-config build" "$(cat "$WORK/pc.log")"
exports_only_entry "pkg-config build" "$WORK/pc/wordcount.so"
pass "the C++ example builds with g++ \$(pkg-config --cflags taskhost) \$(pkg-config --variable=plugin_flags taskhost)"

# ---- taskhost plugin check ----------------------------------------------------------------
for so in "$WORK/cpp/wordcount.so" "$WORK/c/c_square.so" "$WORK/raw/wordcount.so" "$WORK/pc/wordcount.so" \
  "$WORK/gcc/c_square.so"; do
  "$TASKHOST" plugin check "$so" >"$WORK/check.json" 2>"$WORK/check.log" || fail "taskhost plugin check $so"
  [ "$(jq -r .verdict "$WORK/check.json")" = ok ] || fail "taskhost plugin check $so" "$(cat "$WORK/check.json")"
done
[ "$(jq -r '[.tasks[].name] | join(",")' "$WORK/check.json")" = c_square ] ||
  fail "plugin check lists the C plugin's task"
pass "taskhost plugin check accepts every built plugin and lists its tasks"

# ---- taskhost plugin new: the scaffold builds against the SDK and its tests pass -----------
run scaffold-new "$TASKHOST" plugin new scaffolded --dir "$WORK"
run scaffold-configure cmake -S "$WORK/scaffolded" -B "$WORK/scaffolded/build" -DCMAKE_PREFIX_PATH="$P"
run scaffold-build cmake --build "$WORK/scaffolded/build" -j2
run scaffold-test ctest --test-dir "$WORK/scaffolded/build" --output-on-failure
"$TASKHOST" plugin check -q "$WORK/scaffolded/build/scaffolded.so" 2>"$WORK/scaffold-check.log" ||
  fail "taskhost plugin check of the scaffold's plugin"
exports_only_entry "scaffold" "$WORK/scaffolded/build/scaffolded.so"
pass "taskhost plugin new: the project builds against the installed SDK, its tests pass, plugin check accepts it"

# ---- serve them ----------------------------------------------------------------------------
mkdir -m 0700 "$WORK/plugins"
cp "$WORK/cpp/wordcount.so" "$WORK/c/c_square.so" "$WORK/plugins/"
"$TASKHOST" --port 0 --host 127.0.0.1 --plugins "$WORK/plugins" --db "$WORK/taskhost.db" \
  --log-level warn >"$WORK/stdout" 2>"$WORK/stderr" &
HOST_PID=$!
wait_listening "$HOST_PID" "$WORK/stdout"
BASE="http://127.0.0.1:$PORT"

# http METHOD PATH [JSON]: sets STATUS and BODY.
http() {
  local args=(-sS -X "$1" -o "$WORK/body" -w '%{http_code}')
  [ $# -ge 3 ] && args+=(-H 'Content-Type: application/json' -d "$3")
  STATUS=$(curl "${args[@]}" "$BASE$2") || fail "$1 $2" "curl failed"
  BODY=$(cat "$WORK/body")
}
# run_task TASK PARAMS: runs it with $execute?wait=10; sets RESULT to its result.
run_task() {
  http POST "/api/v1/tasks/$1/\$execute?wait=10" "{\"params\": $2}"
  [ "$STATUS" = 200 ] || fail "$1 $2" "status $STATUS: $BODY"
  expect "$1 $2 completes" "$BODY" '.status == "completed"'
  http GET "/api/v1/artifacts/$(printf '%s' "$BODY" | jq -r .artifact_id)"
  [ "$STATUS" = 200 ] || fail "$1 artifact" "status $STATUS: $BODY"
  RESULT=$(printf '%s' "$BODY" | jq -c .data.result)
}
# serving FILE SO: FILE in the plugins folder is active with SO's bytes.
serving() {
  http GET /api/v1/plugins
  expect "$1 serves $2" "$BODY" \
    "any(.[]; .file == \"$1\" and .state == \"active\" and .hash == \"$(sha256sum "$2" | cut -d' ' -f1)\")"
}

serving wordcount.so "$WORK/cpp/wordcount.so"
serving c_square.so "$WORK/c/c_square.so"
run_task count_words '{"text": "to be or not to be"}'
expect "count_words (C++ plugin) answers" "$RESULT" '. == {"words": 6, "distinct": 4, "counts": {"be": 2, "not": 1, "or": 1, "to": 2}}'
run_task shout '{"words": ["hello", "plugins"]}'
expect "shout (C++ plugin, a default) answers" "$RESULT" '. == {"text": "HELLO PLUGINS!"}'
run_task c_square '{"n": -12}'
expect "c_square (C plugin) answers" "$RESULT" '. == {"n": -12, "square": 144}'
http GET /api/v1/tasks/c_square
expect "c_square describes its parameter" "$BODY" '.parameters | length == 1'
# Refused before a job exists (400) where the host checks the schema, else the
# plugin's own check fails the job.
http POST '/api/v1/tasks/c_square/$execute?wait=10' '{"params": {"n": "twelve"}}'
[ "$STATUS" = 400 ] || expect "c_square refuses a string" "$BODY" '.status == "failed"'

# The other builds of each, swapped in by rename and reloaded.
for variant in raw/wordcount.so pc/wordcount.so gcc/c_square.so; do
  file=${variant#*/}
  cp "$WORK/$variant" "$WORK/plugins/.$file.tmp"
  mv "$WORK/plugins/.$file.tmp" "$WORK/plugins/$file"
  http POST '/api/v1/plugins/$reload'
  [ "$STATUS" = 200 ] || fail "reload with $variant" "status $STATUS: $BODY"
  expect "reload with $variant" "$BODY" '.refused == []'
  serving "$file" "$WORK/$variant"
  if [ "$file" = c_square.so ]; then
    run_task c_square '{"n": 1000000}'
    expect "c_square ($variant) answers" "$RESULT" '. == {"n": 1000000, "square": 1000000000000}'
  else
    run_task count_words '{"text": "a b a"}'
    expect "count_words ($variant) answers" "$RESULT" '.words == 3 and .distinct == 2'
  fi
done

echo "$passed passed, $failed failed"
