#!/usr/bin/env bash
# The FAQ experiment (issue 6, docs/DESIGN.md §7): does calibration data that the
# family's large member regenerated cut the accuracy loss of quantization?
#
#   bash scripts/experiment/run.sh [CONFIG=scripts/experiment/full.conf]
#
# For every target, calibration setting, seed, source and method of CONFIG:
#   1. bundles: the seed draws n originals from the setting's preset
#      (famq --draw); famq-tiny-l regenerates them (with and without the
#      reasoning cue) and scores the candidates; each target regenerates its
#      own (self); famq pack writes one signed bundle per source and target;
#   2. famq-rt finalize on the bundle, famq eval of the quantized model
#      (CONFIG's suite: test splits), and of the fp32 model once per target;
#   3. famq-rt act-stats: per-channel input ranges each source reaches vs the
#      evaluation text's (coverage plots);
#   4. scripts/experiment/report.py: docs/RESULTS.md, docs/results/*.json|svg.
# Everything goes to build/experiment/NAME/; a rerun skips finished work
# (resumable). Workers run one thread each (CONFIG's jobs). Needs the host
# build (it builds famq and famq-rt if they are missing).
# Environment: FAMQ_EXPERIMENT_OUT (output directory), FAMQ_BIN and
# FAMQ_RT_BIN (the famq and famq-rt binaries to use).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
config=${1:-scripts/experiment/full.conf}
[ -f "$config" ] || { echo "experiment: no config $config" >&2; exit 2; }
# shellcheck disable=SC1090
source "$config"
out=${FAMQ_EXPERIMENT_OUT:-$repo/build/experiment/$name}
famq=${FAMQ_BIN:-$repo/build/host/quantizer/famq}
rt=${FAMQ_RT_BIN:-$repo/build/host/runtime/tools/famq-rt/famq-rt}
models=$repo/models
py=/usr/bin/python3
t_start=$SECONDS
say() { printf '[experiment %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

if [ ! -x "$famq" ] || [ ! -x "$rt" ]; then
  say "building famq and famq-rt (cmake --preset host)"
  cmake --preset host >/dev/null
  cmake --build --preset host -j "$(nproc)" --target famq famq-rt
fi
mkdir -p "$out"/{stage,bundles,q,results,coverage,logs}
[ -f "$out/key.pem" ] || "$famq" keygen --out "$out/key.pem" --pub "$out/pub.pem" >/dev/null
cp "$config" "$out/config.conf"

export famq rt models out n seq_len group_size regenerator suite sources targets py
export oracle_preset=${oracle_preset:-mixture}
export variants=${variants:-}
for v in $variants; do export "variant_${v}_regen" "variant_${v}_select" "variant_${v}_pack"; done
has() { case " $1 " in *" $2 "*) return 0 ;; *) return 1 ;; esac; }
export -f has
is_floor() { [ "$1" = rtn ] || [[ $1 == rtn-* ]]; }
export -f is_floor

# ---- progress across parallel jobs --------------------------------------------
progress() { # PHASE TOTAL ID: counts one finished job and prints the tally
  local k
  k=$(flock "$out/.lock" sh -c "echo x >>'$out/.done-$1'; wc -l <'$out/.done-$1'")
  printf '[experiment %s] %s %d/%d %s\n' "$(date +%H:%M:%S)" "$1" "$k" "$2" "$3" >&"${progress_fd:-2}"
}
export -f progress

# Each job runs in its own `bash -c` with set -e: its output goes to LOG, and
# when it fails, the tail of LOG goes to the terminal (fd 3).
job_log() { # LOG WHAT
  exec 3>&2 >"$1" 2>&1
  progress_fd=3
  trap "rc=\$?; if [ \$rc != 0 ]; then echo 'experiment: $2 failed (exit '\$rc'); see $1' >&3; tail -5 '$1' >&3; fi" EXIT
}
export -f job_log

