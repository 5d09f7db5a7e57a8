#!/usr/bin/env bash
# Time to first token per turn of a long chat session (C API sessions through
# `famq-rt chat --stats`): the same-sized user message every turn until the
# conversation fills ~90 % of the context, RUNS times; prints the median per
# turn and the ratio to turn 1 (docs/BENCHMARKS.md, "Chat sessions").
#   scripts/bench-chat-ttft.sh [FAMQ_RT] [MODEL_DIR] [RUNS] [CTX] [THREADS] [KV_TYPE]
set -euo pipefail
famq_rt=${1:-build/host/runtime/tools/famq-rt/famq-rt}
model=${2:-models/famq-tiny-l}
runs=${3:-3}
ctx=${4:-2048}
threads=${5:-1}
kv_type=${6:-f16}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# ~60-token user messages (the number changes, the length does not); more
# turns than fit: the chat reports FAMQ_CONTEXT_FULL and the script stops there.
python3 - "$work/input.txt" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    # A warm-up turn (first-call set-up is not a turn's cost), then a new conversation.
    f.write("Warm up.\n/reset\n")
    for i in range(100):
        f.write("Note %02d: the river rose by %02d centimetres overnight, the bridge stayed open, the school "
                "closed early and the market moved to the hill. Summarize this note in one short sentence.\n"
                % (i, (i * 7) % 100))
PY
for r in $(seq 1 "$runs"); do
  "$famq_rt" chat --model "$model" --no-think -n 16 --ctx "$ctx" --threads "$threads" --kv-type "$kv_type" --stats \
    <"$work/input.txt" >/dev/null 2>"$work/run$r.jsonl" || true
done
python3 - "$ctx" "$work"/run*.jsonl <<'PY'
import json, statistics, sys
ctx = int(sys.argv[1])
runs = [[json.loads(l) for l in open(p) if l.startswith("{")][1:] for p in sys.argv[2:]]  # [0]: warm-up
n = min(len(r) for r in runs)
print("| turn | conversation (tokens) | % of context | prefilled | reused | TTFT median (ms) | / turn 1 |")
print("|---:|---:|---:|---:|---:|---:|---:|")
base = None
worst = 0.0
for i in range(n):
    t = runs[0][i]
    t["turn"] = i + 1
    ttft = statistics.median(r[i]["ttft_ms"] for r in runs)
    base = base or ttft
    before = t["prompt_tokens"]
    if before <= 0.9 * ctx and i > 0:
        worst = max(worst, ttft / base)
    print("| %d | %d | %.0f %% | %d | %d | %.2f | %.2f |" % (t["turn"], before, 100.0 * before / ctx,
          t["prefill_tokens"], t["reused_tokens"], ttft, ttft / base))
print()
print("turns: %d (runs: %d); worst TTFT ratio to turn 1 up to 90 %% of the context: %.2f" % (n, len(runs), worst))
PY
