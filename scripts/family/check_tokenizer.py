#!/usr/bin/env python3
"""Checks that famq's C++ tokenizer encodes like the Python reference encoder (famq_bpe.Encoder).

    /usr/bin/python3 scripts/family/check_tokenizer.py --tokenizer build/family/tokenizer \
        --famq-rt build/host/runtime/tools/famq-rt/famq-rt [--corpus build/family/corpus] [--docs 200]

Takes --docs documents spread evenly over the domains' test splits plus a few hand-written edge
cases (special tokens, chat format, odd white space, non-ASCII letters and digits), encodes them
with both, and exits 1 on any mismatch (printing the first differing pieces).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from famq_bpe import Encoder  # noqa: E402

EDGE_CASES = [
    "",
    "Hello world",
    "  leading spaces and trailing   ",
    "tabs\tand\n\nnewlines\r\n\r\nmixed \n \n  end\n",
    "I'm sure you'll see they've done it; it's JOHN'S and we'D go. 'quoted' ''",
    "12345 + 678 = 13023, write 3 carry 1, so far 13023.",
    "<|im_start|>user\nWhat is 2 + 2?<|im_end|>\n<|im_start|>assistant\n<think>\n2+2+0=4, so far 4.\n</think>\n\n"
    "The answer is 4.<|im_end|>",
    "<|endoftext|><|endoftext|>text<think></think>",
    "Caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00c5ngstr\u00f6m \u0394\u03b5\u03bb\u03c4\u03b1 \u041c\u043e\u0441\u043a\u0432\u0430 "
    "\u6771\u4eac \u0663\u0664 \u00bd \u2167 \u2014 \u201cquotes\u201d \u2026 \U0001F600!",
    "cafe\u0301 (decomposed e + combining acute: NFC composes it)",
    "\u00a0non\u00a0breaking\u2003em\u2003space\u3000ideographic",
    "foo(bar) {x = y[1];} // ??? !!! ... ---\n\n\n",
    "    indented code\n        more\n",
]


def sample_docs(corpus, n):
    domains = sorted(d for d in os.listdir(corpus) if os.path.isfile(os.path.join(corpus, d, "test.jsonl")))
    per = [n // len(domains) + (1 if i < n % len(domains) else 0) for i in range(len(domains))]
    out = []
    for d, k in zip(domains, per):
        with open(os.path.join(corpus, d, "test.jsonl"), encoding="utf-8") as f:
            lines = f.readlines()
        step = max(1, len(lines) // k)
        out.extend(json.loads(line)["text"] for line in lines[::step][:k])
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokenizer", required=True, help="directory with tokenizer.json")
    ap.add_argument("--famq-rt", required=True, help="path of the famq-rt binary")
    ap.add_argument("--corpus", default="build/family/corpus")
    ap.add_argument("--docs", type=int, default=200)
    a = ap.parse_args()
    with open(os.path.join(a.tokenizer, "tokenizer.json"), encoding="utf-8") as f:
        tok = json.load(f)
    enc = Encoder(tok)
    inv = {i: t for t, i in tok["model"]["vocab"].items()}
    inv.update({t["id"]: t["content"] for t in tok["added_tokens"]})
    texts = sample_docs(a.corpus, a.docs) + EDGE_CASES
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "lines.jsonl")
        with open(path, "w", encoding="utf-8") as f:
            for t in texts:
                f.write(json.dumps(t, ensure_ascii=False) + "\n")
        r = subprocess.run([a.famq_rt, "tokenize", "--model", a.tokenizer, "--file", path],
                           capture_output=True, text=True)
    if r.returncode != 0:
        print(f"famq-rt failed ({r.returncode}): {r.stderr.strip()}", file=sys.stderr)
        return 1
    got = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
    if len(got) != len(texts):
        print(f"famq-rt printed {len(got)} lines for {len(texts)} inputs", file=sys.stderr)
        return 1
    bad = 0
    total = 0
    for i, (t, g) in enumerate(zip(texts, got)):
        want = enc.encode(t)
        total += len(want)
        if want != g:
            bad += 1
            j = next((k for k in range(min(len(want), len(g))) if want[k] != g[k]), min(len(want), len(g)))
            print(f"MISMATCH text {i} at token {j}: python {[inv.get(x) for x in want[j:j + 8]]} "
                  f"famq {[inv.get(x) for x in g[j:j + 8]]}\n  text: {t[:200]!r}", file=sys.stderr)
    print(f"check_tokenizer: {len(texts) - bad}/{len(texts)} texts identical ({total} tokens)"
          + ("" if not bad else f", {bad} MISMATCHES"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
