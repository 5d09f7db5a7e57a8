#!/usr/bin/env bash
# Prints the stripped sizes of the device artifacts of an aarch64 (or other
# cross) build: famq-rt and libfamq_runtime.so, as docs/BENCHMARKS.md records.
#
#   scripts/device-sizes.sh build/aarch64-device
set -euo pipefail
build=${1:?usage: $0 BUILD_DIR}
strip_tool=${STRIP:-aarch64-linux-gnu-strip}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for f in runtime/tools/famq-rt/famq-rt runtime/libfamq_runtime.so; do
  path=$build/$f
  if [ ! -f "$path" ]; then
    echo "device-sizes: $path not built" >&2
    exit 1
  fi
  "$strip_tool" -o "$tmp/out" "$path"
  printf 'device-sizes: %-22s %9d bytes stripped (%s)\n' "$(basename "$f")" "$(stat -c %s "$tmp/out")" \
    "$(file -bL "$path" | cut -d, -f1-2)"
done
