#!/usr/bin/env bash
# `cmake --install` of a famq build, then an out-of-tree consumer built against
# the installed prefix alone and run on models/famq-tiny-s:
#   - find_package(famq CONFIG): famq::famq (shared) and famq::famq_static
#   - pkg-config famq (host builds): the same program compiled by hand
#
#   tests/install/install_consumer.sh BUILD_DIR [TOOLCHAIN_FILE SYSROOT EMULATOR...]
#
# With a toolchain file the consumer is cross-built (and run under EMULATOR).
set -euo pipefail

if [ $# -lt 1 ]; then
  echo "usage: $0 BUILD_DIR [TOOLCHAIN_FILE SYSROOT EMULATOR...]" >&2
  exit 2
fi
build_dir=$(cd "$1" && pwd)
shift
toolchain=${1:-}
sysroot=${2:-}
[ $# -ge 2 ] && shift 2 || shift $#
emulator=("$@")
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix

fail() { echo "install_consumer: FAIL: $*" >&2; exit 1; }

cmake --install "$build_dir" --prefix "$prefix" >"$work/install.log" || { cat "$work/install.log" >&2; fail "cmake --install"; }
api=$(sed -n 's/^#define FAMQ_API_VERSION \([0-9]*\).*/\1/p' "$repo/runtime/include/famq/famq.h")
libdir=lib
[ -d "$prefix/lib" ] || fail "no lib/ in the prefix"
for f in include/famq/famq.h "$libdir/libfamq_runtime.so.$api" "$libdir/libfamq_runtime.so" "$libdir/libfamq_runtime.a" \
         "$libdir/cmake/famq/famqConfig.cmake" "$libdir/cmake/famq/famqConfigVersion.cmake" \
         "$libdir/pkgconfig/famq.pc" bin/famq-rt; do
  [ -e "$prefix/$f" ] || fail "the install lacks $f"
done
soname=$(objdump -p "$prefix/$libdir/libfamq_runtime.so.$api" 2>/dev/null | awk '/SONAME/ {print $2}')
if [ -n "$soname" ] && [ "$soname" != "libfamq_runtime.so.$api" ]; then
  fail "SONAME is '$soname', expected libfamq_runtime.so.$api (FAMQ_API_VERSION $api)"
fi
echo "install_consumer: installed to a scratch prefix (SONAME ${soname:-?})"

cross=()
if [ -n "$toolchain" ]; then
  # A cross build finds packages only inside its target roots: name the package directly.
  cross=(-DCMAKE_TOOLCHAIN_FILE="$toolchain" -DFAMQ_SYSROOT="$sysroot" -Dfamq_DIR="$prefix/$libdir/cmake/famq")
fi
cmake -S "$repo/tests/install/consumer" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$prefix" -DFAMQ_EXAMPLE_SOURCE="$repo/examples/c-api/famq_example.c" "${cross[@]}" \
  >"$work/configure.log" 2>&1 || { cat "$work/configure.log" >&2; fail "configuring the consumer"; }
cmake --build "$work/build" >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; fail "building the consumer"; }

# The static consumer must not need libfamq_runtime.so.
if objdump -p "$work/build/consumer_static" | grep -q 'NEEDED.*libfamq_runtime'; then
  fail "consumer_static depends on libfamq_runtime.so"
fi
objdump -p "$work/build/consumer_shared" | grep -q "NEEDED.*libfamq_runtime.so.$api" ||
  fail "consumer_shared does not link libfamq_runtime.so.$api"

run() { # NAME BINARY: runs the example on famq-tiny-s and checks its output
  local out
  out=$("${emulator[@]}" "$2" "$repo/models/famq-tiny-s" "Question: What is 36 + 8?\nAnswer:" 8 2>&1) ||
    { echo "$out" >&2; fail "$1 exited non-zero"; }
  echo "$out" | grep -Eq 'generated [0-9]+ tokens' || { echo "$out" >&2; fail "$1 generated nothing"; }
  echo "install_consumer: $1 OK"
}
run "find_package famq::famq" "$work/build/consumer_shared"
run "find_package famq::famq_static" "$work/build/consumer_static"

if [ -z "$toolchain" ] && command -v pkg-config >/dev/null; then
  export PKG_CONFIG_PATH=$prefix/$libdir/pkgconfig
  # shellcheck disable=SC2046
  cc -std=c99 -Wall -Werror "$repo/examples/c-api/famq_example.c" $(pkg-config --cflags --libs famq) \
    -Wl,-rpath,"$prefix/$libdir" -o "$work/pc_shared"
  # shellcheck disable=SC2046
  cc -std=c99 -Wall -Werror "$repo/examples/c-api/famq_example.c" $(pkg-config --cflags famq) \
    "$prefix/$libdir/libfamq_runtime.a" $(pkg-config --static --libs-only-l famq | sed 's/-lfamq_runtime//') -o "$work/pc_static"
  run "pkg-config shared" "$work/pc_shared"
  run "pkg-config static" "$work/pc_static"
fi
echo "install_consumer: OK"
