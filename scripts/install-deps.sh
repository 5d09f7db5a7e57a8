#!/usr/bin/env bash
# Installs every Debian bookworm package that famq's build, tests and reference
# scripts need, and builds the cross sysroots from Debian's arm64/armhf packages.
# Idempotent; run as root. Nothing outside Debian (and npm, for the test-only
# tokenizer oracle) is fetched.
#
#   scripts/install-deps.sh            # everything
#   scripts/install-deps.sh --runtime-only          # just the device runtime (famq-rt, libfamq, its unit tests)
#   scripts/install-deps.sh --runtime-only --cross  # ... plus the ARM cross compilers, qemu and sysroots
#   FAMQ_SYSROOT_DIR=/opt/x scripts/install-deps.sh
#   FAMQ_SKIP_CROSS=1 scripts/install-deps.sh   # host only
set -euo pipefail

runtime_only=0
with_cross=""
for arg in "$@"; do
  case $arg in
    --runtime-only) runtime_only=1 ;;
    --cross) with_cross=1 ;;
    -h | --help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "install-deps.sh: unknown option '$arg' (--runtime-only, --cross, --help)" >&2; exit 2 ;;
  esac
done

SYSROOT_DIR=${FAMQ_SYSROOT_DIR:-/opt/famq-sysroot}
export DEBIAN_FRONTEND=noninteractive

if [ "$(id -u)" != 0 ]; then
  echo "install-deps.sh: run as root (it calls apt-get and writes $SYSROOT_DIR)" >&2
  exit 1
fi

log() { printf '[install-deps] %s\n' "$*" >&2; }

HOST_PKGS=(
  build-essential cmake ninja-build pkg-config git ca-certificates file
  libxnnpack-dev libcpuinfo-dev libpthreadpool-dev
  libflatbuffers-dev flatbuffers-compiler
  libmbedtls-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  nlohmann-json3-dev libcli11-dev libcpp-httplib-dev
  clang clang-14 libclang-rt-14-dev llvm
  python3 python3-torch python3-numpy python3-matplotlib libopenblas0-pthread
  unicode-data
  bible-kjv-text dict-gcide wordnet-base dict-jargon dict-foldoc fortunes fortunes-min
)
# The device runtime alone (FAMQ_DEVICE_ONLY=ON: runtime/, arm/, x86/, schema/,
# famq-rt, the C API and their unit tests): no host stage, Python, Node or clang.
RUNTIME_PKGS=(
  build-essential cmake ninja-build pkg-config ca-certificates file
  libxnnpack-dev libcpuinfo-dev libpthreadpool-dev
  libflatbuffers-dev flatbuffers-compiler
  libmbedtls-dev
  libgtest-dev libgmock-dev
  nlohmann-json3-dev libcli11-dev
)
CROSS_PKGS=(
  g++-aarch64-linux-gnu binutils-aarch64-linux-gnu
  g++-arm-linux-gnueabihf binutils-arm-linux-gnueabihf
  qemu-user
)
# Target-architecture libraries unpacked into the sysroots (not installed).
# The cross compilers bring their own libc/libstdc++ (/usr/<triplet>); the
# sysroots hold only what Debian builds for the target on top of that.
SYSROOT_PKGS=(
  libxnnpack-dev libxnnpack0 libcpuinfo-dev libcpuinfo0
  libpthreadpool-dev libpthreadpool0
  libgtest-dev libgmock-dev
  libflatbuffers-dev libflatbuffers2
  libmbedtls-dev libmbedtls14 libmbedcrypto7 libmbedx509-1
)
# Architecture-independent (Architecture: all) header-only packages: apt has no
# "pkg:arm64" candidate for them, so they are fetched without an arch suffix.
SYSROOT_ALL_PKGS=(nlohmann-json3-dev libcli11-dev)
# Files every sysroot must end up with (checked after unpacking).
SYSROOT_CHECK=(
  usr/include/xnnpack.h usr/include/cpuinfo.h usr/include/pthreadpool.h
  usr/include/gtest/gtest.h usr/include/gmock/gmock.h
  usr/include/flatbuffers/flatbuffers.h usr/include/mbedtls/pk.h usr/include/psa/crypto.h
  usr/include/nlohmann/json.hpp usr/include/CLI/CLI.hpp
  usr/share/cmake/nlohmann_json/nlohmann_jsonConfig.cmake
  usr/lib/@TRIPLET@/libXNNPACK.so usr/lib/@TRIPLET@/libcpuinfo.so
  usr/lib/@TRIPLET@/libpthreadpool.so usr/lib/@TRIPLET@/libgtest.a
  usr/lib/@TRIPLET@/libgmock.a usr/lib/@TRIPLET@/libflatbuffers.so
  usr/lib/@TRIPLET@/libmbedcrypto.so usr/lib/@TRIPLET@/libmbedx509.so
  usr/lib/@TRIPLET@/libmbedtls.so
  usr/lib/@TRIPLET@/cmake/GTest/GTestConfig.cmake
)
STAMP_VERSION=2  # bump to force every machine to rebuild its sysroots

