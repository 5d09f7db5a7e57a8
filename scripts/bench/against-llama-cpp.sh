#!/usr/bin/env bash
# famq against llama.cpp on the same weights, in the same run (issue 14's
# targets; docs/BENCHMARKS.md, "Against llama.cpp"). Benchmark-only: nothing
# of famq depends on it.
#
#   scripts/bench/against-llama-cpp.sh [--runs N] [--build DIR] [--checkpoint DIR] [--out FILE.md] [--keep]
#
#   --runs N          interleaved runs (default 5; at least 5 for figures you report)
#   --build DIR       where famq-rt and membw are built (default build/host:
#                     cmake --build --preset host --target famq-rt membw)
#   --checkpoint DIR  an existing random checkpoint of Qwen3-0.6B's shapes
#                     (default: made here by scripts/reference/make_random_checkpoint.py, seed 3)
#   --out FILE.md     also write the tables there
#   --keep            keep the work directory (checkpoint, .famq, .gguf, raw results)
# Environment:
#   FAMQ_BENCH_FINALIZE_FLAGS  extra `famq-rt finalize` flags for both models
#                              (e.g. a head-bits option once it exists)
#   FAMQ_BENCH_FLAGS           extra `famq-rt bench` flags (e.g. --kv-type f16 once it exists)
#   FAMQ_CACHE_DIR             npm install prefix root (default ~/.cache/famq), shared with tests/gguf
#   TMPDIR                     where the work directory goes (about 4 GB)
#
# What it does:
#  1. the random checkpoint (BF16, hidden 1024, 28 layers, 16/8 heads,
#     head_dim 128, intermediate 3072, vocab 151,936, tied);
#  2. famq-rt finalize --method rtn --group 32 --symmetric, --wbits 4 and
#     --wbits 8 (RTN reads no data; the README is passed as calibration text),
#     and famq-rt export of each to GGUF (Q4_0 / Q8_0 blocks of the same
#     codes: the same weights on both sides);
#  3. N runs, each: membw (read bandwidth, 2 threads), then per scheme famq-rt
#     bench twice (a 64-token prompt + 32 decode steps; a 256-token prompt) and
#     llama.cpp once (scripts/bench/llama_bench.mjs: the same two workloads in
#     one process), famq first on odd runs and llama.cpp first on even runs,
#     then a bare Node process (its peak RSS is subtracted from llama.cpp's);
#     every side runs each workload once to warm up and once measured, with
#     2 threads and a context of 512 tokens;
#  4. scripts/bench/report.py: medians as markdown tables.
# llama.cpp is npm node-llama-cpp pinned by tests/gguf/package-lock.json
# (3.21.1, prebuilt CPU binaries, build: "never"), installed once into the
# same prefix as the GGUF test uses. Runtime on the idle 2-core build machine:
# about 5 min of preparation and 30-40 s per run (docs/BENCHMARKS.md).
# Exit 0: tables printed; 1: an error (said on stderr); 2: bad usage.
set -euo pipefail

readonly VERSION="3.21.1"
readonly HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly REPO="$(cd "$HERE/../.." && pwd)"
readonly GGUF_DIR="$REPO/tests/gguf"
readonly PREFIX="${FAMQ_CACHE_DIR:-${HOME:?is not set: set HOME or FAMQ_CACHE_DIR}/.cache/famq}/npm/gguf-oracle"
readonly CTX=512 THREADS=2 PROMPT=64 GEN=32 PROMPT2=256 SEED=1

