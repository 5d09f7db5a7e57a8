#!/usr/bin/env bash
# Regenerates the seed corpus of fuzz_qmodel (tests/fuzz/corpus/fuzz_qmodel/):
# small quantized models finalized from the committed fixtures, one per
# scheme the reader distinguishes (weight-only int4 with groups, weight-only
# int8 per channel, static W8A8 with smoothing vectors; the embedding and head
# kept in floating point or quantized, tied and untied).
#
#   tests/fuzz/make_qmodel_seeds.sh build/host/runtime/tools/famq-rt/famq-rt
set -euo pipefail
if [ $# -ne 1 ]; then
  echo "usage: $0 FAMQ_RT" >&2
  exit 2
fi
rt=$1
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
out=$repo/tests/fuzz/corpus/fuzz_qmodel
data=$repo/tests/data
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
head -n 40 "$data/tokenizer_corpus.jsonl" >"$tmp/calib.txt"
mkdir -p "$out"
fin() { # NAME MODEL ARGS...
  local name=$1 model=$2
  shift 2
  "$rt" finalize --model "$data/$model" --calib-text "$tmp/calib.txt" --seq-len 32 --quiet "$@" \
    --out "$out/$name.famq" >/dev/null
  printf '%-36s %7d bytes\n' "$name.famq" "$(stat -c %s "$out/$name.famq")"
}
fin qwen3-rtn-w4-g32 tiny-random-qwen3 --method rtn --wbits 4 --group 32 --head-bits 16
fin qwen3-gptq-w8-channel-sym tiny-random-qwen3 --method gptq --wbits 8 --group channel --symmetric --head-bits 16
fin qwen3-smoothquant-w8a8 tiny-random-qwen3 --method smoothquant --wbits 8 --abits 8 --group channel --head-bits 16
fin qwen3-rtn-w4-g32-head4 tiny-random-qwen3 --method rtn --wbits 4 --group 32 --head-bits 4
fin llama-rtn-w4-g32-head8 tiny-random-llama --method rtn --wbits 4 --group 32 --head-bits 8
