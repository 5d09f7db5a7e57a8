#!/usr/bin/env bash
# CI smoke run of the FAQ experiment (scripts/experiment/smoke.conf: one
# target, one method, one seed, original vs FAQ): the pipeline runs end to
# end and the report is complete. It checks the pipeline, not the numbers.
#   tests/experiment/smoke.sh FAMQ FAMQ_RT
set -euo pipefail
famq=${1:?usage: $0 FAMQ FAMQ_RT}
rt=${2:?usage: $0 FAMQ FAMQ_RT}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "experiment_smoke: FAIL: $*" >&2; exit 1; }

FAMQ_BIN=$famq FAMQ_RT_BIN=$rt FAMQ_EXPERIMENT_OUT=$work/out \
  bash "$repo/scripts/experiment/run.sh" "$repo/scripts/experiment/smoke.conf"
out=$work/out
for src in original faq; do
  "$famq" verify "$out/bundles/famq-tiny-s/mixture-s1-$src.famqb" --trust "$out/pub.pem" >/dev/null ||
    fail "the $src bundle does not verify"
done
/usr/bin/python3 - "$out" <<'PY'
import json, os, sys
out = sys.argv[1]
res = os.path.join(out, "results", "famq-tiny-s")
names = sorted(os.listdir(res))
assert names == ["fp.json", "mixture-s1-faq-gptq.json", "mixture-s1-original-gptq.json"], names
for n in names:
    r = json.load(open(os.path.join(res, n)))
    assert set(r["eval"]["text"]) == {"bible", "dictionary", "computing", "fortunes"}, r["eval"]["text"].keys()
    assert r["eval"]["reasoning"]["total"] > 0
    if n != "fp.json":
        assert r["finalize"]["method"] == "gptq" and r["finalize"]["wbits"] == 4, r["finalize"]
        assert r["finalize"]["calib_tokens"] > 0
doc = json.load(open(os.path.join(out, "report", "results", "results.json")))
assert len(doc["runs"]) == 2 and {r["source"] for r in doc["runs"]} == {"original", "faq"}
for r in doc["runs"]:
    assert all(k in r["loss"] for k in ("ppl", "top1", "reasoning")), r["loss"]
assert set(doc["coverage"]["sets"]) == {"mixture-original", "mixture-faq"}, doc["coverage"]["sets"].keys()
for s in doc["coverage"]["sets"].values():
    for slot, v in s["coverage"].items():
        assert all(0.0 <= x <= 1.0 for x in v), (slot, v)
md = open(os.path.join(out, "report", "RESULTS.md")).read()
for want in ("GPTQ W4 g32", "| method | original | FAQ |", "coverage_by_layer.svg", "Reproduce"):
    assert want in md, want
for svg in ("loss_by_method_source.svg", "coverage_by_layer.svg"):
    assert open(os.path.join(out, "report", "results", svg)).read().lstrip().startswith("<?xml"), svg
print("experiment_smoke: report, results JSON, plots and coverage are complete")
PY
# Resumable: a rerun finds every result and redoes nothing.
FAMQ_BIN=$famq FAMQ_RT_BIN=$rt FAMQ_EXPERIMENT_OUT=$out \
  bash "$repo/scripts/experiment/run.sh" "$repo/scripts/experiment/smoke.conf" 2>"$work/rerun.log"
grep -q 'quantize 3/3 .*(done before)' "$work/rerun.log" || fail "a rerun did not resume"
echo "experiment_smoke: ok"
