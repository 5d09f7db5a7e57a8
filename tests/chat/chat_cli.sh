#!/usr/bin/env bash
# famq-rt chat with piped standard input: a conversation on famq-tiny-s, then
# checks (from --stats' JSON lines) that turns share the session's KV cache,
# that /reset and /system take effect, and that /quit ends the input.
#   chat_cli.sh FAMQ_RT MODEL_DIR
set -euo pipefail
famq_rt=$1
model=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

printf '%s\n' "What is 2 + 3?" "And 4 + 4?" "/reset" "What is 2 + 3?" "/system You are a pirate." \
  "What is 2 + 3?" "/quit" "This line comes after /quit." |
  "$famq_rt" chat --model "$model" --no-think -n 12 --ctx 512 --threads 1 --stats \
    >"$work/out.txt" 2>"$work/stats.jsonl"

python3 - "$work/stats.jsonl" "$work/out.txt" <<'PY'
import json, sys
lines = [l for l in open(sys.argv[1], encoding="utf-8") if l.startswith("{")]
turns = [json.loads(l) for l in lines]
out = open(sys.argv[2], encoding="utf-8", errors="replace").read()
def check(ok, what):
    if not ok:
        print("FAIL:", what)
        for t in turns: print(" ", t)
        sys.exit(1)
check(len(turns) == 4, "4 turns (the line after /quit is not read), got %d" % len(turns))
t1, t2, t3, t4 = turns
check(t1["messages"] == 2 and t1["reused_tokens"] == 0, "turn 1: a new conversation")
check(t2["messages"] == 4, "turn 2 continues the conversation")
check(t2["reused_tokens"] > t1["prompt_tokens"] // 2, "turn 2 reuses the cache")
# Qwen3's template drops the (empty) <think></think> of past replies, so the previous reply is
# prefilled again with the new message (docs/C_API.md): that much, and no more.
check(t2["prefill_tokens"] <= t2["prompt_tokens"] - t1["prompt_tokens"] + t1["generated_tokens"] + 4,
      "turn 2 prefills its own tokens and the re-rendered previous reply only")
check(t3["messages"] == 2 and t3["reused_tokens"] == 0, "/reset: a new conversation")
check(t3["prompt_tokens"] == t1["prompt_tokens"] and t3["reply"] == t1["reply"],
      "/reset: the same first turn gives the same greedy reply")
check(t4["messages"] == 3, "/system: system prompt + user + assistant")
check(t4["prompt_tokens"] > t1["prompt_tokens"] + 3, "/system: the system prompt is rendered")
for t in turns:
    check(t["reply"] in out, "the reply of turn %d is on stdout" % t["turn"])
    check(t["ttft_ms"] > 0 and t["kv_cache_bytes"] > 0, "stats are filled")
print("chat_cli: 4 turns, turn 2 reused %d of %d tokens; /reset and /system took effect" %
      (t2["reused_tokens"], t2["prompt_tokens"]))
PY

# No model: a clear error and a non-zero exit.
if echo hi | "$famq_rt" chat 2>"$work/err.txt"; then
  echo "FAIL: chat without a model succeeded"; exit 1
fi
grep -q -- "--model DIR or --qmodel" "$work/err.txt"
