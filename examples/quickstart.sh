#!/usr/bin/env bash
# famq quickstart (the README's first command): FAQ end to end on the
# committed test family.
#
#   bash examples/quickstart.sh     # as root (installs dependencies); as another user after install-deps.sh
#
#  1. set-up (scripts/install-deps.sh; FAMQ_SKIP_DEPS=1 skips it)
#  2. build famq (host) and famq-rt (device runtime)
#  3. host: famq-tiny-l regenerates 16 original samples for famq-tiny-s,
#     the candidates compete, the winners are re-normalized and packed into a
#     signed bundle (FAQ); the same 16 originals packed alone (baseline)
#  4. device: famq-rt finalize, GPTQ W4 g32 (and W4 per-channel, where
#     calibration matters more), from each bundle; on the host build and,
#     when build/aarch64 holds famq-rt (after scripts/test-all.sh), on aarch64
#     under qemu
#  5. famq eval of fp32 and every quantized model (test splits), famq compare:
#     accuracy loss and FAQ gain; a generation from the quantized model
#
# One seed, one draw of 16 originals: the full grid with spreads over seeds
# is docs/RESULTS.md (scripts/experiment/run.sh).
#
# Environment: FAMQ_SKIP_DEPS=1, FAMQ_JOBS (default nproc), FAMQ_SEED (1),
# FAMQ_QUICKSTART_OUT (default build/quickstart).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
jobs=${FAMQ_JOBS:-$(nproc)}
seed=${FAMQ_SEED:-1}
out=${FAMQ_QUICKSTART_OUT:-$repo/build/quickstart}
S=models/famq-tiny-s
L=models/famq-tiny-l
suite=experiment
t0=$SECONDS
step() { printf '\n[quickstart %3ds] %s\n' "$((SECONDS - t0))" "$*" >&2; }

if [ "${FAMQ_SKIP_DEPS:-0}" != 1 ]; then
  if [ "$(id -u)" = 0 ]; then
    step "1/6 installing dependencies (scripts/install-deps.sh; FAMQ_SKIP_CROSS=1: no ARM sysroots here)"
    FAMQ_SKIP_CROSS=${FAMQ_SKIP_CROSS:-1} bash scripts/install-deps.sh
  else
    step "1/6 not root: assuming scripts/install-deps.sh has been run"
  fi
fi

step "2/6 building famq and famq-rt (cmake --preset host)"
cmake --preset host >/dev/null
cmake --build --preset host -j "$jobs" --target famq famq-rt
famq=build/host/quantizer/famq
rt=build/host/runtime/tools/famq-rt/famq-rt
mkdir -p "$out"
[ -f "$out/key.pem" ] || "$famq" keygen --out "$out/key.pem" --pub "$out/pub.pem"

step "3/6 host: famq bundle, famq-tiny-l regenerates 16 originals of the mixture preset for famq-tiny-s (G = 4)"
draw=(--calib-preset mixture --draw 16 --draw-seed "$seed")
rm -rf "$out/faq.famqb.work"
"$famq" bundle --target "$S" --regenerator "$L" "${draw[@]}" -G 4 --seed "$seed" --sign "$out/key.pem" \
  --out "$out/faq.famqb"
"$famq" bundle --target "$S" "${draw[@]}" --originals-only --sign "$out/key.pem" --out "$out/original.famqb" -q
"$famq" verify "$out/faq.famqb" --trust "$out/pub.pem"
"$famq" inspect "$out/faq.famqb" | sed -n '1,12p;14,19p'

finalize() { # RT NAME BUNDLE GROUP -> $out/NAME.famq
  "$1" finalize --model "$S" --bundle "$3" --trust "$out/pub.pem" --method gptq --wbits 4 --group "$4" \
    --out "$out/$2.famq" --quiet
}
step "4/6 device: famq-rt finalize, GPTQ W4 g32 and W4 per-channel, from each bundle (host build)"
for src in original faq; do
  finalize "$rt" "$src-w4g32" "$out/$src.famqb" 32
  finalize "$rt" "$src-w4ch" "$out/$src.famqb" channel
done
arm_rt=build/aarch64/runtime/tools/famq-rt/famq-rt
arm_models=()
# qemu-user as the aarch64 tests run it (toolchains/famq-debian-cross.cmake): the cross gcc's
# loader and libc with -L, the sysroot's libraries through the guest's LD_LIBRARY_PATH.
arm_sysroot=$(sed -n 's/^FAMQ_SYSROOT:PATH=//p' build/aarch64/CMakeCache.txt 2>/dev/null || true)
arm_sysroot=${arm_sysroot:-/opt/famq-sysroot/aarch64}
if [ -x "$arm_rt" ] && command -v qemu-aarch64 >/dev/null && [ -d "$arm_sysroot" ]; then
  step "4/6 device: the same on aarch64 under qemu ($arm_rt)"
  arm() {
    qemu-aarch64 -L /usr/aarch64-linux-gnu -E "LD_LIBRARY_PATH=$arm_sysroot/usr/lib/aarch64-linux-gnu" "$@"
  }
  for src in original faq; do
    arm "$arm_rt" finalize --model "$S" --bundle "$out/$src.famqb" --trust "$out/pub.pem" --method gptq --wbits 4 \
      --group 32 --out "$out/$src-w4g32-aarch64.famq"
    arm_models+=("$src-w4g32-aarch64")
  done
else
  step "4/6 (no aarch64 famq-rt in build/aarch64: run scripts/test-all.sh, or FAMQ_STEPS=aarch64 of it, to add the qemu run)"
fi

step "5/6 famq eval (suite $suite: test splits) of fp32 and the quantized models, then famq compare"
"$famq" eval --model "$S" --suite "$suite" --json -q >"$out/fp32.json"
for q in original-w4g32 faq-w4g32 original-w4ch faq-w4ch "${arm_models[@]}"; do
  printf '[quickstart] famq eval --qmodel %s\n' "$out/$q.famq" >&2
  "$famq" eval --qmodel "$out/$q.famq" --suite "$suite" --json -q >"$out/$q.json"
done
echo
echo "famq-tiny-s, GPTQ W4 g32, calibrated on 16 originals vs on their FAQ regeneration:"
"$famq" compare --fp "$out/fp32.json" original="$out/original-w4g32.json" FAQ="$out/faq-w4g32.json"
echo
echo "famq-tiny-s, GPTQ W4 per-channel (a harsher scheme, where calibration data matters more):"
"$famq" compare --fp "$out/fp32.json" original="$out/original-w4ch.json" FAQ="$out/faq-w4ch.json"
if [ ${#arm_models[@]} -gt 0 ]; then
  echo
  echo "finalized on aarch64 (qemu), GPTQ W4 g32:"
  "$famq" compare --fp "$out/fp32.json" original="$out/original-w4g32-aarch64.json" FAQ="$out/faq-w4g32-aarch64.json"
fi

step "6/6 famq-rt generate from the FAQ-calibrated W4 g32 model"
printf 'And God said'
"$rt" generate --qmodel "$out/faq-w4g32.famq" --prompt "And God said" -n 40
echo
step "done in $((SECONDS - t0)) s; files in $out.
  One draw, one seed: docs/RESULTS.md has the grid over seeds, methods and ablations, where FAQ's gain on
  this tiny family stays within the seed-to-seed spread."
