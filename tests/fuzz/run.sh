#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan+UBSan) and runs each for a
# short bounded time. Usage: run.sh BUILD_DIR [SECONDS_PER_TARGET]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:?build dir}
seconds=${2:-20}
mkdir -p "$out"
flags=(-std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -I "$root/sdk/include" -I "$root/host")
clang++ "${flags[@]}" "$root/tests/fuzz/fuzz_params.cpp" -o "$out/fuzz_params"
clang++ "${flags[@]}" "$root/tests/fuzz/fuzz_ulid.cpp" "$root/host/util/ulid.cpp" -o "$out/fuzz_ulid"
for target in fuzz_params fuzz_ulid; do
  corpus="$out/corpus-$target"
  mkdir -p "$corpus"
  cp "$root"/tests/fuzz/seeds/"$target"/* "$corpus"/ 2>/dev/null || true
  echo "--- $target for ${seconds}s"
  status=0
  (cd "$out" && "./$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 "$corpus" >"$out/$target.log" 2>&1) || status=$?
  grep -E "stat::number_of_executed_units|^Done|ERROR|SUMMARY" "$out/$target.log" || true
  if [ "$status" -ne 0 ]; then
    echo "$target found a failure (exit $status); see $out/$target.log and $out/crash-*" >&2
    tail -40 "$out/$target.log" >&2
    exit 1
  fi
done
