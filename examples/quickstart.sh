#!/usr/bin/env bash
# famq quickstart (the README's first command).
#
#   sudo bash examples/quickstart.sh
#
# Today it sets up the machine, builds the host runtime and runs the fp32
# engine end to end on a committed Hugging Face checkpoint: describe it,
# tokenize, generate, and compute perplexity. The checkpoint is the seeded
# *random* Qwen3-architecture test model (tests/data/tiny-random-qwen3), so the
# generated text is noise by design; the famq-tiny family (issue 3) and the
# full FAQ pipeline (bundle -> finalize -> evaluate, issue 6) replace it here.
#
# Environment: FAMQ_SKIP_DEPS=1 skips scripts/install-deps.sh; FAMQ_MODEL=DIR
# runs on another Hugging Face directory (Qwen3/Qwen2/Llama); FAMQ_JOBS.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
model=${FAMQ_MODEL:-tests/data/tiny-random-qwen3}
jobs=${FAMQ_JOBS:-$(nproc)}
step() { printf '\n[quickstart] %s\n' "$*" >&2; }

if [ "${FAMQ_SKIP_DEPS:-0}" != 1 ]; then
  if [ "$(id -u)" = 0 ]; then
    step "1/5 installing dependencies (scripts/install-deps.sh; FAMQ_SKIP_CROSS=1 skips the ARM sysroots)"
    FAMQ_SKIP_CROSS=${FAMQ_SKIP_CROSS:-1} bash scripts/install-deps.sh
  else
    step "1/5 not root: assuming scripts/install-deps.sh has been run"
  fi
fi

step "2/5 building famq-rt (cmake --preset host)"
cmake --preset host >/dev/null
cmake --build --preset host -j "$jobs" --target famq-rt
rt=build/host/runtime/tools/famq-rt/famq-rt

step "3/5 famq-rt info --model $model"
"$rt" info --model "$model"

step "4/5 famq-rt generate --model $model --prompt 'The family of' -n 24 --temp 8 (sampled noise from random weights)"
"$rt" generate --model "$model" --prompt "The family of" -n 24 --seed 7 --temp 8 --top-p 0.95

step "5/5 famq-rt ppl on the README (random weights with large logits: the perplexity is huge by design)"
"$rt" ppl --model "$model" --text README.md --ctx 128 --max-windows 4
step "done: the engine built and ran; see README.md for the commands"
