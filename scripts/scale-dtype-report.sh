#!/usr/bin/env bash
# The cost of fp16 weight scales (--scale-dtype f16) on the family: the table
# of docs/DEVICE.md "Scales in fp16".
#
#   bash scripts/scale-dtype-report.sh [OUT_DIR]     (build/host must be built)
#
# For each target T in famq-tiny-s, famq-tiny-m, famq-tiny-l and each of W4
# g32 with zero points and W4 g32 symmetric: `famq-rt finalize --method
# FAMQ_METHOD (default gptq) --calib-text models/README.md` with
# --scale-dtype f32 and f16 (default W8 head), then `famq eval --limit 0` (perplexity of the
# four text domains of models/eval/test, first FAMQ_WINDOWS windows of 256
# tokens each, default 64) on each file. Prints a markdown table: ppl per
# domain, its change against f32 scales of the same scheme, file size. JSON
# per run stays in OUT_DIR.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
famq=$repo/build/host/quantizer/famq
rt=$repo/build/host/runtime/tools/famq-rt/famq-rt
out=${1:-$repo/build/scale-dtype-report}
windows=${FAMQ_WINDOWS:-64}
threads=${FAMQ_THREADS:-2}
method=${FAMQ_METHOD:-gptq}
mkdir -p "$out"
for t in famq-tiny-s famq-tiny-m famq-tiny-l; do
  for scheme in asym sym; do
    for sd in f32 f16; do
      name=$t.$scheme.$sd
      sym=()
      [[ $scheme == sym ]] && sym=(--symmetric)
      echo "[scale-dtype] $t: $scheme --scale-dtype $sd" >&2
      "$rt" finalize --model "$repo/models/$t" --calib-text "$repo/models/README.md" --method "$method" --wbits 4 \
        --group 32 "${sym[@]}" --scale-dtype "$sd" --threads "$threads" --quiet --json --out "$out/$name.famq" \
        >"$out/$name.finalize.json"
      "$famq" eval --qmodel "$out/$name.famq" --suite default --eval-dir "$repo/models/eval" --limit 0 \
        --max-windows "$windows" --threads "$threads" --json -q >"$out/$name.eval.json"
    done
  done
done
/usr/bin/python3 - "$out" "$windows" "$method" <<'PY'
import json, sys
out, windows, method = sys.argv[1], sys.argv[2], sys.argv[3]
domains = ["bible", "dictionary", "computing", "fortunes"]
print("| target | blocks | scales | " + " | ".join(f"{d} ppl (Δ)" for d in domains) + " | worst |Δppl| | file MiB |")
print("|---|---|---|" + "---|" * len(domains) + "---|---|")
for t in ["famq-tiny-s", "famq-tiny-m", "famq-tiny-l"]:
    for scheme in ["asym", "sym"]:
        base = json.load(open(f"{out}/{t}.{scheme}.f32.eval.json"))["text"]
        for sd in ["f32", "f16"]:
            q = json.load(open(f"{out}/{t}.{scheme}.{sd}.eval.json"))["text"]
            fin = json.load(open(f"{out}/{t}.{scheme}.{sd}.finalize.json"))
            d = [q[x]["ppl"] / base[x]["ppl"] - 1 for x in domains]
            blocks = "W4 g32 " + ("symmetric" if scheme == "sym" else "zero points")
            cells = " | ".join(f"{q[x]['ppl']:.2f} ({100 * dx:+.2f}%)" for x, dx in zip(domains, d))
            worst = max(abs(x) for x in d)
            print(f"| {t} | {blocks} | {sd} | {cells} | {100 * worst:.2f}% | {fin['bytes'] / 2**20:.3f} |")
print(f"\n({method.upper()} calibrated on models/README.md, default W8 head; first {windows} windows of 256 tokens"
      " per domain of models/eval/test; Δ against fp32 scales of the same scheme)")
PY
