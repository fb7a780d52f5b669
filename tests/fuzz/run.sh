#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz/CMakeLists.txt) with clang, ASan
# and UBSan, and runs each for a short bounded time.
# Usage: run.sh BUILD_DIR [SECONDS_PER_TARGET]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:?build dir}
mkdir -p "$out" && out=$(cd "$out" && pwd)
seconds=${2:-20}
targets=(fuzz_params fuzz_ulid fuzz_request_head)
CC=clang CXX=clang++ cmake -S "$root" -B "$out" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTASKHOST_SANITIZE=fuzzer \
  -DTASKHOST_BUILD_BENCH=OFF >/dev/null
cmake --build "$out" -j"$(nproc)" --target "${targets[@]}"
for target in "${targets[@]}"; do
  binary="$out/tests/fuzz/$target"
  corpus="$out/corpus-$target"
  mkdir -p "$corpus"
  cp "$root"/tests/fuzz/seeds/"$target"/* "$corpus"/ 2>/dev/null || true
  echo "--- $target for ${seconds}s"
  status=0
  (cd "$out" && "$binary" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 "$corpus" >"$out/$target.log" 2>&1) || status=$?
  grep -E "stat::number_of_executed_units|^Done|ERROR|SUMMARY" "$out/$target.log" || true
  if [ "$status" -ne 0 ]; then
    echo "$target found a failure (exit $status); see $out/$target.log and $out/crash-*" >&2
    tail -40 "$out/$target.log" >&2
    exit 1
  fi
done
