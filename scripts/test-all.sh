#!/usr/bin/env bash
# famq's whole test suite, from a fresh Debian bookworm machine:
#
#   bash scripts/test-all.sh      # as root (installs dependencies); as another user after install-deps.sh
#
#  1. set-up: scripts/install-deps.sh (root only; skipped with FAMQ_SKIP_DEPS=1)
#  2. host:       Release, -Werror, every test (unit, golden, tokenizer oracle,
#                 PyTorch reference)
#  3. host-asan:  clang, ASan+UBSan, -Werror, every test, then each libFuzzer
#                 target for FAMQ_FUZZ_SECONDS (default 45) on its seed corpus
#  4. aarch64:    cross build, -Werror, every test under qemu-aarch64, and the
#                 greedy tokens of x86 and aarch64 compared on a fixture
#  5. armhf:      cross build (ARMv7-A + NEON), build only
#  6. aarch64-device: FAMQ_DEVICE_ONLY MinSizeRel; stripped sizes printed
#
# Environment: FAMQ_JOBS (default: nproc), FAMQ_FUZZ_SECONDS (45),
# FAMQ_STEPS (default "host host-asan aarch64 armhf aarch64-device").
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
jobs=${FAMQ_JOBS:-$(nproc)}
fuzz_seconds=${FAMQ_FUZZ_SECONDS:-30}
steps=${FAMQ_STEPS:-"host host-asan aarch64 armhf aarch64-device"}
summary=()
t_all=$SECONDS

log() { printf '\n[test-all] %s\n' "$*" >&2; }
timed() { # timed NAME CMD...: runs CMD, records its wall time
  local name=$1 start=$SECONDS
  shift
  "$@"
  summary+=("$(printf '%-28s %4ss' "$name" $((SECONDS - start)))")
}

if [ "${FAMQ_SKIP_DEPS:-0}" != 1 ]; then
  if [ "$(id -u)" = 0 ]; then
    log "installing dependencies (scripts/install-deps.sh)"
    timed "install-deps" bash scripts/install-deps.sh
  else
    log "not root: skipping scripts/install-deps.sh (run it once as root)"
  fi
fi

configure_build() { # preset
  cmake --preset "$1" >/dev/null
  cmake --build --preset "$1" -j "$jobs"
}
run_tests() { # preset
  ctest --preset "$1" -j "$jobs"
}

for step in $steps; do
  case $step in
    host | host-asan | aarch64)
      log "$step: configure + build"
      timed "$step build" configure_build "$step"
      log "$step: tests"
      timed "$step tests" run_tests "$step"
      if [ "$step" = host-asan ]; then
        log "host-asan: fuzz smoke (${fuzz_seconds}s per target)"
        timed "fuzz smoke" bash scripts/fuzz-smoke.sh build/host-asan "$fuzz_seconds"
      fi
      ;;
    armhf)
      log "armhf: configure + build"
      timed "armhf build" configure_build armhf
      ;;
    aarch64-device)
      log "aarch64-device: FAMQ_DEVICE_ONLY MinSizeRel build"
      timed "aarch64-device build" configure_build aarch64-device
      bash scripts/device-sizes.sh build/aarch64-device
      ;;
    *)
      echo "test-all: unknown step '$step'" >&2
      exit 2
      ;;
  esac
done

# x86 and aarch64 must agree token for token (greedy, fp32) on a fixture.
if [[ " $steps " == *" host "* && " $steps " == *" aarch64 "* ]]; then
  log "greedy tokens: x86 vs qemu-aarch64"
  timed "cross-arch greedy check" bash tests/golden/cross_arch_greedy.sh build/host build/aarch64
fi

log "summary"
printf '  %s\n' "${summary[@]}" >&2
printf '  %-28s %4ss\n' "total" $((SECONDS - t_all)) >&2
echo "test-all: OK" >&2
