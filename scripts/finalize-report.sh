#!/usr/bin/env bash
# Every finalize method on the family's targets, from a bundle made by the
# host stage, against fp32 on the held-out test splits: the table of
# docs/BENCHMARKS.md "Finalize on the family".
#
#   bash scripts/finalize-report.sh [OUT_DIR]     (build/host must be built)
#
# For each target T in famq-tiny-s, famq-tiny-m: `famq bundle` (famq-tiny-l
# regenerates 32 samples of the mixture preset for T, G = 4, 128 new
# tokens, seed 1), then `famq-rt finalize` with gptq / rtn / awq W4 g32,
# smoothquant W8A8 and min-max W8A8, then `famq eval --limit 0` (perplexity
# and next-token accuracy of the four text domains, first FAMQ_WINDOWS
# windows of 256 tokens each, default 64) on fp32 and on every result.
# Prints a markdown table; JSON per run stays in OUT_DIR.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
famq=$repo/build/host/quantizer/famq
rt=$repo/build/host/runtime/tools/famq-rt/famq-rt
out=${1:-$repo/build/finalize-report}
windows=${FAMQ_WINDOWS:-64}
threads=${FAMQ_THREADS:-2}
mkdir -p "$out"
[ -f "$out/key.pem" ] || "$famq" keygen --out "$out/key.pem" --pub "$out/pub.pem" >/dev/null
head -n 32 "$repo/models/calib/mixture.jsonl" >"$out/calib.jsonl"
methods=("gptq --wbits 4 --group 32" "rtn --wbits 4 --group 32" "awq --wbits 4 --group 32"
  "smoothquant --wbits 8 --abits 8 --group channel" "rtn --wbits 8 --abits 8 --group channel")
ev() { # ev NAME ARGS...: famq eval on the text domains -> $out/NAME.eval.json
  local name=$1
  shift
  "$famq" eval "$@" --suite default --eval-dir "$repo/models/eval" --limit 0 --max-windows "$windows" \
    --threads "$threads" --json -q >"$out/$name.eval.json"
}
for t in famq-tiny-s famq-tiny-m; do
  T=$repo/models/$t
  if [ ! -f "$out/$t.famqb" ]; then
    echo "[report] $t: bundle" >&2
    "$famq" bundle --target "$T" --regenerator "$repo/models/famq-tiny-l" -G 4 --max-new-tokens 128 --seed 1 \
      --sign "$out/key.pem" --calib "$out/calib.jsonl" --out "$out/$t.famqb" --threads "$threads" -q
  fi
  ev "$t.fp32" --model "$T"
  for m in "${methods[@]}"; do
    read -r -a args <<<"$m"
    name=$t.$(echo "$m" | tr -c 'a-z0-9\n' '_')
    echo "[report] $t: $m" >&2
    "$rt" finalize --model "$T" --bundle "$out/$t.famqb" --trust "$out/pub.pem" --method "${args[@]}" \
      --threads "$threads" --quiet --out "$out/$name.famq" --json >"$out/$name.finalize.json"
    ev "$name" --qmodel "$out/$name.famq"
  done
done
/usr/bin/python3 - "$out" "$windows" <<'PY'
import glob, json, os, sys
out, windows = sys.argv[1], sys.argv[2]
domains = ["bible", "dictionary", "computing", "fortunes"]
print(f"| target | scheme | method | " + " | ".join(f"{d} ppl" for d in domains) +
      " | mean Δppl | mean Δtop-1 (pts) | file MiB | finalize s | peak RSS MiB |")
print("|---|---|---|" + "---|" * len(domains) + "---|---|---|---|---|")
for t in ["famq-tiny-s", "famq-tiny-m"]:
    fp = json.load(open(f"{out}/{t}.fp32.eval.json"))["text"]
    print(f"| {t} | fp32 | — | " + " | ".join(f"{fp[d]['ppl']:.2f}" for d in domains) + " | — | — | — | — | — |")
    for f in sorted(glob.glob(f"{out}/{t}.*.finalize.json")):
        name = os.path.basename(f)[: -len(".finalize.json")]
        fin = json.load(open(f))
        q = json.load(open(f"{out}/{name}.eval.json"))["text"]
        dppl = sum(q[d]["ppl"] / fp[d]["ppl"] - 1 for d in domains) / len(domains)
        dacc = sum(q[d]["top1_accuracy"] - fp[d]["top1_accuracy"] for d in domains) / len(domains)
        scheme = f"W{fin['wbits']}A8 static" if fin["abits"] == 8 else f"W{fin['wbits']} g{fin['group']}"
        print(f"| {t} | {scheme} | {fin['method']} | " + " | ".join(f"{q[d]['ppl']:.2f}" for d in domains) +
              f" | {100 * dppl:+.2f}% | {100 * dacc:+.2f} | {fin['bytes'] / 2**20:.2f} | {fin['seconds']:.1f} |"
              f" {fin['peak_rss_bytes'] / 2**20:.0f} |")
print(f"\n(first {windows} windows of 256 tokens per domain of models/eval/test; Δ against fp32 of the same target)")
PY
