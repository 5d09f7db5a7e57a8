#!/usr/bin/env bash
# famq-rt export --gguf, checked by llama.cpp itself (docs/GGUF.md).
#
#   tests/gguf/run_gguf_test.sh FAMQ_RT GGUF_RENDER_CHAT
#
# llama.cpp is npm node-llama-cpp (pinned by package-lock.json beside this
# script) with its prebuilt CPU binaries only: installed with `npm ci
# --omit=optional` plus the one binary package the lock names as a direct
# dependency, NODE_LLAMA_CPP_SKIP_DOWNLOAD=true, loaded with build: "never" and
# gpu off; nothing is downloaded or built at run time. Installed once into
# ${FAMQ_CACHE_DIR:-$HOME/.cache/famq}/npm/gguf-oracle.
#
# On famq-tiny-s finalized from the committed signed bundle with GPTQ W4 g32,
# AWQ W4 g32, GPTQ W4 per-channel, RTN W8 g32 --symmetric and RTN W4 g32
# --symmetric --scale-dtype f16 --head-bits 6 (a Q8_0 token_embd holding the
# 6-bit codes), each exported:
#   - tokenization of every NFC string of tests/data/tokenizer_corpus.jsonl
#     identical to famq-rt tokenize (the others are counted and reported),
#     except strings holding U+2028/U+2029, where llama.cpp's own split differs
#     from the Hugging Face reference (each such case is printed);
#   - 32 greedy tokens on 5 prompts identical to famq-rt generate up to
#     near-ties: a flip whose log-prob gap in llama.cpp is below the largest
#     log-prob difference measured on that model is reported (where, by how
#     much) and ends that prompt's comparison; any other flip fails;
#   - next-token log-probabilities over 8 windows of 256 tokens (2,040
#     positions) of the bible test split: mean |diff| <= 0.01 nats against
#     famq-rt logits, perplexity within 0.5 % of famq-rt ppl --qmodel;
#   - conversations.json rendered by llama.cpp's Jinja engine from the GGUF's
#     tokenizer.chat_template equal to famq's rendering;
# plus tiny-random Llama (q/k permutation, untied F16 head) and Qwen2 (q/k/v
# biases) RTN W4 g32 --symmetric: log-probabilities on 2 windows of 128, gated
# relative to the mean NLL (random weights: ppl ~1e11; see oracle.mjs);
# and refusals (W8 with zero points, static W8A8, truncated and foreign
# inputs) that leave no output file.
# Exit 0: all within the gates; 1: a mismatch or an error; 77 (ctest SKIP):
# npm is not installed or its registry cannot be reached.
set -euo pipefail

readonly VERSION="3.21.1"
readonly HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly REPO="$(cd "$HERE/../.." && pwd)"
readonly PREFIX="${FAMQ_CACHE_DIR:-$HOME/.cache/famq}/npm/gguf-oracle"

