#!/usr/bin/env bash
# Regeneration throughput of a family member, in one run on the same inputs:
# the in-process engine decoding a group's G candidates one at a time
# (--parallel-candidates 1, the reference), the same engine decoding them as
# one batch (the default), and `famq serve` (the OpenAI-compatible path,
# which batches a request's n choices the same way): generated tokens per
# second of wall time of `famq regenerate`.
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
s0=$(date +%s.%N)
"$famq" regenerate "${common[@]}" --threads "$threads" --parallel-candidates 1 --out "$work/one.jsonl"
t0=$(date +%s.%N)
"$famq" regenerate "${common[@]}" --threads "$threads" --out "$work/engine.jsonl"
t1=$(date +%s.%N)
cmp -s "$work/one.jsonl" "$work/engine.jsonl" || { echo "batched and one-at-a-time candidates differ" >&2; exit 1; }
"$famq" serve --model "$R" --port 0 --threads "$threads" -q >"$work/serve.out" &
for _ in $(seq 100); do grep -q 'http://' "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
url=$(grep -o 'http://[0-9.:]*' "$work/serve.out")
t2=$(date +%s.%N)
"$famq" regenerate "${common[@]}" --backend "openai:$url" --out "$work/serve.jsonl"
t3=$(date +%s.%N)
/usr/bin/python3 - "$(count "$work/engine.jsonl")" "$(count "$work/serve.jsonl")" "$s0" "$t0" "$t1" "$t2" "$t3" "$R" "$n" "$threads" <<'PY'
import os, sys
te, ts = int(sys.argv[1]), int(sys.argv[2])
s0, t0, t1, t2, t3 = map(float, sys.argv[3:8])
one, e, s = te / (t0 - s0), te / (t1 - t0), ts / (t3 - t2)
print(f"| backend | generated tokens | wall s | tokens/s | ratio |")
print(f"|---|---|---|---|---|")
print(f"| in-process, one candidate at a time | {te} | {t0 - s0:.1f} | {one:.0f} | 1.00x |")
print(f"| in-process, batched (16 slots, groups in flight) | {te} | {t1 - t0:.1f} | {e:.0f} | {e / one:.2f}x |")
print(f"| famq serve (HTTP, loopback, 4 requests in flight) | {ts} | {t3 - t2:.1f} | {s:.0f} | {s / one:.2f}x |")
print(f"\n({os.path.basename(sys.argv[8].rstrip('/'))}, {sys.argv[9]} originals, G = 4, <= 128 new tokens, {sys.argv[10]} threads)")
PY
