#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz/CMakeLists.txt) with clang, ASan
# and UBSan, and runs each for a short bounded time.
# Usage: run.sh BUILD_DIR [SECONDS_PER_TARGET]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:?build dir}
mkdir -p "$out" && out=$(cd "$out" && pwd)
seconds=${2:-20}
targets=(fuzz_params fuzz_ulid fuzz_request_head fuzz_worker_frames)
CC=clang CXX=clang++ cmake -S "$root" -B "$out" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTASKHOST_SANITIZE=fuzzer \
  -DTASKHOST_BUILD_BENCH=OFF >/dev/null
cmake --build "$out" -j"$(nproc)" --target "${targets[@]}"
# One target per core at a time: each still fuzzes for SECONDS on a core of its own.
parallel=$(nproc)
fuzz() {  # fuzz TARGET: runs it; its exit status in $out/TARGET.status
  local target=$1 status=0
  local binary="$out/tests/fuzz/$target" corpus="$out/corpus-$target"
  mkdir -p "$corpus"
  cp "$root"/tests/fuzz/seeds/"$target"/* "$corpus"/ 2>/dev/null || true
  (cd "$out" && "$binary" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 "$corpus" >"$out/$target.log" 2>&1) || status=$?
  echo "$status" >"$out/$target.status"
}
for target in "${targets[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$parallel" ]; do wait -n || true; done
  fuzz "$target" &
done
wait
failed=0
for target in "${targets[@]}"; do
  echo "--- $target for ${seconds}s"
  grep -E "stat::number_of_executed_units|^Done|ERROR|SUMMARY" "$out/$target.log" || true
  status=$(cat "$out/$target.status")
  if [ "$status" -ne 0 ]; then
    echo "$target found a failure (exit $status); see $out/$target.log and $out/crash-*" >&2
    tail -40 "$out/$target.log" >&2
    failed=1
  fi
done
exit "$failed"
