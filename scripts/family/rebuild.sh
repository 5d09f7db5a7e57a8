#!/usr/bin/env bash
# Rebuilds famq's test family from nothing but Debian packages: corpus,
# tokenizer, famq-tiny-l, then famq-tiny-m and famq-tiny-s distilled from it
# (in parallel, one core each), the exports in models/, the model cards with
# their gates, and famq-tiny-s's golden test expectations.
#
#   bash scripts/family/rebuild.sh [--l-minutes 90] [--ms-minutes 30] [--work build/family]
#                                  [--models models] [--golden tests/data/famq-tiny-s.golden]
#                                  [--suite default] [--skip-deps]
#
# Wall time on the 2-core CI-class machine: about L + M/S minutes plus ~6 min
# (corpus 16 s, tokenizer 41 s, encoding 23 s, exports, evaluation and cards);
# the times of the committed family are in models/*/README.md. Training is
# resumable: rerun the same command after an interruption and each run
# continues from its checkpoint (a finished run is not retrained).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
l_min=90 ms_min=30 work=build/family models=models golden=tests/data/famq-tiny-s.golden suite=default skip_deps=0
while [ $# -gt 0 ]; do
  case $1 in
    --l-minutes) l_min=$2; shift 2 ;;
    --ms-minutes) ms_min=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --models) models=$2; shift 2 ;;
    --golden) golden=$2; shift 2 ;;
    --suite) suite=$2; shift 2 ;;
    --skip-deps) skip_deps=1; shift ;;
    -h|--help) sed -n 2,15p "$0"; exit 0 ;;
    *) echo "rebuild.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
py=/usr/bin/python3
t_start=$(date +%s)
stage() { echo "== [$(( $(date +%s) - t_start ))s] $*" >&2; }

if [ "$skip_deps" = 0 ]; then
  stage "dependencies (scripts/install-deps.sh)"
  if [ "$(id -u)" = 0 ]; then bash scripts/install-deps.sh; else sudo bash scripts/install-deps.sh; fi
fi
stage "build famq-rt and famq"
cmake --preset host >/dev/null
cmake --build --preset host -j2 --target famq-rt famq
rt=build/host/runtime/tools/famq-rt/famq-rt
famq=build/host/quantizer/famq

stage "corpus"
$py scripts/family/build_corpus.py --out "$work/corpus" --seed 1234
stage "tokenizer"
$py scripts/family/train_tokenizer.py --corpus "$work/corpus" --vocab-size 4096 --out "$work/tokenizer"
$py scripts/family/check_tokenizer.py --tokenizer "$work/tokenizer" --famq-rt "$rt"
stage "encoding the corpus"
$py scripts/family/pretokenize.py --corpus "$work/corpus" --tokenizer "$work/tokenizer" --out "$work/tokens"

train() {  # SIZE MINUTES THREADS [extra train.py args]
  local size=$1 minutes=$2 threads=$3
  shift 3
  if [ -f "$work/runs/$size/done.json" ]; then
    echo "famq-tiny-$size: $work/runs/$size is finished; not retrained" >&2
    return 0
  fi
  $py scripts/family/train.py --size "$size" --tokens "$work/tokens" --out "$work/runs/$size" \
    --time-budget-min "$minutes" --threads "$threads" --resume "$@"
}
export_member() {
  $py scripts/family/export_hf.py --run "$work/runs/$1" --tokenizer "$work/tokenizer" \
    --out "$models/famq-tiny-$1" --famq-rt "$rt"
}

mkdir -p "$work/runs"
stage "training famq-tiny-l (${l_min} min)"
train l "$l_min" 2 2>&1 | tee -a "$work/runs/l.log"
export_member l

stage "distilling famq-tiny-m and famq-tiny-s from famq-tiny-l (${ms_min} min, in parallel)"
kd=(--teacher "$models/famq-tiny-l" --kd-alpha 0.5 --kd-temp 2.0)
train m "$ms_min" 1 "${kd[@]}" >>"$work/runs/m.log" 2>&1 &
pid_m=$!
train s "$ms_min" 1 "${kd[@]}" >>"$work/runs/s.log" 2>&1 &
pid_s=$!
tail -n 0 -F "$work/runs/m.log" "$work/runs/s.log" 2>/dev/null | grep --line-buffered -E "^(==>|planned|eval|final|done)" >&2 &
pid_tail=$!
status=0
wait $pid_m || status=$?
wait $pid_s || status=$?
kill $pid_tail 2>/dev/null || true
if [ $status != 0 ]; then
  echo "rebuild.sh: distillation failed (see $work/runs/{m,s}.log)" >&2
  exit $status
fi
export_member m
export_member s

stage "evaluation, gates and model cards"
gates=0
$py scripts/family/model_cards.py --models "$models" --famq "$famq" --famq-rt "$rt" --suite "$suite" \
  --eval-dir "$repo/models/eval" || gates=$?
stage "golden expectations of famq-tiny-s"
$py tests/golden/make_family_golden.py --model "$models/famq-tiny-s" \
  --out "$golden" --famq-rt "$rt"
stage "done in $(( ($(date +%s) - t_start) / 60 )) min"
if [ $gates != 0 ]; then
  echo "rebuild.sh: the family misses a quality gate (see $models/README.md)" >&2
  exit 1
fi
