#!/usr/bin/env bash
# Fuzzes every libFuzzer target of a FAMQ_FUZZ build for a fixed time each.
#
#   scripts/fuzz-smoke.sh BUILD_DIR [SECONDS=60]     # e.g. build/host-asan 60
#
# Per-target flags come from tests/fuzz/<name>.options (e.g. -max_len=1048576:
# libFuzzer's default of 4096 bytes cannot nest JSON deep enough to find stack
# overflows) and a dictionary from tests/fuzz/<name>.dict (-dict=). A target
# without an options file gets -max_len=1048576.
#
# Each fuzzer starts from a scratch copy of its seed corpus
# (tests/fuzz/corpus/<name>/); the committed corpus is never written. Any crash,
# leak, timeout or OOM fails the run; its reproducer and log are kept in
# BUILD_DIR/fuzz-smoke/<name>/. Prints one summary line per fuzzer.
#
# FAMQ_FUZZ_ONLY="fuzz_a fuzz_b" fuzzes only those targets and keeps its logs in
# BUILD_DIR/fuzz-smoke-<first name>/, so that long runs can share the cores:
#   FAMQ_FUZZ_ONLY="fuzz_bundle fuzz_qmodel" scripts/fuzz-smoke.sh build/host-asan 600 &
set -euo pipefail

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: $0 BUILD_DIR [SECONDS=60]" >&2
  exit 2
fi
build_dir=$(cd "$1" && pwd)
seconds=${2:-60}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
src_dir=$repo/tests/fuzz
bin_dir=$build_dir/tests/fuzz
out_dir=$build_dir/fuzz-smoke
only=${FAMQ_FUZZ_ONLY:-}
[ -z "$only" ] || out_dir=$build_dir/fuzz-smoke-${only%% *}

# Which fuzzers should exist (sources) and which were built.
mapfile -t sources < <(find "$src_dir" -maxdepth 1 -name 'fuzz_*.cc' -printf '%f\n' 2>/dev/null | sed 's/\.cc$//' | sort)
mapfile -t fuzzers < <(find "$bin_dir" -maxdepth 1 -type f -name 'fuzz_*' -perm -u+x -printf '%f\n' 2>/dev/null | sort)
if [ ${#sources[@]} -eq 0 ]; then
  echo "fuzz-smoke: no fuzz targets in tests/fuzz yet; nothing to do"
  exit 0
fi
missing=()
for s in "${sources[@]}"; do
  [ -x "$bin_dir/$s" ] || missing+=("$s")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "fuzz-smoke: not built in $bin_dir: ${missing[*]} (configure with FAMQ_FUZZ=ON, e.g. --preset host-asan, and build)" >&2
  exit 1
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

rm -rf "$out_dir"
mkdir -p "$out_dir"
failed=()
ran=0
for name in "${fuzzers[@]}"; do
  if [ -n "$only" ] && [[ " $only " != *" $name "* ]]; then continue; fi
  ran=$((ran + 1))
  work=$out_dir/$name
  mkdir -p "$work/corpus" "$work/artifacts"
  seeds=0
  if [ -d "$src_dir/corpus/$name" ]; then
    cp -R "$src_dir/corpus/$name/." "$work/corpus/"
    seeds=$(find "$work/corpus" -type f | wc -l)
  fi
  flags=()
  if [ -f "$src_dir/$name.options" ]; then
    # shellcheck disable=SC2207
    flags=($(grep -v '^[[:space:]]*#' "$src_dir/$name.options" || true))
  else
    flags=(-max_len=1048576)
  fi
  [ -f "$src_dir/$name.dict" ] && flags+=("-dict=$src_dir/$name.dict")
  start=$SECONDS
  set +e
  "$bin_dir/$name" "${flags[@]}" -max_total_time="$seconds" -timeout=25 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$work/artifacts/" "$work/corpus" >"$work/log" 2>&1
  rc=$?
  set -e
  elapsed=$((SECONDS - start))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -n 1)
  cov=$(grep -o 'cov: [0-9]*' "$work/log" | tail -n 1 | sed 's/cov: //')
  units=$(find "$work/corpus" -type f | wc -l)
  if [ $rc -eq 0 ]; then
    printf 'fuzz-smoke: %-24s OK    %3ss  execs=%s  cov=%s  corpus %s -> %s  %s\n' \
      "$name" "$elapsed" "${execs:-?}" "${cov:-?}" "$seeds" "$units" "${flags[*]}"
    rm -rf "$work/corpus"  # scratch copy; keep the log
  else
    artifact=$(find "$work/artifacts" -type f | head -n 1)
    printf 'fuzz-smoke: %-24s FAIL  %3ss  exit=%s  reproducer=%s  log=%s\n' \
      "$name" "$elapsed" "$rc" "${artifact:-none}" "$work/log"
    grep -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error:|ERROR: libFuzzer)' "$work/log" | head -n 5 | sed 's/^/    /' || true
    failed+=("$name")
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz-smoke: FAILED: ${failed[*]} (reproduce: $bin_dir/<name> <reproducer>)" >&2
  exit 1
fi
if [ $ran -eq 0 ]; then
  echo "fuzz-smoke: no built target matches FAMQ_FUZZ_ONLY='$only'" >&2
  exit 1
fi
echo "fuzz-smoke: $ran fuzzer(s) ran ${seconds}s each without a crash"