# ---- phase 1: stage files and bundles -------------------------------------------
# One job per (setting, seed): regeneration and scoring are shared by every
# target (the regenerated data does not depend on the target; famq pack
# --target labels each bundle), self-calibration is per target.
stage_job() { # LABEL PRESET[:N] SEED TOTAL   (N: originals per draw, default CONFIG's n)
  local label=$1 preset=${2%%:*} seed=$3 total=$4 count=$n
  [[ $2 == *:* ]] && count=${2#*:}
  local st=$out/stage/$label-s$seed log=$out/logs/stage-$label-s$seed.log
  mkdir -p "$st"
  job_log "$log" "stage $label seed $seed"
  local first=${targets%% *}
  local draw=(--calib-preset "$preset" --models-dir "$models" --draw "$count" --draw-seed "$seed")
  local gen=(-G "$group_size" --seed "$seed" --threads 1 -q)
  if has "$sources" faq || has "$sources" faq-nocompete || has "$sources" faq-norenorm; then
      "$famq" regenerate --target "$models/$first" --regenerator "$models/$regenerator" "${draw[@]}" "${gen[@]}" \
        --out "$st/regen-cot.jsonl"
      "$famq" select --in "$st/regen-cot.jsonl" --out "$st/sel-cot.jsonl" --threads 1 -q
    fi
    if has "$sources" faq-nocompete; then
      "$famq" select --in "$st/regen-cot.jsonl" --out "$st/sel-cot-nocompete.jsonl" --no-compete --threads 1 -q
    fi
    if has "$sources" faq-nocot; then
      "$famq" regenerate --target "$models/$first" --regenerator "$models/$regenerator" "${draw[@]}" "${gen[@]}" \
        --no-cot --out "$st/regen-nocot.jsonl"
      "$famq" select --in "$st/regen-nocot.jsonl" --out "$st/sel-nocot.jsonl" --threads 1 -q
    fi
  # Variants of FAQ (config: variants="NAME ...", variant_NAME_regen/_select/
  # _pack="famq flags"; source faq-NAME): regenerated, scored and packed
  # with their own flags, on the same draw and seed.
  local v
  for v in ${variants:-}; do
    has "$sources" "faq-$v" || continue
    local vr="variant_${v}_regen" vs="variant_${v}_select"
    # shellcheck disable=SC2086
    "$famq" regenerate --target "$models/$first" --regenerator "$models/$regenerator" "${draw[@]}" "${gen[@]}" \
      ${!vr:-} --out "$st/regen-$v.jsonl"
    # shellcheck disable=SC2086
    "$famq" select --in "$st/regen-$v.jsonl" --out "$st/sel-$v.jsonl" ${!vs:-} --threads 1 -q
  done
  for t in $targets; do
      local b=$out/bundles/$t
      mkdir -p "$b"
      local sign=(--sign "$out/key.pem" -L "$seq_len" -q)
      if has "$sources" self; then
        "$famq" regenerate --target "$models/$t" --self "${draw[@]}" "${gen[@]}" --out "$st/regen-self-$t.jsonl"
        "$famq" select --in "$st/regen-self-$t.jsonl" --out "$st/sel-self-$t.jsonl" \
          --expert "$models/$regenerator" --threads 1 -q
        [ -f "$b/$label-s$seed-self.famqb" ] || "$famq" pack --in "$st/sel-self-$t.jsonl" "${sign[@]}" \
          --out "$b/$label-s$seed-self.famqb"
      fi
      [ -f "$b/$label-s$seed-original.famqb" ] || "$famq" pack --originals-only --target "$models/$t" "${draw[@]}" \
        "${sign[@]}" --out "$b/$label-s$seed-original.famqb"
      # The oracle: real originals of every domain (CONFIG's oracle_preset, default the mixture preset's
      # training splits), the same count, seed and token budget: the ceiling regenerated data aims at.
      if has "$sources" oracle; then
        [ -f "$b/$label-s$seed-oracle.famqb" ] || "$famq" pack --originals-only --target "$models/$t" \
          --calib-preset "${oracle_preset:-mixture}" --models-dir "$models" --draw "$count" --draw-seed "$seed" \
          "${sign[@]}" --out "$b/$label-s$seed-oracle.famqb"
      fi
      local tgt=(--target "$models/$t")
      if has "$sources" faq; then
        [ -f "$b/$label-s$seed-faq.famqb" ] || "$famq" pack --in "$st/sel-cot.jsonl" "${tgt[@]}" "${sign[@]}" \
          --out "$b/$label-s$seed-faq.famqb"
      fi
      if has "$sources" faq-norenorm; then
        [ -f "$b/$label-s$seed-faq-norenorm.famqb" ] || "$famq" pack --in "$st/sel-cot.jsonl" "${tgt[@]}" \
          "${sign[@]}" --no-renorm --out "$b/$label-s$seed-faq-norenorm.famqb"
      fi
      if has "$sources" faq-nocompete; then
        [ -f "$b/$label-s$seed-faq-nocompete.famqb" ] || "$famq" pack --in "$st/sel-cot-nocompete.jsonl" \
          "${tgt[@]}" "${sign[@]}" --out "$b/$label-s$seed-faq-nocompete.famqb"
      fi
      if has "$sources" faq-nocot; then
        [ -f "$b/$label-s$seed-faq-nocot.famqb" ] || "$famq" pack --in "$st/sel-nocot.jsonl" "${tgt[@]}" \
          "${sign[@]}" --out "$b/$label-s$seed-faq-nocot.famqb"
      fi
      for v in ${variants:-}; do
        has "$sources" "faq-$v" || continue
        local vp="variant_${v}_pack"
        # shellcheck disable=SC2086
        [ -f "$b/$label-s$seed-faq-$v.famqb" ] || "$famq" pack --in "$st/sel-$v.jsonl" "${tgt[@]}" "${sign[@]}" \
          ${!vp:-} --out "$b/$label-s$seed-faq-$v.famqb"
      done
  done
  progress bundles "$total" "$label seed $seed"
}
export -f stage_job

# ---- phase 2: finalize + evaluate -------------------------------------------------
method_flags() { # METHOD -> famq-rt finalize flags
  case $1 in
    rtn) echo "--method rtn --wbits 4 --group 32" ;;
    gptq) echo "--method gptq --wbits 4 --group 32" ;;
    awq) echo "--method awq --wbits 4 --group 32" ;;
    smoothquant) echo "--method smoothquant --wbits 8 --abits 8 --group channel" ;;
    minmax) echo "--method rtn --wbits 8 --abits 8 --group channel --act-estimator minmax" ;;
    gptq-ch) echo "--method gptq --wbits 4 --group channel" ;;
    rtn-w3) echo "--method rtn --wbits 3 --group 128" ;;
    rtn-w2) echo "--method rtn --wbits 2 --group 64" ;;
    gptq-w3) echo "--method gptq --wbits 3 --group 128" ;;
    awq-w3) echo "--method awq --wbits 3 --group 128" ;;
    gptq-w2) echo "--method gptq --wbits 2 --group 64" ;;
    *) echo "experiment: unknown method $1" >&2; return 1 ;;
  esac
}
export -f method_flags

