#!/usr/bin/env bash
# Rebuilds the small signed bundle the device tests finalize from
# (tests/data/bundles/famq-tiny-s.famqb, its public key trust.pub.pem):
# famq-tiny-l regenerates 32 original samples of the family's mixture for
# famq-tiny-s, G = 4, 128 new tokens. The private key is thrown away.
#
#   bash tests/finalize/make_test_bundle.sh build/host/quantizer/famq
set -euo pipefail
famq=${1:?usage: make_test_bundle.sh FAMQ}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
out=$repo/tests/data/bundles
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
head -n 32 "$repo/models/calib/mixture.jsonl" >"$work/calib.jsonl"
"$famq" keygen --out "$work/key.pem" --pub "$work/pub.pem" >/dev/null
"$famq" keygen --out "$work/other.pem" --pub "$work/other.pub.pem" >/dev/null
"$famq" bundle --target "$repo/models/famq-tiny-s" --regenerator "$repo/models/famq-tiny-l" -G 4 \
  --max-new-tokens 128 --seed 1 --sign "$work/key.pem" --calib "$work/calib.jsonl" --out "$work/b.famqb" -q
mkdir -p "$out"
cp "$work/b.famqb" "$out/famq-tiny-s.famqb"
cp "$work/pub.pem" "$out/trust.pub.pem"
cp "$work/other.pub.pem" "$out/other.pub.pem"  # the wrong key of the refusal tests
"$famq" verify "$out/famq-tiny-s.famqb" --trust "$out/trust.pub.pem"
