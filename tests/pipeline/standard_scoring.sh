#!/usr/bin/env bash
# Issue 19: scoring through the standard APIs of servers famq does not
# control. `famq serve --api standard` (only what llama-server offers: no
# echo, no token_ids, no pool_from) stands in for llama-server; `famq serve`
# (full) for the exact paths.
#   - bundle through the standard server at temperature 1 / top-p 1: ids from
#     logprobs.content.id, fidelity from the sampled tokens' logprobs,
#     consistency from its own pooling of the texts; the provenance names both
#     paths, and the sampled-logprob fidelity equals the exact (echo) one for
#     candidates without a stop token (the same quantity, computed twice)
#   - at temperature 0.8: fidelity falls back to the in-process expert, with
#     the reason recorded; consistency still from the server
#   - --embed-backend: the pooled states from a second (full) server, pool_from
#   - a resumed select continues byte-identically; one with other paths is refused
#   - a server that is down: a clear error, no fallback
#
#   tests/pipeline/standard_scoring.sh FAMQ MODEL_DIR
set -euo pipefail
famq=${1:?usage: $0 FAMQ MODEL_DIR}
model=${2:?usage: $0 FAMQ MODEL_DIR}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
py=/usr/bin/python3
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "standard_scoring: FAIL: $*" >&2; exit 1; }
ok() { echo "standard_scoring: ok: $*"; }

start_server() {  # NAME ARGS...: starts famq serve, sets $url
  local name=$1; shift
  "$famq" serve --model "$model" --port 0 --threads 2 -q "$@" >"$work/$name.out" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do grep -q "http://" "$work/$name.out" 2>/dev/null && break; sleep 0.1; done
  url=$(grep -o 'http://[0-9.:]*' "$work/$name.out") || fail "famq serve $* did not start"
}
start_server std --api standard; std=$url
start_server full; full=$url

head -n 4 "$repo/models/calib/mixture.jsonl" >"$work/calib.jsonl"
args=(--target "$model" --self --template base --calib "$work/calib.jsonl" -G 3 --max-new-tokens 12
      --min-new-tokens 1 --seed 3 --allow-unsigned --threads 2 --retries 0)

# 1. Temperature 1, top-p 1: every score through the standard server.
"$famq" bundle "${args[@]}" --temperature 1 --top-p 1 --backend "openai:$std" --out "$work/raw.famqb" \
  >"$work/raw.log" 2>&1 || { cat "$work/raw.log" >&2; fail "bundle through the standard server"; }
"$famq" inspect "$work/raw.famqb" --json --no-tokens >"$work/raw.json"
# The exact scores of the same candidates, through the full server.
"$famq" select --in "$work/raw.famqb.work/regenerate.jsonl" --out "$work/exact.jsonl" --score-backend "openai:$full" \
  --min-new-tokens 1 --threads 2 --retries 0 -q || fail "exact select"
$py - "$work/raw.json" "$work/raw.famqb.work" "$work/exact.jsonl" "$std" <<'PY'
import json, sys
b = json.load(open(sys.argv[1]))
p = b["provenance"]["scoring_backend"]
want = f"openai:{sys.argv[4]} (fidelity: sampled_logprobs reported by the regenerator; consistency: embeddings)"
assert p == want, p
lines = lambda f: [json.loads(l) for l in open(f)]
regen = lines(sys.argv[2] + "/regenerate.jsonl")
sel = lines(sys.argv[2] + "/select.jsonl")
exact = lines(sys.argv[3])
assert sel[0]["scoring_paths"] == {"fidelity": "sampled_logprobs", "consistency": "embeddings"}, sel[0]
assert exact[0]["scoring_paths"] == {"fidelity": "echo", "consistency": "pool_from"}, exact[0]
n = unfinished = negative = 0
for g, s, e in zip(regen[1:], sel[1:], exact[1:]):
    for c, cs, ce in zip(g["candidates"], s["candidates"], e["candidates"]):
        assert c["ids_from"] == "logprobs.content.id", c
        assert len(c["logprobs"]) == len(c["ids"]) - (1 if c["finished"] else 0), c
        n += 1
        if not c["finished"]:  # no stop token: the same tokens scored both ways
            unfinished += 1
            assert abs(cs["scores"]["fidelity"] - ce["scores"]["fidelity"]) < 1e-4, (cs["scores"], ce["scores"])
            assert cs["scores"]["fidelity"] <= 0, cs["scores"]
            negative += cs["scores"]["fidelity"] < 0
        # the consistency of the standard path is another quantity: a cosine all the same
        assert -1.0001 <= cs["scores"]["consistency"] <= 1.0001, cs["scores"]
