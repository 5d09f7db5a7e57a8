#!/usr/bin/env bash
# The host stage end to end on the family (issue 4's acceptance): famq-tiny-l
# regenerates for famq-tiny-s from 32 original samples with G = 4.
#   - the signed bundle verifies; inspect shows chain-of-thought samples grown
#     from reasoning originals; every sample carries tokens/weight/group/score/kind
#   - a rerun gives the byte-identical bundle
#   - the same run through `famq serve` (--backend openai:URL, scoring through
#     the server too) gives identical samples, scores and weights (only the
#     provenance differs)
#   - a chat-only server (`famq serve --api chat-only`): regeneration through
#     chat completions, scoring falls back to the in-process expert, and the
#     provenance says both
#   - SIGKILL at random points, then the same command: the byte-identical bundle
#   - refusals: flipped bytes, wrong key, unsigned, foreign family, empty and
#     bad calibration files, a server that is down
#   - every ablation switch produces a bundle that verifies and records itself
#
#   tests/pipeline/host_stage.sh FAMQ [KILL_SEED]
set -euo pipefail
famq=${1:?usage: $0 FAMQ [KILL_SEED]}
kill_seed=${2:-${FAMQ_KILL_SEED:-$(date +%s)}}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
py=/usr/bin/python3
S=${FAMQ_TEST_TARGET:-$repo/models/famq-tiny-s}
L=${FAMQ_TEST_REGENERATOR:-$repo/models/famq-tiny-l}
work=$(mktemp -d)
serve_pid=
cleanup() {
  [ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "host_stage: FAIL: $*" >&2; exit 1; }
ok() { echo "host_stage: ok: $*"; }

head -n 32 "$repo/models/calib/mixture.jsonl" >"$work/calib.jsonl"
"$famq" keygen --out "$work/key.pem" --pub "$work/pub.pem" >/dev/null
"$famq" keygen --out "$work/other.pem" --pub "$work/other.pub.pem" >/dev/null
base=(--target "$S" --regenerator "$L" -G 4 --max-new-tokens 128 --seed 1 --sign "$work/key.pem" --threads 2)
args=("${base[@]}" --calib "$work/calib.jsonl")

t0=$(date +%s.%N)
"$famq" bundle "${args[@]}" --out "$work/a.famqb" --progress json 2>"$work/a.progress"
t1=$(date +%s.%N)
grep -q '"stage":"regenerate"' "$work/a.progress" || fail "no JSON progress on stderr"
"$famq" verify "$work/a.famqb" --trust "$work/pub.pem" || fail "the bundle does not verify"
ok "bundle in $($py -c "print(f'{$t1-$t0:.1f}')") s, verified"

"$famq" inspect "$work/a.famqb" --trust "$work/pub.pem" --json >"$work/a.json"
$py - "$work/a.json" "$work/calib.jsonl" "$(basename "$S")" "$(basename "$L")" <<'PY'
import json, sys
b = json.load(open(sys.argv[1]))
calib = [json.loads(l) for l in open(sys.argv[2])]
target, regenerator = sys.argv[3], sys.argv[4]
s = b["samples"]
assert b["counts"]["originals"] == 32 and b["counts"]["candidates"] == 128, b["counts"]
assert b["recipe"]["group_size"] == 4 and b["family"]["target"]["name"] == target, b["family"]
assert b["family"]["regenerator"]["name"] == regenerator, b["family"]
for x in s:
    for k in ("tokens", "weight", "group", "score", "kind", "token_mask"):
        assert k in x, k
    assert len(x["tokens"]) == len(x["token_mask"]) <= b["recipe"]["seq_len"]
    assert x["token_mask"][0] == 0
w = sum(x["weight"] for x in s)
assert abs(w - 1) < 1e-4, w
reasoning = {i for i, c in enumerate(calib) if c.get("domain") == "reasoning"}
regen = [x for x in s if x["kind"] == "regenerated"]
cot = [x for x in regen if x["group"] in reasoning and ("The answer is" in x["text"] or "digit by digit" in x["text"])]
print(f"host_stage: {len(regen)} regenerated samples; {len(cot)} of the {len(reasoning)} reasoning originals "
      f"grew chain-of-thought samples, e.g.:\n  " + (cot[0]["text"][:200].replace("\n", "\n  ") if cot else "-"))
assert len(cot) >= max(1, len(reasoning) // 4), "too few chain-of-thought samples from reasoning originals"
PY
ok "inspect: 32 groups, weights sum to 1, chain-of-thought samples from reasoning originals"

"$famq" bundle "${args[@]}" --out "$work/b.famqb" -q
cmp "$work/a.famqb" "$work/b.famqb" || fail "a rerun gave another bundle"
ok "rerun byte-identical"

# The same through famq serve.
"$famq" serve --model "$L" --port 0 --threads 2 -q >"$work/serve.out" &
serve_pid=$!
for _ in $(seq 100); do grep -q "http://" "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
url=$(grep -o 'http://[0-9.:]*' "$work/serve.out") || fail "famq serve did not start"
"$famq" bundle "${args[@]}" --out "$work/h.famqb" -q --backend "openai:$url" --max-inflight 3
"$famq" inspect "$work/h.famqb" --trust "$work/pub.pem" --json >"$work/h.json"
$py - "$work/a.json" "$work/h.json" <<'PY'
import json, sys
a, h = (json.load(open(p)) for p in sys.argv[1:3])
assert h["provenance"]["backend"].startswith("openai:"), h["provenance"]
assert h["provenance"]["scoring_backend"].startswith("openai:"), h["provenance"]
assert a["provenance"]["scoring_backend"] == "engine", a["provenance"]
for j in (a, h):
    del j["provenance"], j["verification"]
assert a == h, "samples, scores or weights differ between the engine and famq serve"
PY
kill "$serve_pid"; wait "$serve_pid" 2>/dev/null || true; serve_pid=
ok "famq serve: identical samples, scores and weights, scored through the server (provenance: openai)"

# A chat-only server (no /v1/completions, no n, no logprobs): regeneration
# through chat completions, scoring on the in-process expert.
"$famq" serve --model "$L" --port 0 --threads 2 -q --api chat-only >"$work/chat.out" &
serve_pid=$!
for _ in $(seq 100); do grep -q "http://" "$work/chat.out" 2>/dev/null && break; sleep 0.1; done
url=$(grep -o 'http://[0-9.:]*' "$work/chat.out") || fail "famq serve --api chat-only did not start"
"$famq" bundle --target "$S" --regenerator "$L" -G 4 --max-new-tokens 24 --min-new-tokens 1 --seed 1 \
  --sign "$work/key.pem" --threads 2 --calib "$work/calib.jsonl" --max-samples 4 --out "$work/c.famqb" \
  --backend "openai:$url" --progress json 2>"$work/c.err" ||
  { cat "$work/c.err" >&2; fail "bundle through a chat-only server"; }
kill "$serve_pid"; wait "$serve_pid" 2>/dev/null || true; serve_pid=
"$famq" verify "$work/c.famqb" --trust "$work/pub.pem" >/dev/null || fail "the chat-only bundle does not verify"
chat_err=$(cat "$work/c.err")
grep -q "regenerating through /v1/chat/completions" <<<"$chat_err" || fail "no word of chat completions on stderr"
grep -q "scoring falls back to the in-process expert" <<<"$chat_err" || fail "no word of the scoring fallback on stderr"
"$famq" inspect "$work/c.famqb" --trust "$work/pub.pem" --json --no-tokens >"$work/c.json"
$py - "$work/c.json" <<'PY'
import json, sys
b = json.load(open(sys.argv[1]))
p = b["provenance"]
assert p["backend"].startswith("openai-chat:"), p
assert p["scoring_backend"].startswith("engine (fallback"), p
assert b["counts"]["originals"] == 4 and b["counts"]["candidates"] == 16, b["counts"]
assert any(x["kind"] == "regenerated" for x in b["samples"]), "no regenerated sample"
PY
ok "chat-only server: regenerated through chat completions, scored in-process (fallback recorded)"

# SIGKILL at random points, then resume.
RANDOM=$kill_seed
total=$($py -c "print(int(($t1-$t0)*1000))")
for k in 1 2 3; do
  ms=$(( (RANDOM * 32768 + RANDOM) % (total > 200 ? total : 200) ))
  "$famq" bundle "${args[@]}" --out "$work/k.famqb" -q &
  pid=$!
  sleep "$($py -c "print($ms/1000)")"
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  groups=$(($(wc -l <"$work/k.famqb.work/regenerate.jsonl" 2>/dev/null || echo 1) - 1))
  echo "host_stage: kill $k at ${ms} ms (regenerate had $groups complete groups)"
done
"$famq" bundle "${args[@]}" --out "$work/k.famqb" -q
cmp "$work/a.famqb" "$work/k.famqb" || fail "the resumed bundle differs (kill seed $kill_seed)"
ok "killed 3 times at random points (seed $kill_seed), resumed: byte-identical"

# Refusals.
cp "$work/a.famqb" "$work/t.famqb"
size=$(stat -c %s "$work/t.famqb")
for pos in 0 5 $((size / 3)) $((size / 2)) $((size - 1)); do
  cp "$work/a.famqb" "$work/t.famqb"
  $py -c "import sys; p,i=sys.argv[1],int(sys.argv[2]); b=bytearray(open(p,'rb').read()); b[i]^=0x20; open(p,'wb').write(b)" "$work/t.famqb" "$pos"
  if msg=$("$famq" verify "$work/t.famqb" --trust "$work/pub.pem" 2>&1); then fail "byte $pos flipped went unnoticed"; fi
  echo "host_stage: byte $pos flipped -> ${msg#famq: }"
done
head -c $((size / 2)) "$work/a.famqb" >"$work/cut.famqb"
! "$famq" verify "$work/cut.famqb" --trust "$work/pub.pem" 2>/dev/null || fail "a truncated bundle verified"
! "$famq" verify "$work/a.famqb" --trust "$work/other.pub.pem" 2>/dev/null || fail "the wrong key verified"
"$famq" pack --in "$work/a.famqb.work/select.jsonl" --out "$work/u.famqb" --allow-unsigned -q
! "$famq" verify "$work/u.famqb" --trust "$work/pub.pem" 2>/dev/null || fail "an unsigned bundle verified"
"$famq" verify "$work/u.famqb" --allow-unsigned >/dev/null || fail "--allow-unsigned refused an unsigned bundle"
# One regeneration serves every member: pack --target relabels for another
# member of the family, and refuses one with another tokenizer.
"$famq" pack --in "$work/a.famqb.work/select.jsonl" --target "$repo/models/famq-tiny-m" --sign "$work/key.pem" \
  --out "$work/m.famqb" -q
# (the output goes through a variable: grep -q on a pipe would SIGPIPE inspect under pipefail)
inspect_m=$("$famq" inspect "$work/m.famqb")
grep -q "target .*famq-tiny-m" <<<"$inspect_m" || fail "pack --target did not relabel the bundle"
cmp <("$famq" inspect "$work/a.famqb" --json | $py -c "import json,sys; print(json.load(sys.stdin)['samples'])") \
  <("$famq" inspect "$work/m.famqb" --json | $py -c "import json,sys; print(json.load(sys.stdin)['samples'])") ||
  fail "relabelling changed the samples"
msg=$("$famq" pack --in "$work/a.famqb.work/select.jsonl" --target "$repo/tests/data/tiny-random-qwen3" \
  --sign "$work/key.pem" --out "$work/x.famqb" -q 2>&1) && fail "pack --target accepted a foreign target"
echo "$msg" | grep -q "another tokenizer" || fail "foreign pack target: $msg"
msg=$("$famq" bundle --target "$S" --regenerator "$repo/tests/data/tiny-random-qwen3" --calib "$work/calib.jsonl" \
  --out "$work/f.famqb" --sign "$work/key.pem" -q 2>&1) && fail "a foreign regenerator was accepted"
echo "$msg" | grep -q "not of the target's family" || fail "foreign family: $msg"
: >"$work/empty.jsonl"
! "$famq" bundle "${base[@]}" --calib "$work/empty.jsonl" --out "$work/e.famqb" -q 2>/dev/null || fail "empty calibration accepted"
printf '{"text": "fine"}\n{"text": \n' >"$work/bad.jsonl"
msg=$("$famq" bundle "${base[@]}" --calib "$work/bad.jsonl" --out "$work/e.famqb" -q 2>&1) && fail "bad JSONL accepted"
echo "$msg" | grep -q "bad.jsonl:2" || fail "bad JSONL: $msg"
msg=$("$famq" bundle "${args[@]}" --out "$work/d.famqb" -q --backend openai:http://127.0.0.1:1 --retries 0 2>&1) &&
  fail "a server that is down was accepted"
echo "$msg" | grep -q "cannot reach" || fail "server down: $msg"
ok "refused: flipped bytes, truncation, wrong key, unsigned, foreign family (bundle and pack --target), empty/bad calibration, server down"

# Ablations (8 originals each).
for abl in --self --no-cot --no-compete --no-renorm --originals-only; do
  "$famq" bundle "${args[@]}" --max-samples 8 --out "$work/abl$abl.famqb" -q $abl
  "$famq" inspect "$work/abl$abl.famqb" --trust "$work/pub.pem" --json --no-tokens >"$work/abl.json"
  $py - "$work/abl.json" "$abl" <<'PY'
import json, sys
b, abl = json.load(open(sys.argv[1])), sys.argv[2]
key = {"--self": "self", "--no-cot": "no_cot", "--no-compete": "no_compete", "--no-renorm": "no_renorm",
       "--originals-only": "originals_only"}[abl]
assert b["recipe"]["ablations"][key] is True, (abl, b["recipe"])
kinds = {x["kind"] for x in b["samples"]}
assert kinds == {"original"} if key == "originals_only" else "regenerated" in kinds, kinds
assert abs(sum(x["weight"] for x in b["samples"]) - 1) < 1e-4
PY
done
ok "ablations --self --no-cot --no-compete --no-renorm --originals-only"
echo "host_stage: all checks passed"
