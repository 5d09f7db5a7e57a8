#!/usr/bin/env bash
# Copies the family's held-out splits from a built corpus into models/eval/
# (committed) and writes the eval suites that `famq eval --suite NAME` reads.
#
#   /usr/bin/python3 scripts/family/build_corpus.py --out build/family/corpus
#   bash scripts/family/export_eval_data.sh [build/family/corpus]
#
# Suites: default (test splits, everything), smoke (test splits, 2 windows per
# domain and 35 reasoning problems: CI), valid (validation splits: tuning).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
corpus=${1:-$repo/build/family/corpus}
out=$repo/models/eval
domains=(bible dictionary computing fortunes)
mkdir -p "$out/test" "$out/valid"
for split in test valid; do
  for d in "${domains[@]}" reasoning; do
    cp "$corpus/$d/$split.jsonl" "$out/$split/$d.jsonl"
  done
done
suite() { # name split extra-json
  local name=$1 split=$2 extra=$3 text="" d
  for d in "${domains[@]}"; do
    text+="${text:+, }{\"domain\": \"$d\", \"file\": \"$split/$d.jsonl\"}"
  done
  printf '{"name": "%s", "ctx": 256, "max_new_tokens": 320, %s\n "text": [%s],\n "reasoning": {"file": "%s/reasoning.jsonl"%s}}\n' \
    "$name" "${extra%%|*}" "$text" "$split" "${extra#*|}" >"$out/$name.json"
}
suite default test '"max_windows": 0,|'
suite smoke test '"max_windows": 2,|, "limit": 35'
suite valid valid '"max_windows": 0,|'
/usr/bin/python3 -c 'import json,sys; [json.load(open(f)) for f in sys.argv[1:]]' "$out"/*.json
echo "export_eval_data: wrote $out ($(du -sh "$out" | cut -f1))"
