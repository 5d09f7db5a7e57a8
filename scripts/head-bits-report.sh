#!/usr/bin/env bash
# The cost of each --head-bits choice on the family: the table of
# docs/DEVICE.md "The embedding and head".
#
#   bash scripts/head-bits-report.sh [OUT_DIR]     (build/host must be built)
#
# For each target T in famq-tiny-s, famq-tiny-m, famq-tiny-l: `famq-rt
# finalize --method rtn --wbits 4 --group 32` (RTN needs no calibration data)
# with --head-bits 16 (embedding and head as stored), 8, 6 and 4, then `famq
# eval --limit 0` (perplexity of the four text domains of models/eval/test,
# first FAMQ_WINDOWS windows of 256 tokens each, default 64) on each file.
# Prints a markdown table: ppl per domain, its change against head 16 of the
# same blocks, file size. JSON per run stays in OUT_DIR.
# FAMQ_TARGETS: the targets (default all three); FAMQ_FINALIZE_FLAGS: more
# finalize flags for every file (e.g. "--symmetric --scale-dtype f16").
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
famq=$repo/build/host/quantizer/famq
rt=$repo/build/host/runtime/tools/famq-rt/famq-rt
out=${1:-$repo/build/head-bits-report}
windows=${FAMQ_WINDOWS:-64}
threads=${FAMQ_THREADS:-2}
targets=${FAMQ_TARGETS:-famq-tiny-s famq-tiny-m famq-tiny-l}
read -r -a extra <<<"${FAMQ_FINALIZE_FLAGS:-}"
mkdir -p "$out"
for t in $targets; do
  for hb in 16 8 6 4; do
    name=$t.h$hb
    echo "[head-bits] $t: --head-bits $hb" >&2
    "$rt" finalize --model "$repo/models/$t" --calib-text "$repo/models/README.md" --method rtn --wbits 4 --group 32 \
      --head-bits "$hb" ${extra[@]+"${extra[@]}"} --threads "$threads" --quiet --json --out "$out/$name.famq" \
      >"$out/$name.finalize.json"
    "$famq" eval --qmodel "$out/$name.famq" --suite default --eval-dir "$repo/models/eval" --limit 0 \
      --max-windows "$windows" --threads "$threads" --json -q >"$out/$name.eval.json"
  done
done
/usr/bin/python3 - "$out" "$windows" "$targets" "${FAMQ_FINALIZE_FLAGS:-}" <<'PY'
import json, sys
out, windows, targets, flags = sys.argv[1], sys.argv[2], sys.argv[3].split(), sys.argv[4]
domains = ["bible", "dictionary", "computing", "fortunes"]
print("| target | head | " + " | ".join(f"{d} ppl (Δ)" for d in domains) + " | worst Δppl | file MiB |")
print("|---|---|" + "---|" * len(domains) + "---|---|")
for t in targets:
    base = json.load(open(f"{out}/{t}.h16.eval.json"))["text"]
    for hb in [16, 8, 6, 4]:
        q = json.load(open(f"{out}/{t}.h{hb}.eval.json"))["text"]
        fin = json.load(open(f"{out}/{t}.h{hb}.finalize.json"))
        d = [q[x]["ppl"] / base[x]["ppl"] - 1 for x in domains]
        head = "as stored (BF16)" if hb == 16 else f"W{hb} g32 sym"
        cells = " | ".join(f"{q[x]['ppl']:.2f} ({100 * dx:+.2f}%)" for x, dx in zip(domains, d))
        print(f"| {t} | {head} | {cells} | {100 * max(d):+.2f}% | {fin['bytes'] / 2**20:.2f} |")
extra = f", finalize flags `{flags}`" if flags else ""
print(f"\n(blocks RTN W4 g32 in every row{extra}; first {windows} windows of 256 tokens per domain of models/eval/test;"
      " Δ against the head kept as stored, same blocks)")
PY