assert n == 12 and unfinished > 0 and negative > 0, (n, unfinished, negative)
print(f"standard_scoring: {n} candidates, {unfinished} without a stop token: sampled-logprob fidelity = echo fidelity")
PY
ok "temperature 1: ids, fidelity and consistency through the standard server; provenance names the paths"

# 2. Temperature 0.8: the sampled logprobs are refused, fidelity falls back (recorded).
"$famq" bundle "${args[@]}" --backend "openai:$std" --out "$work/t08.famqb" >"$work/t08.log" 2>&1 ||
  { cat "$work/t08.log" >&2; fail "bundle at temperature 0.8"; }
grep -q "fidelity falls back to the in-process expert" "$work/t08.log" || { cat "$work/t08.log" >&2; fail "no word of the fallback"; }
"$famq" inspect "$work/t08.famqb" --json --no-tokens >"$work/t08.json"
$py - "$work/t08.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))["provenance"]["scoring_backend"]
assert "(fidelity: engine (fallback: " in p and "has no /v1/completions with echo logprobs or prompt_logprobs" in p, p
assert "sampled with temperature 0.8" in p and "consistency: embeddings)" in p, p
PY
ok "temperature 0.8: fidelity on the in-process expert (reason recorded), consistency through the server"

# 3. --embed-backend: pooled states from another server (pool_from where it has it).
"$famq" select --in "$work/raw.famqb.work/regenerate.jsonl" --out "$work/emb.jsonl" --score-backend "openai:$std" \
  --embed-backend "openai:$full" --min-new-tokens 1 --threads 2 --retries 0 -q || fail "select with --embed-backend"
head -n 1 "$work/emb.jsonl" | $py -c '
import json, sys
h = json.loads(sys.stdin.read())
assert h["scoring_paths"] == {"fidelity": "sampled_logprobs", "consistency": "pool_from"}, h["scoring_paths"]
assert "consistency: pool_from from openai:" in h["scoring_backend"], h["scoring_backend"]'
ok "--embed-backend: consistency through the second server's pool_from"

# 4. Resume: the same command continues byte-identically; other paths are refused.
sel=$work/raw.famqb.work/select.jsonl
head -n 3 "$sel" >"$work/part.jsonl"
"$famq" select --in "$work/raw.famqb.work/regenerate.jsonl" --out "$work/part.jsonl" --score-backend "openai:$std" \
  --min-new-tokens 1 --threads 2 --retries 0 -q || fail "resumed select"
cmp "$sel" "$work/part.jsonl" || fail "a resumed select differs"
head -n 3 "$sel" >"$work/part2.jsonl"
if "$famq" select --in "$work/raw.famqb.work/regenerate.jsonl" --out "$work/part2.jsonl" --score-backend engine \
     --min-new-tokens 1 --threads 2 -q 2>"$work/part2.log"; then
  fail "a resume with other scoring paths was accepted"
fi
grep -q "was scored with fidelity sampled_logprobs and consistency embeddings" "$work/part2.log" ||
  { cat "$work/part2.log" >&2; fail "no clear error for other scoring paths"; }
ok "resume byte-identical; a resume with other paths refused"

# 5. A standard server that is down: an error, not a fallback.
kill "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true
if "$famq" select --in "$work/raw.famqb.work/regenerate.jsonl" --out "$work/down.jsonl" --score-backend "openai:$std" \
     --min-new-tokens 1 --threads 2 --retries 0 -q 2>"$work/down.log"; then
  fail "select against a server that is down succeeded"
fi
grep -q "cannot reach the server" "$work/down.log" || { cat "$work/down.log" >&2; fail "no clear error (down)"; }
ok "a server that is down: a clear error"
