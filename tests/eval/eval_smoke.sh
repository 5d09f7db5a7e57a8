#!/usr/bin/env bash
# Smoke run of `famq eval --suite smoke` on a family member: checks the
# pipeline (every text domain scored, every reasoning problem attempted and
# its answer line parsed or counted) and that the model is a trained one
# (perplexity far below the uniform distribution's, which is the vocab size).
# Not a quality gate: the gates are measured on the full test suite and
# written in the model cards.
#
#   tests/eval/eval_smoke.sh FAMQ MODEL_DIR
set -euo pipefail
famq=${1:?usage: $0 FAMQ MODEL_DIR}
model=${2:?usage: $0 FAMQ MODEL_DIR}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$famq" eval --model "$model" --suite smoke --eval-dir "$repo/models/eval" --json --threads 2 >"$out"
/usr/bin/python3 - "$out" "$model" <<'PY'
import json, math, sys
r = json.load(open(sys.argv[1]))
vocab = json.load(open(sys.argv[2] + "/config.json"))["vocab_size"]
ok = True
for d in ("bible", "computing", "dictionary", "fortunes"):
    t = r["text"].get(d)
    good = t is not None and t["tokens"] > 0 and math.isfinite(t["ppl"]) and t["ppl"] < vocab / 8
    print(f"eval_smoke: {d:<10} ppl {t['ppl'] if t else float('nan'):9.3f} top-1 {t['top1_accuracy'] if t else 0:.3f} "
          f"{'ok' if good else 'FAIL'}")
    ok &= good
rs = r["reasoning"]
good = rs["total"] == 35 and 0 <= rs["correct"] <= rs["total"]
print(f"eval_smoke: reasoning {rs['correct']}/{rs['total']} correct, {rs['unparsed']} without an answer line "
      f"{'ok' if good else 'FAIL'}")
ok &= good
sys.exit(0 if ok else 1)
PY
