#!/usr/bin/env bash
# How far the standard-API scores agree with the exact ones (issue 19,
# docs/HOST_STAGE.md "Agreement of the standard paths"): famq-tiny-l serves
# as regenerator and expert twice, `famq serve` (exact paths: echo,
# pool_from) and `famq serve --api standard` (what llama-server offers:
# sampled-token logprobs, its own pooling of texts). One regeneration through
# the standard server at temperature 1 / top-p 1 (the sampled-logprob path
# needs the raw distribution) of N committed calibration originals
# (mixture, drawn with SEED), then three selects of the same candidates:
#   exact    --score-backend full                           (echo, pool_from)
#   standard --score-backend standard                       (sampled_logprobs, embeddings)
#   mixed    --score-backend full --embed-backend standard  (echo, embeddings)
# and a table: Spearman rank correlation per group of the totals and of each
# term (mean and median over groups), the share of groups with the same
# winner, and with FAQ=1 the FAQ loss with each bundle (famq-rt finalize
# famq-tiny-s, GPTQ W4 g32, then `famq eval --suite smoke`: mean text NLL
# minus the fp32 model's).
#
#   scripts/standard-agreement.sh [N=32] [G=4] [SEED=1]
#   (env: FAQ=0 skips the finalize; MAX_NEW=192 new tokens per candidate; THREADS=2)
# Needs build/host's famq and famq-rt (cmake --build --preset host --target famq famq-rt).
set -euo pipefail
n=${1:-32} g=${2:-4} seed=${3:-1}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
famq=${FAMQ_BIN:-$repo/build/host/quantizer/famq}
rt=${FAMQ_RT_BIN:-$repo/build/host/runtime/tools/famq-rt/famq-rt}
models=$repo/models
threads=${THREADS:-2}
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
start_server() {  # NAME ARGS...: starts famq serve (its pid in pids, for the cleanup), sets $url
  local name=$1; shift
  "$famq" serve --model "$models/famq-tiny-l" --port 0 --threads "$threads" -q "$@" >"$work/$name.out" 2>&1 &
  pids+=($!)
  for _ in $(seq 200); do grep -q "http://" "$work/$name.out" 2>/dev/null && break; sleep 0.1; done
  url=$(grep -o 'http://[0-9.:]*' "$work/$name.out") || { echo "famq serve $* did not start" >&2; exit 1; }
}
start_server full; full=$url
start_server std --api standard; std=$url
common=(--threads "$threads" -q --max-inflight 4)
"$famq" regenerate --target "$models/famq-tiny-s" --regenerator "$models/famq-tiny-l" --calib-preset mixture \
  --models-dir "$models" --draw "$n" --draw-seed "$seed" -G "$g" --seed "$seed" --temperature 1 --top-p 1 \
  --max-new-tokens "${MAX_NEW:-192}" \
  --backend "openai:$std" --out "$work/regen.jsonl" "${common[@]}"
"$famq" select --in "$work/regen.jsonl" --out "$work/exact.jsonl" --score-backend "openai:$full" "${common[@]}"
"$famq" select --in "$work/regen.jsonl" --out "$work/standard.jsonl" --score-backend "openai:$std" "${common[@]}"
"$famq" select --in "$work/regen.jsonl" --out "$work/mixed.jsonl" --score-backend "openai:$full" \
  --embed-backend "openai:$std" "${common[@]}"

loss=()
if [ "${FAQ:-1}" = 1 ]; then
  "$famq" keygen --out "$work/key.pem" --pub "$work/pub.pem" >/dev/null
  nll() { "$famq" eval "$@" --suite smoke --eval-dir "$models/eval" --threads "$threads" --json -q |
          /usr/bin/python3 -c 'import json,sys; t=json.load(sys.stdin)["text"]; print(sum(v["nll"] for v in t.values())/len(t))'; }
  fp=$(nll --model "$models/famq-tiny-s")
  for v in exact standard mixed; do
    "$famq" pack --in "$work/$v.jsonl" --target "$models/famq-tiny-s" --sign "$work/key.pem" -L 128 -q \
      --out "$work/$v.famqb"
    "$rt" finalize --model "$models/famq-tiny-s" --bundle "$work/$v.famqb" --trust "$work/pub.pem" --method gptq \
      --wbits 4 --group 32 --threads "$threads" --quiet --out "$work/$v.famq" >/dev/null
    loss+=("$v=$(nll --qmodel "$work/$v.famq")")
  done
  loss+=("fp=$fp")
fi

/usr/bin/python3 - "$work" "$n" "$g" "$seed" "${loss[@]}" <<'PY'
import json, os, statistics, sys
work, n, g, seed = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
loss = dict(a.split("=") for a in sys.argv[5:])
def load(name):
    lines = [json.loads(l) for l in open(f"{work}/{name}.jsonl")]
    return lines[0], lines[1:]
def ranks(xs):
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    r = [0.0] * len(xs)
    i = 0
    while i < len(order):  # ties: mean rank
        j = i
        while j + 1 < len(order) and xs[order[j + 1]] == xs[order[i]]:
            j += 1
        for k in range(i, j + 1):
            r[order[k]] = (i + j) / 2
        i = j + 1
    return r
def spearman(a, b):
    ra, rb = ranks(a), ranks(b)
    ma, mb = statistics.fmean(ra), statistics.fmean(rb)
    num = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    den = (sum((x - ma) ** 2 for x in ra) * sum((y - mb) ** 2 for y in rb)) ** 0.5
    return None if den == 0 else num / den
eh, exact = load("exact")
print(f"exact: {eh['scoring_backend']}")
print(f"N = {n} originals (mixture, draw seed {seed}), G = {g}, regenerated at temperature 1, top-p 1, "
      f"max {os.environ.get('MAX_NEW', '192')} new tokens\n")
print("| scores | paths (fidelity, consistency) | Spearman total (mean / median) | fidelity | consistency | same winner (groups with one) |")
print("|---|---|---|---|---|---|")
for name in ("standard", "mixed"):
    h, groups = load(name)
    p = h["scoring_paths"]
    cols = {"total": [], "fidelity": [], "consistency": []}
    same = decided = 0
    for ge, gs in zip(exact, groups):
        decided += bool(ge["kept"] or gs["kept"])  # groups where either kept a candidate
        for term in cols:
            r = spearman([c["scores"][term] for c in ge["candidates"]], [c["scores"][term] for c in gs["candidates"]])
            if r is not None:
                cols[term].append(r)
        same += bool(ge["kept"] or gs["kept"]) and ge["kept"][:1] == gs["kept"][:1]
    fmt = lambda v: f"{statistics.fmean(v):.3f} / {statistics.median(v):.3f}" if v else "-"
    print(f"| {name} | {p['fidelity']}, {p['consistency']} | {fmt(cols['total'])} | {fmt(cols['fidelity'])} | "
          f"{fmt(cols['consistency'])} | {same}/{decided} ({100 * same / max(decided, 1):.0f} %) |")
if loss:
    fp = float(loss["fp"])
    print(f"\nFAQ loss (famq-tiny-s, GPTQ W4 g32, L = 128; smoke suite mean text NLL {fp:.4f} in fp32):")
    for name in ("exact", "standard", "mixed"):
        print(f"  {name:9s} NLL {float(loss[name]):.4f}  loss {float(loss[name]) - fp:+.4f}")
PY
