#!/usr/bin/env bash
# Issue 19: the API key of a server famq does not control. famq serve with
# FAMQ_API_KEY stands in for a vLLM/llama-server started with --api-key:
#   - `famq bundle` with FAMQ_BACKEND_API_KEY regenerates and scores through it
#     (the provenance says openai: for both: the key reached every route)
#   - without the key, and with a wrong one: a clear error naming --api-key
#     (and no silent fallback to the in-process expert)
#   - the key appears in none of the outputs: stage files, bundle, inspect,
#     stderr/stdout of every run (--api-key on the command line too)
#
#   tests/pipeline/backend_auth.sh FAMQ MODEL_DIR
set -euo pipefail
famq=${1:?usage: $0 FAMQ MODEL_DIR}
model=${2:?usage: $0 FAMQ MODEL_DIR}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
work=$(mktemp -d)
serve_pid=
cleanup() {
  [ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "backend_auth: FAIL: $*" >&2; exit 1; }
ok() { echo "backend_auth: ok: $*"; }

key="famq-test-key-$RANDOM$RANDOM-secret"
head -n 3 "$repo/models/calib/mixture.jsonl" >"$work/calib.jsonl"
FAMQ_API_KEY="$key" "$famq" serve --model "$model" --port 0 --threads 2 -q >"$work/serve.out" 2>&1 &
serve_pid=$!
for _ in $(seq 100); do grep -q "http://" "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
url=$(grep -o 'http://[0-9.:]*' "$work/serve.out") || fail "famq serve did not start"
args=(--target "$model" --self --template base --calib "$work/calib.jsonl" -G 2 --max-new-tokens 8 --seed 1
      --allow-unsigned --threads 2 --backend "openai:$url" --retries 0)

FAMQ_BACKEND_API_KEY="$key" "$famq" bundle "${args[@]}" --out "$work/env.famqb" >"$work/env.log" 2>&1 ||
  { cat "$work/env.log" >&2; fail "bundle with FAMQ_BACKEND_API_KEY failed"; }
"$famq" bundle "${args[@]}" --api-key "$key" --out "$work/arg.famqb" >"$work/arg.log" 2>&1 ||
  { cat "$work/arg.log" >&2; fail "bundle with --api-key failed"; }
"$famq" inspect "$work/env.famqb" --json >"$work/env.json" 2>&1
grep -q '"backend": *"openai:' "$work/env.json" || fail "regeneration did not go through the server"
grep -q '"scoring_backend": *"openai:' "$work/env.json" || fail "scoring did not go through the server"
cmp "$work/env.famqb" "$work/arg.famqb" || fail "--api-key and FAMQ_BACKEND_API_KEY gave different bundles"
ok "regenerated and scored through a server that wants a key (env and --api-key)"

if "$famq" bundle "${args[@]}" --out "$work/none.famqb" >"$work/none.log" 2>&1; then
  fail "a bundle without the key succeeded"
fi
grep -q "HTTP 401 (the server wants an API key: give --api-key KEY or set FAMQ_BACKEND_API_KEY)" "$work/none.log" ||
  { cat "$work/none.log" >&2; fail "no clear error without the key"; }
if "$famq" bundle "${args[@]}" --api-key "wrong-$key" --out "$work/wrong.famqb" >"$work/wrong.log" 2>&1; then
  fail "a bundle with a wrong key succeeded"
fi
grep -q "HTTP 401 (the server does not accept the API key famq sent)" "$work/wrong.log" ||
  { cat "$work/wrong.log" >&2; fail "no clear error with a wrong key"; }
# Scoring alone (select) with a wrong key: an error, not the in-process fallback.
if "$famq" select --in "$work/env.famqb.work/regenerate.jsonl" --out "$work/sel.jsonl" \
     --score-backend "openai:$url" --api-key "wrong-$key" --retries 0 >"$work/sel.log" 2>&1; then
  fail "select with a wrong key fell back instead of failing"
fi
grep -q "does not accept the API key" "$work/sel.log" || { cat "$work/sel.log" >&2; fail "no clear error from select"; }
ok "no key / a wrong key: clear errors (regeneration and scoring)"

if grep -rlF -e "$key" "$work"; then
  fail "the key was written to the files above"
fi
grep -q '"ids_from":"token_ids"' "$work/env.famqb.work/regenerate.jsonl" ||
  fail "the stage file does not record where the ids came from"
grep -q "candidates' token ids: 6 from token_ids" "$work/env.log" || fail "no summary of the ids' sources on stderr"
ok "the key is in no stage file, bundle, inspect output or log"
