#!/usr/bin/env bash
# x86 and aarch64 must produce identical greedy tokens: runs famq-rt generate
# (fp32, greedy, eos ignored) on every committed fixture and on the family's
# famq-tiny-s with a text prompt,
# natively from the host build and under qemu-aarch64 from the aarch64 build,
# and compares the prompt ids and the 32 generated ids.
#
#   tests/golden/cross_arch_greedy.sh build/host build/aarch64
set -euo pipefail
host_build=${1:?usage: $0 HOST_BUILD AARCH64_BUILD}
arm_build=${2:?usage: $0 HOST_BUILD AARCH64_BUILD}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
sysroot=$(sed -n 's/^FAMQ_SYSROOT:PATH=//p' "$arm_build/CMakeCache.txt")
qemu=(qemu-aarch64 -L /usr/aarch64-linux-gnu -E "LD_LIBRARY_PATH=$sysroot/usr/lib/aarch64-linux-gnu")
prompt="The quick brown fox, 1234 times: naïve café — Ελληνικά 中文 🙂"
fail=0
for dir in "$repo"/tests/data/tiny-random-* "$repo"/models/famq-tiny-s; do
  name=$(basename "$dir")
  args=(generate --model "$dir" --prompt "$prompt" -n 32 --ignore-eos --json --threads 2)
  x86=$("$host_build/runtime/tools/famq-rt/famq-rt" "${args[@]}" | /usr/bin/python3 -c \
    'import json,sys; j=json.load(sys.stdin); print(len(j["prompt_ids"]), len(j["ids"]), j["prompt_ids"], j["ids"])')
  arm=$("${qemu[@]}" "$arm_build/runtime/tools/famq-rt/famq-rt" "${args[@]}" | /usr/bin/python3 -c \
    'import json,sys; j=json.load(sys.stdin); print(len(j["prompt_ids"]), len(j["ids"]), j["prompt_ids"], j["ids"])')
  if [ "$x86" = "$arm" ]; then
    echo "cross-arch greedy: $name identical ($(echo "$x86" | cut -d' ' -f1) prompt ids, $(echo "$x86" | cut -d' ' -f2) generated ids)"
  else
    echo "cross-arch greedy: $name DIFFERS" >&2
    echo "  x86:     $x86" >&2
    echo "  aarch64: $arm" >&2
    fail=1
  fi
done
exit $fail