runs=5 build="$REPO/build/host" checkpoint="" out="" keep=0
die() { echo "against-llama-cpp: $*" >&2; exit 1; }
usage() { sed -n '6,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --runs) [[ $# -ge 2 && "$2" =~ ^[1-9][0-9]*$ ]] || usage; runs=$2; shift 2 ;;
    --build) [[ $# -ge 2 ]] || usage; build=$2; shift 2 ;;
    --checkpoint) [[ $# -ge 2 ]] || usage; checkpoint=$2; shift 2 ;;
    --out) [[ $# -ge 2 ]] || usage; out=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    -h|--help) usage ;;
    *) echo "against-llama-cpp: unknown argument $1" >&2; usage ;;
  esac
done
[[ $runs -ge 5 ]] || echo "against-llama-cpp: note: $runs runs; the issue's figures need at least 5" >&2

readonly RT="$build/runtime/tools/famq-rt/famq-rt" MEMBW="$build/benchmarks/membw"
[[ -x "$RT" ]] || die "$RT not found: cmake --preset host && cmake --build --preset host --target famq-rt membw"
[[ -x "$MEMBW" ]] || die "$MEMBW not found (needs libbenchmark-dev for benchmarks/): cmake --build --preset host --target membw"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  die "node and npm are needed for llama.cpp (node-llama-cpp $VERSION): apt-get install nodejs npm"
fi
readonly PY=/usr/bin/python3
[[ -z "$checkpoint" ]] && ! "$PY" -c 'import numpy' 2>/dev/null &&
  die "numpy is needed to make the random checkpoint (apt-get install python3-numpy), or pass --checkpoint DIR"
[[ -z "$checkpoint" || -f "$checkpoint/config.json" ]] || die "$checkpoint: no config.json"

# --- llama.cpp: node-llama-cpp from tests/gguf's lock, prebuilt binaries only ---
installed_version() {
  node -e 'try { console.log(require(process.argv[1]).version) } catch (e) {}' \
    "$PREFIX/node_modules/node-llama-cpp/package.json" 2>/dev/null
}
if [[ "$(installed_version)" != "$VERSION" ]] || ! cmp -s "$GGUF_DIR/package-lock.json" "$PREFIX/package-lock.json"; then
  mkdir -p "$PREFIX" || die "cannot create $PREFIX"
  cp "$GGUF_DIR/package.json" "$GGUF_DIR/package-lock.json" "$PREFIX/"
  echo "installing node-llama-cpp@$VERSION (prebuilt CPU binaries) into $PREFIX" >&2
  if ! NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm ci --omit=optional --ignore-scripts --no-audit --no-fund \
      --fetch-retries=1 --fetch-timeout=60000 --prefix "$PREFIX" >"$PREFIX/npm-install.log" 2>&1; then
    tail -5 "$PREFIX/npm-install.log" >&2
    die "npm ci of node-llama-cpp@$VERSION failed (registry unreachable?); log: $PREFIX/npm-install.log"
  fi
  [[ "$(installed_version)" == "$VERSION" ]] || die "$PREFIX holds node-llama-cpp '$(installed_version)', expected $VERSION"
fi
cp "$HERE/llama_bench.mjs" "$PREFIX/llama_bench.mjs"  # resolves node-llama-cpp from $PREFIX/node_modules
llama() { NODE_LLAMA_CPP_SKIP_DOWNLOAD=true node "$PREFIX/llama_bench.mjs" "$@"; }

work="$(mktemp -d "${TMPDIR:-/tmp}/famq-vs-llama.XXXXXX")"
cleanup() {
  if [[ $keep -eq 1 ]]; then echo "work directory kept: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }

# --- the weights ---
if [[ -z "$checkpoint" ]]; then
  log "random checkpoint with Qwen3-0.6B's shapes"
  checkpoint="$work/qwen3-0.6b-shape"
  "$PY" "$REPO/scripts/reference/make_random_checkpoint.py" --out "$checkpoint" --arch qwen3 --dtype BF16 \
    --hidden 1024 --layers 28 --heads 16 --kv-heads 8 --head-dim 128 --intermediate 3072 --vocab 151936 \
    --tokenizer-size 512 --max-positions 40960 --seed 3 >"$work/checkpoint.log" 2>&1 ||
    { cat "$work/checkpoint.log" >&2; die "make_random_checkpoint.py failed"; }
fi
head -c 9000 "$REPO/README.md" >"$work/calib.txt"
read -r -a extra_finalize <<<"${FAMQ_BENCH_FINALIZE_FLAGS:-}"
read -r -a extra_bench <<<"${FAMQ_BENCH_FLAGS:-}"
for scheme in w4 w8; do
  log "famq-rt finalize + export, $scheme g32 symmetric"
  "$RT" finalize --model "$checkpoint" --calib-text "$work/calib.txt" --seq-len 64 --method rtn \
    --wbits "${scheme#w}" --group 32 --symmetric --threads "$THREADS" --quiet "${extra_finalize[@]}" \
    --out "$work/$scheme.famq" >"$work/$scheme.finalize.log" 2>&1 ||
    { cat "$work/$scheme.finalize.log" >&2; die "famq-rt finalize ($scheme) failed"; }
  "$RT" export --qmodel "$work/$scheme.famq" --out "$work/$scheme.gguf" >"$work/$scheme.export.log" 2>&1 ||
    { cat "$work/$scheme.export.log" >&2; die "famq-rt export ($scheme) failed"; }
done

# --- interleaved runs ---
results="$work/results.jsonl"
"$PY" - "$results" "$VERSION" "$CTX" "$THREADS" "$PROMPT" "$GEN" "$PROMPT2" "$runs" \
  "${FAMQ_BENCH_FINALIZE_FLAGS:-}" "${FAMQ_BENCH_FLAGS:-}" "$(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown)" <<'PY'
import json, sys
a = sys.argv[1:]
json.dump({"kind": "meta", "node_llama_cpp": a[1], "ctx": int(a[2]), "threads": int(a[3]), "prompt_tokens": int(a[4]),
           "gen_tokens": int(a[5]), "prompt2_tokens": int(a[6]), "runs": int(a[7]), "finalize_flags": a[8],
           "bench_flags": a[9], "famq_rt": "commit " + a[10]}, open(a[0], "w"))
open(a[0], "a").write("\n")
PY
# record KIND SCHEME PART RUN < JSON: one line of results.jsonl (famq-rt bench's first result, or the object).
record() {
  "$PY" -c '
import json, sys
kind, scheme, part, run = sys.argv[1:5]
j = json.load(sys.stdin)
r = j["results"][0] if "results" in j else j
r.update(kind=kind, scheme=scheme, part=part, run=int(run))
print(json.dumps(r))' "$@" >>"$results"
}
famq_side() {  # famq_side SCHEME RUN
  local out="$work/famq.json"
  for part in short long; do
    local p=$PROMPT g=$GEN
    [[ $part == long ]] && p=$PROMPT2 g=1
    "$RT" bench --qmodel "$work/$1.famq" --threads "$THREADS" --ctx "$CTX" --prompt-tokens "$p" --gen-tokens "$g" \
      --reps 1 --seed "$SEED" --json "${extra_bench[@]}" >"$out" 2>"$work/famq.err" ||
      { cat "$work/famq.err" >&2; die "famq-rt bench ($1, $part) failed"; }
    record famq "$1" "$part" "$2" <"$out"
  done
}
llama_side() {  # llama_side SCHEME RUN
  llama "$work/$1.gguf" "$CTX" "$THREADS" "$PROMPT" "$GEN" "$PROMPT2" "$SEED" >"$work/llama.json" 2>"$work/llama.err" ||
    { cat "$work/llama.err" >&2; die "llama.cpp ($1) failed"; }
  record llama "$1" all "$2" <"$work/llama.json"
}
for ((run = 1; run <= runs; ++run)); do
  log "run $run of $runs"
  "$MEMBW" --threads "$THREADS" --passes 5 --json | record membw - - "$run"
  for scheme in w4 w8; do
    if ((run % 2)); then famq_side $scheme $run; llama_side $scheme $run
    else llama_side $scheme $run; famq_side $scheme $run; fi
  done
  llama --bare | record bare - - "$run"
done

table="$("$PY" "$HERE/report.py" "$results")"
echo "$table"
if [[ -n "$out" ]]; then  # the tables, and the raw results beside them
  printf '%s\n' "$table" >"$out.tmp" && mv "$out.tmp" "$out"
  cp "$results" "$out.jsonl.tmp" && mv "$out.jsonl.tmp" "$out.jsonl"
fi
