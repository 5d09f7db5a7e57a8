#!/usr/bin/env bash
# famq serve driven by the official OpenAI Node SDK (npm openai, pinned by
# package-lock.json beside this script; test-only): models, completions
# (n = 2, logprobs), chat, streaming on both endpoints (include_usage, stop
# strings), embeddings as float and base64 (the SDK's default), and a wrong
# API key (sdk_test.mjs says what each check compares).
#
#   tests/serve/openai_sdk/run_sdk_test.sh FAMQ MODEL_DIR
#
# Installed once with `npm ci` into ${FAMQ_CACHE_DIR:-$HOME/.cache/famq}/npm/openai-sdk;
# nothing else is downloaded. Exit 0: all checks passed; 1: a mismatch or an
# error; 77 (ctest SKIP): npm is not installed or its registry cannot be
# reached (the reason is printed).
set -euo pipefail

readonly VERSION="4.104.0"
readonly HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly PREFIX="${FAMQ_CACHE_DIR:-$HOME/.cache/famq}/npm/openai-sdk"
if [[ $# -ne 2 ]]; then
  echo "usage: $0 FAMQ MODEL_DIR" >&2
  exit 2
fi
readonly FAMQ="$1" MODEL="$2"

if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
  echo "SKIP: npm registry unreachable (npm/node not installed)"
  exit 77
fi
readonly NETWORK_ERRORS='ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|EHOSTUNREACH|ERR_SOCKET[A-Z_]*|socket hang up|network[^.]*'
installed_version() {
  node -e 'try { console.log(require(process.argv[1]).version) } catch (e) {}' \
    "$PREFIX/node_modules/openai/package.json" 2>/dev/null
}
if [[ "$(installed_version)" != "$VERSION" ]] || ! cmp -s "$HERE/package-lock.json" "$PREFIX/package-lock.json"; then
  mkdir -p "$PREFIX"
  cp "$HERE/package.json" "$HERE/package-lock.json" "$PREFIX/"
  log="$PREFIX/npm-install.log"
  echo "installing openai@$VERSION into $PREFIX"
  if ! npm ci --ignore-scripts --no-audit --no-fund --fetch-retries=1 --fetch-timeout=60000 \
      --prefix "$PREFIX" >"$log" 2>&1; then
    if reason="$(grep -m1 -oE "$NETWORK_ERRORS" "$log")"; then
      echo "SKIP: npm registry unreachable ($reason)"
      exit 77
    fi
    echo "FAIL: npm ci openai@$VERSION failed:" >&2
    tail -20 "$log" >&2
    exit 1
  fi
  if [[ "$(installed_version)" != "$VERSION" ]]; then
    echo "FAIL: $PREFIX holds openai '$(installed_version)', expected $VERSION" >&2
    exit 1
  fi
fi
cp "$HERE/sdk_test.mjs" "$PREFIX/sdk_test.mjs"  # resolves openai from $PREFIX/node_modules

work="$(mktemp -d)"
serve_pid=
cleanup() {
  [[ -n "$serve_pid" ]] && kill "$serve_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
key="sdk-test-key-$RANDOM$RANDOM"
FAMQ_API_KEY="$key" "$FAMQ" serve --model "$MODEL" --port 0 --threads 2 >"$work/serve.log" 2>&1 &
serve_pid=$!
for _ in $(seq 200); do grep -q "http://" "$work/serve.log" 2>/dev/null && break; sleep 0.1; done
url=$(grep -o 'http://[0-9.:]*' "$work/serve.log") || { cat "$work/serve.log" >&2; echo "FAIL: famq serve did not start" >&2; exit 1; }
if ! node "$PREFIX/sdk_test.mjs" "$url/v1" "$key"; then
  echo "FAIL: the OpenAI SDK check failed; famq serve's log:" >&2
  tail -30 "$work/serve.log" >&2
  exit 1
fi
kill "$serve_pid"
wait "$serve_pid" 2>/dev/null || true
serve_pid=
