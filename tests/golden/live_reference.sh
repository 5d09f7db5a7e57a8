#!/usr/bin/env bash
# Live parity with the PyTorch reference through famq-rt's command-line
# contracts, on a checkpoint that is not committed: a fresh seeded random
# Qwen3-architecture model (other shapes than the fixtures), written by
# scripts/reference/make_random_checkpoint.py.
#   - famq-rt logits --prompt TEXT vs famq_ref.py logits on the same ids
#     (ids from famq-rt tokenize; --kv-type f32, the reference arithmetic):
#     max |diff| / max |ref| <= 1e-4
#   - famq-rt generate --prompt-ids (greedy, 32 tokens, eos ignored) vs
#     famq_ref.py generate --no-stop: identical ids
#
# With MODEL_DIR, the same checks run on that model (the family: famq-tiny-s)
# instead of a fresh random one.
#
#   tests/golden/live_reference.sh FAMQ_RT [SEED] [MODEL_DIR]
set -euo pipefail
famq_rt=${1:?usage: $0 FAMQ_RT [SEED] [MODEL_DIR]}
seed=${2:-4242}
model_dir=${3:-}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
py=/usr/bin/python3
if ! $py -c 'import torch, numpy' 2>/dev/null; then
  echo "live_reference: $py lacks torch/numpy (run scripts/install-deps.sh)" >&2
  exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ -n "$model_dir" ]; then
  model=$model_dir
else
  model=$work/model
  $py "$repo/scripts/reference/make_random_checkpoint.py" --out "$model" --seed "$seed" --arch qwen3 \
    --dtype F32 --hidden 96 --layers 3 --heads 6 --kv-heads 2 --head-dim 16 --intermediate 256 --vocab 512 >/dev/null
fi

prompt="Once upon a time, in 1987, a café owner counted 12,345 beans — and then some more; the end."
"$famq_rt" tokenize --model "$model" --text "$prompt" >"$work/ids.json"
"$famq_rt" logits --model "$model" --prompt "$prompt" --out "$work/famq.npy" --threads 2 --kv-type f32 2>/dev/null
$py "$repo/scripts/reference/famq_ref.py" logits --model "$model" --ids "$(cat "$work/ids.json")" --out "$work/ref.npy"
$py - "$work/famq.npy" "$work/ref.npy" <<'PY'
import sys
import numpy as np
got, ref = np.load(sys.argv[1]), np.load(sys.argv[2])
assert got.shape == ref.shape, (got.shape, ref.shape)
rel = float(np.abs(got - ref).max() / np.abs(ref).max())
print(f"live_reference: logits {got.shape}, max|diff|/max|ref| = {rel:.3e} (bound 1e-4)")
sys.exit(0 if rel <= 1e-4 else 1)
PY

ids=$($py -c 'import json,sys,random; r=random.Random(int(sys.argv[1])); print(json.dumps([r.randrange(8,300) for _ in range(48)]))' "$seed")
"$famq_rt" generate --model "$model" --prompt-ids "$ids" -n 32 --ignore-eos --json --threads 2 --kv-type f32 |
  $py -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["ids"]))' >"$work/famq_gen.json"
$py "$repo/scripts/reference/famq_ref.py" generate --model "$model" --ids "$ids" -n 32 --no-stop >"$work/ref_gen.json"
if [ "$(cat "$work/famq_gen.json")" = "$(cat "$work/ref_gen.json")" ]; then
  echo "live_reference: greedy 32 tokens identical"
else
  echo "live_reference: greedy tokens differ" >&2
  echo "  famq-rt: $(cat "$work/famq_gen.json")" >&2
  echo "  torch:   $(cat "$work/ref_gen.json")" >&2
  exit 1
fi
