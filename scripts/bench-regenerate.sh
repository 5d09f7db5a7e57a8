#!/usr/bin/env bash
# Regeneration throughput of a family member, in-process vs through
# `famq serve` (the OpenAI-compatible path), in one run on the same inputs:
# generated tokens per second of wall time of `famq regenerate`.
#
#   bash scripts/bench-regenerate.sh [REGENERATOR=models/famq-tiny-l] [SAMPLES=16] [THREADS=2]
#
# Both runs use the same seed, G = 4, 128 new tokens at most and the first
# SAMPLES originals of the mixture preset; their candidates are identical (the
# host_stage test checks that), so the token counts are too.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
famq=$repo/build/host/quantizer/famq
R=${1:-$repo/models/famq-tiny-l}
n=${2:-16}
threads=${3:-2}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
common=(--target "$repo/models/famq-tiny-s" --regenerator "$R" --calib-preset mixture --models-dir "$repo/models"
  --max-samples "$n" -G 4 --max-new-tokens 128 --seed 1 -q)
count() { /usr/bin/python3 -c "
import json, sys
print(sum(len(c['ids']) for l in open(sys.argv[1]) if l.strip() and 'candidates' in json.loads(l)
          for c in json.loads(l)['candidates']))" "$1"; }
t0=$(date +%s.%N)
"$famq" regenerate "${common[@]}" --threads "$threads" --out "$work/engine.jsonl"
t1=$(date +%s.%N)
"$famq" serve --model "$R" --port 0 --threads "$threads" -q >"$work/serve.out" &
for _ in $(seq 100); do grep -q 'http://' "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
url=$(grep -o 'http://[0-9.:]*' "$work/serve.out")
t2=$(date +%s.%N)
"$famq" regenerate "${common[@]}" --backend "openai:$url" --out "$work/serve.jsonl"
t3=$(date +%s.%N)
/usr/bin/python3 - "$(count "$work/engine.jsonl")" "$(count "$work/serve.jsonl")" "$t0" "$t1" "$t2" "$t3" "$R" "$n" "$threads" <<'PY'
import os, sys
te, ts = int(sys.argv[1]), int(sys.argv[2])
t0, t1, t2, t3 = map(float, sys.argv[3:7])
e, s = te / (t1 - t0), ts / (t3 - t2)
print(f"| backend | generated tokens | wall s | tokens/s | ratio |")
print(f"|---|---|---|---|---|")
print(f"| in-process engine | {te} | {t1 - t0:.1f} | {e:.0f} | 1.00x |")
print(f"| famq serve (HTTP, loopback) | {ts} | {t3 - t2:.1f} | {s:.0f} | {s / e:.2f}x |")
print(f"\n({os.path.basename(sys.argv[7].rstrip('/'))}, {sys.argv[8]} originals, G = 4, <= 128 new tokens, {sys.argv[9]} threads)")
PY