if [[ $# -ne 2 ]]; then
  echo "usage: $0 FAMQ_RT GGUF_RENDER_CHAT" >&2
  exit 2
fi
readonly RT="$1" RENDER="$2"

if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
  echo "SKIP: npm registry unreachable (npm/node not installed)"
  exit 77
fi
readonly NETWORK_ERRORS='ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|EHOSTUNREACH|ERR_SOCKET[A-Z_]*|socket hang up|network[^.]*'

installed_version() {
  node -e 'try { console.log(require(process.argv[1]).version) } catch (e) {}' \
    "$PREFIX/node_modules/node-llama-cpp/package.json" 2>/dev/null
}
if [[ "$(installed_version)" != "$VERSION" ]] || ! cmp -s "$HERE/package-lock.json" "$PREFIX/package-lock.json"; then
  mkdir -p "$PREFIX"
  cp "$HERE/package.json" "$HERE/package-lock.json" "$PREFIX/"
  log="$PREFIX/npm-install.log"
  echo "installing node-llama-cpp@$VERSION (prebuilt CPU binaries) into $PREFIX"
  if ! NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm ci --omit=optional --ignore-scripts --no-audit --no-fund \
      --fetch-retries=1 --fetch-timeout=60000 --prefix "$PREFIX" >"$log" 2>&1; then
    if reason="$(grep -m1 -oE "$NETWORK_ERRORS" "$log")"; then
      echo "SKIP: npm registry unreachable ($reason)"
      exit 77
    fi
    echo "FAIL: npm ci node-llama-cpp@$VERSION failed:" >&2
    tail -20 "$log" >&2
    exit 1
  fi
  if [[ "$(installed_version)" != "$VERSION" ]]; then
    echo "FAIL: $PREFIX holds node-llama-cpp '$(installed_version)', expected $VERSION" >&2
    exit 1
  fi
fi
cp "$HERE/oracle.mjs" "$PREFIX/oracle.mjs"  # resolves node-llama-cpp from $PREFIX/node_modules
oracle() { NODE_LLAMA_CPP_SKIP_DOWNLOAD=true node "$PREFIX/oracle.mjs" "$@"; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
py=/usr/bin/python3
fail() { echo "FAIL: $*" >&2; exit 1; }
S=$REPO/models/famq-tiny-s
fin=("$RT" finalize --bundle "$REPO/tests/data/bundles/famq-tiny-s.famqb" --trust "$REPO/tests/data/bundles/trust.pub.pem"
     --quiet --threads 2)

# Held-out text: the bible test split until it holds > 8 windows of 256 tokens.
$py -c "
import json,sys
print('\n'.join(json.loads(l)['text'] for l in open(sys.argv[1]).readlines()[:60]))" \
  "$REPO/models/eval/test/bible.jsonl" >"$work/heldout.txt"
$py -c "import json,sys; print(json.dumps(open(sys.argv[1], encoding='utf-8').read()))" "$work/heldout.txt" \
  >"$work/heldout.jsonl"

# windows TAG MODEL_DIR FAMQ CTX N: the first N windows of CTX tokens of the
# held-out text (famq's tokenization), famq-rt's logits and ppl on them.
windows() {
  local tag=$1 dir=$2 q=$3 ctx=$4 n=$5
  "$RT" tokenize --model "$dir" --file "$work/heldout.jsonl" >"$work/$tag.ids.json"
  $py - "$work/$tag.ids.json" "$ctx" "$n" >"$work/$tag.windows.json" <<'PY'
import json, sys
ids, ctx, n = json.load(open(sys.argv[1])), int(sys.argv[2]), int(sys.argv[3])
assert len(ids) >= ctx * n + 1, f"held-out text too short: {len(ids)} tokens"
print(json.dumps({"windows": [ids[k * ctx:(k + 1) * ctx] for k in range(n)]}))
PY
  "$RT" ppl --qmodel "$q" --text "$work/heldout.txt" --ctx "$ctx" --max-windows "$n" --threads 2 --json \
    >"$work/$tag.ppl.json"
  for ((k = 0; k < n; ++k)); do
    "$RT" logits --qmodel "$q" --threads 2 --out "$work/$tag.logits.$k.npy" --prompt-ids \
      "$($py -c "import json,sys; print(json.dumps(json.load(open(sys.argv[1]))['windows'][$k]))" "$work/$tag.windows.json")"
  done
}

# --- refusals: nothing written ---
"$RT" finalize --model "$S" --calib-text "$work/heldout.txt" --method rtn --wbits 8 --group 32 --quiet \
  --out "$work/w8asym.famq" >/dev/null
expect_refusal() {  # expect_refusal PATTERN QMODEL
  if "$RT" export --qmodel "$2" --out "$work/refused.gguf" >/dev/null 2>"$work/err"; then fail "exported $2"; fi
  grep -q -- "$1" "$work/err" || { cat "$work/err" >&2; fail "no '$1' in the refusal of $2"; }
  [ ! -e "$work/refused.gguf" ] || fail "a refused export of $2 wrote its output"
  if ls "$work" | grep -q 'refused.gguf.tmp'; then fail "a refused export left a temporary file"; fi
}
expect_refusal "W8 with zero points" "$work/w8asym.famq"
head -c 100000 "$work/w8asym.famq" >"$work/cut.famq"
expect_refusal "cut.famq" "$work/cut.famq"
expect_refusal "famq-tiny-s.famqb" "$REPO/tests/data/bundles/famq-tiny-s.famqb"
"${fin[@]}" --model "$S" --method rtn --wbits 8 --abits 8 --group channel --out "$work/w8a8.famq" >/dev/null
expect_refusal "static W8A8" "$work/w8a8.famq"
echo "ok: refusals (W8 with zero points, static W8A8, truncated, foreign) write nothing"

# --- famq-tiny-s, five schemes ---
cat >"$work/prompts.txt" <<'EOF'
In the beginning God created
And the LORD said unto Moses,
The quick brown fox
Q: What is the capital of France?
Once upon a time, there was a
EOF
for scheme in "gptq --wbits 4 --group 32" "awq --wbits 4 --group 32" "gptq --wbits 4 --group channel" \
              "rtn --wbits 8 --group 32 --symmetric" \
              "rtn --wbits 4 --group 32 --symmetric --scale-dtype f16 --head-bits 6"; do
  read -r -a args <<<"$scheme"
  tag=$(echo "$scheme" | tr -c 'a-z0-9\n' '_')
  "${fin[@]}" --model "$S" --method "${args[@]}" --out "$work/$tag.famq" >/dev/null
  "$RT" export --qmodel "$work/$tag.famq" --out "$work/$tag.gguf"
  windows "$tag" "$S" "$work/$tag.famq" 256 8
  : >"$work/$tag.greedy.jsonl"
  while IFS= read -r p; do
    "$RT" generate --qmodel "$work/$tag.famq" --prompt "$p" -n 32 --ignore-eos --json -q --threads 2 \
      >>"$work/$tag.greedy.jsonl"
  done <"$work/prompts.txt"
  oracle model "$work/$tag.gguf" "$work" "$tag" 2000
done

# --- tokenizer and chat template, on one of them ---
"$RT" tokenize --model "$S" --file "$REPO/tests/data/tokenizer_corpus.jsonl" >"$work/corpus_ids.jsonl"
oracle tokenize "$work/$tag.gguf" "$REPO/tests/data/tokenizer_corpus.jsonl" "$work/corpus_ids.jsonl"
"$RENDER" "$work/$tag.famq" "$HERE/conversations.json" >"$work/chat.jsonl"
oracle chat "$work/$tag.gguf" "$HERE/conversations.json" "$work/chat.jsonl"

# --- Llama (rotary q/k permutation, untied F16 head) and Qwen2 (q/k/v biases) ---
for arch in llama qwen2; do
  dir=$REPO/tests/data/tiny-random-$arch
  "$RT" finalize --model "$dir" --calib-text "$work/heldout.txt" --method rtn --wbits 4 --group 32 --symmetric --quiet \
    --out "$work/$arch.famq" >/dev/null
  "$RT" export --qmodel "$work/$arch.famq" --out "$work/$arch.gguf"
  windows "$arch" "$dir" "$work/$arch.famq" 128 2
  oracle logits "$work/$arch.gguf" "$work" "$arch" 254
done
echo "ok: llama.cpp agrees with famq-rt on every exported model"