apt_updated=0
apt_update() { # once per run, unless forced with apt_updated=0
  [ $apt_updated = 0 ] || return 0
  local i
  for i in 1 2 3 4; do
    log "apt-get update (try $i)"
    if apt-get update -q >/dev/null; then apt_updated=1; return 0; fi
    sleep $((i * 5))
  done
  # A mirror caught mid-sync fails one index; the other lists still serve.
  log "warning: apt-get update reported errors; going on with the lists it has"
  apt_updated=1
}

# Runs an apt-get command; when it fails (stale lists against a mirror mid-sync
# give 404s), refreshes the lists and tries again.
apt_retry() {
  local i
  for i in 1 2 3; do
    if "$@"; then return 0; fi
    log "'$*' failed (try $i); refreshing package lists"
    sleep $((i * 10))
    apt_updated=0
    apt_update
  done
  "$@"
}

if [ $runtime_only = 1 ]; then
  HOST_PKGS=("${RUNTIME_PKGS[@]}")
  # ARM cross builds only when asked for.
  [ -n "$with_cross" ] || FAMQ_SKIP_CROSS=1
fi

missing=()
want=("${HOST_PKGS[@]}")
[ -n "${FAMQ_SKIP_CROSS:-}" ] || want+=("${CROSS_PKGS[@]}")
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# Node.js + npm run the test-only tokenizer oracle; keep an existing install
# (e.g. NodeSource's nodejs, which bundles npm and conflicts with Debian's npm).
if [ $runtime_only = 0 ]; then
  command -v node >/dev/null || missing+=(nodejs)
  command -v npm >/dev/null || missing+=(npm)
fi

if [ -z "${FAMQ_SKIP_CROSS:-}" ]; then
  for arch in arm64 armhf; do
    if ! dpkg --print-foreign-architectures | grep -qx "$arch"; then
      log "adding dpkg architecture $arch"
      dpkg --add-architecture "$arch"
      apt_update  # the new architecture's package lists are needed below
    fi
  done
fi

if [ ${#missing[@]} -gt 0 ]; then
  apt_update
  log "installing: ${missing[*]}"
  apt_retry apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
else
  log "host packages already installed"
fi

build_sysroot() { # $1 = dpkg arch, $2 = GNU triplet, $3 = directory
  local arch=$1 triplet=$2 dir=$3 stamp=$3/.famq-sysroot-stamp
  local want_stamp="v$STAMP_VERSION ${SYSROOT_PKGS[*]} ${SYSROOT_ALL_PKGS[*]}"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want_stamp" ]; then
    log "sysroot $dir up to date"
    return
  fi
  apt_update
  log "building $arch sysroot in $dir"
  local tmp; tmp=$(mktemp -d)
  # apt drops privileges to _apt for downloads; let it write here.
  if getent passwd _apt >/dev/null; then chown _apt "$tmp"; fi
  (cd "$tmp" && apt_retry apt-get download -q "${SYSROOT_PKGS[@]/%/:$arch}" "${SYSROOT_ALL_PKGS[@]}" >/dev/null)
  rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
  local deb
  for deb in "$tmp"/*.deb; do dpkg -x "$deb" "$dir.tmp"; done
  rm -rf "$tmp"
  # Sources (usr/src/gtest links into the googletest source package, which is
  # not unpacked) and docs are not needed to build against the sysroot.
  rm -rf "$dir.tmp/usr/src" "$dir.tmp/usr/share/doc"
  # Debian's -dev symlinks may be absolute (/usr/lib/...); make them relative so
  # they resolve inside the sysroot wherever it lives.
  local l t
  while IFS= read -r -d '' l; do
    t=$(readlink "$l")
    case "$t" in /*) ln -sfnr "$dir.tmp$t" "$l" ;; esac
  done < <(find "$dir.tmp" -type l -print0)
  local dangling; dangling=$(find "$dir.tmp" -xtype l)
  if [ -n "$dangling" ]; then
    log "error: dangling symlinks in the $arch sysroot:"; printf '  %s\n' $dangling >&2
    exit 1
  fi
  local f bad=0
  for f in "${SYSROOT_CHECK[@]}"; do
    f=${f//@TRIPLET@/$triplet}
    if [ ! -e "$dir.tmp/$f" ]; then log "error: $arch sysroot lacks $f"; bad=1; fi
  done
  [ $bad = 0 ] || exit 1
  echo "$want_stamp" > "$dir.tmp/.famq-sysroot-stamp"
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
}

if [ -z "${FAMQ_SKIP_CROSS:-}" ]; then
  build_sysroot arm64 aarch64-linux-gnu "$SYSROOT_DIR/aarch64"
  build_sysroot armhf arm-linux-gnueabihf "$SYSROOT_DIR/armhf"
fi
log "done"