quant_job() { # TARGET LABEL SEED SOURCE METHOD TOTAL   (METHOD fp: the fp32 model)
  local t=$1 label=$2 seed=$3 src=$4 method=$5 total=$6
  local id=$label-s$seed-$src-$method
  [ "$method" = fp ] && id=fp seed=0
  is_floor "$method" && id=$method  # RTN reads no data: once per target
  local res=$out/results/$t/$id.json log=$out/logs/$t-$id.log
  mkdir -p "$out/results/$t" "$out/q/$t"
  if [ -f "$res" ]; then progress quantize "$total" "$t $id (done before)"; return 0; fi
  local fin='null' ev q=$out/q/$t/$id.famq
  job_log "$log" "$t $id"
  if [ "$method" = fp ]; then
      ev=$("$famq" eval --model "$models/$t" --suite "$suite" --eval-dir "$models/eval" --threads 1 --json -q)
    else
      # shellcheck disable=SC2046
      fin=$("$rt" finalize --model "$models/$t" --bundle "$out/bundles/$t/$label-s$seed-$src.famqb" \
        --trust "$out/pub.pem" $(method_flags "$method") --threads 1 --quiet --json --out "$q")
      ev=$("$famq" eval --qmodel "$q" --suite "$suite" --eval-dir "$models/eval" --threads 1 --json -q)
      rm -f "$q"
    fi
    printf '{"target":"%s","setting":"%s","seed":%s,"source":"%s","method":"%s","finalize":%s,"eval":%s}\n' \
      "$t" "$label" "${seed:-0}" "$src" "$method" "$fin" "$ev" >"$res.tmp"
    mv "$res.tmp" "$res"
  progress quantize "$total" "$t $id"
}
export -f quant_job

# ---- phase 3: coverage of activation ranges --------------------------------------
coverage_job() { # TARGET LABEL SOURCE|eval TOTAL
  local t=$1 label=$2 src=$3 total=$4 res log
  mkdir -p "$out/coverage/$t"
  if [ "$src" = eval ]; then
    res=$out/coverage/$t/eval.json log=$out/logs/coverage-$t-eval.log
    [ -f "$res" ] || "$rt" act-stats --model "$models/$t" --calib-text "$out/coverage/eval-text.txt" --seq-len 256 \
      --threads 1 --quiet --out "$res" >"$log" 2>&1
  else
    res=$out/coverage/$t/$label-$src.json log=$out/logs/coverage-$t-$label-$src.log
    [ -f "$res" ] || "$rt" act-stats --model "$models/$t" --bundle "$out/bundles/$t/$label-s$first_seed-$src.famqb" \
      --trust "$out/pub.pem" --threads 1 --quiet --out "$res" >"$log" 2>&1
  fi || { echo "experiment: coverage $t $label $src failed; see $log" >&2; return 1; }
  progress coverage "$total" "$t $label $src"
}
export -f coverage_job

run_jobs() { # PHASE FUNCTION < job lines
  local phase=$1 fn=$2 t0=$SECONDS
  rm -f "$out/.done-$phase"
  xargs -P "$jobs" -L 1 bash -c "set -euo pipefail; $fn \"\$@\"" _ || { say "phase $phase failed"; exit 1; }
  echo "$phase $((SECONDS - t0))" >>"$out/timing.txt"
}

first_seed=${seeds%% *}
export first_seed
nsettings=$(wc -w <<<"$settings")
nseeds=$(wc -w <<<"$seeds")
say "config $config -> $out"
say "phase 1/4: bundles ($((nsettings * nseeds)) jobs of regenerate -> select -> pack)"
for s in $settings; do for seed in $seeds; do echo "${s%%:*} ${s#*:} $seed $((nsettings * nseeds))"; done; done |
  run_jobs bundles stage_job

jobfile=$out/quant-jobs.txt
: >"$jobfile"
for t in $(tr ' ' '\n' <<<"$targets" | tac); do  # the larger target first: better packing of the workers
  echo "$t - - - fp" >>"$jobfile"
  for m in $methods; do
    if is_floor "$m"; then echo "$t ${settings%%:*} $first_seed original $m" >>"$jobfile"; fi
  done
  for s in $settings; do for seed in $seeds; do for src in $sources; do for m in $methods; do
    is_floor "$m" && continue
    preset=${s#*:}
    # the oracle is the original data where the setting already draws from the oracle's preset
    [ "$src" = oracle ] && [ "${preset%%:*}" = "${oracle_preset:-mixture}" ] && continue
    echo "$t ${s%%:*} $seed $src $m" >>"$jobfile"
  done; done; done; done
done
total=$(wc -l <"$jobfile")
say "phase 2/4: finalize + eval ($total jobs, suite $suite)"
sed "s/\$/ $total/" "$jobfile" | run_jobs quantize quant_job

say "phase 3/4: coverage of activation ranges ($coverage_target, seed $first_seed)"
$py - "$models/eval/$suite.json" "$out/coverage/eval-text.txt" <<'PY'
import json, os, sys
suite = json.load(open(sys.argv[1]))
base = os.path.dirname(sys.argv[1])
windows = suite.get("max_windows") or 32
parts = []
for d in suite["text"]:  # about the suite's windows of each domain (3.5 bytes per token)
    budget, text = int(windows * suite.get("ctx", 256) * 3.5), []
    for line in open(os.path.join(base, d["file"])):
        text.append(json.loads(line)["text"])
        budget -= len(text[-1])
        if budget <= 0:
            break
    parts.append("\n\n".join(text))
open(sys.argv[2], "w").write("\n\n".join(parts))
PY
{
  echo "$coverage_target - eval"
  for s in $settings; do for src in $sources; do echo "$coverage_target ${s%%:*} $src"; done; done
} >"$out/coverage-jobs.txt"
total=$(wc -l <"$out/coverage-jobs.txt")
sed "s/\$/ $total/" "$out/coverage-jobs.txt" | run_jobs coverage coverage_job

say "phase 4/4: report"
tuning_args=()
if [ -n "${tuning:-}" ] && [ -d "$repo/build/experiment/$tuning/results" ]; then
  tuning_args=(--tuning "$repo/build/experiment/$tuning")
fi
if [ -n "$report" ]; then
  $py scripts/experiment/report.py "$out" --write "$report" "${tuning_args[@]}"
else
  $py scripts/experiment/report.py "$out"
fi
say "done in $((SECONDS - t_start)) s: $out"
