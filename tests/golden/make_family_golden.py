#!/usr/bin/python3
"""Writes the golden expectations of famq-rt on a trained family member
(default famq-tiny-s): one prompt per domain, what the PyTorch reference
(scripts/reference/famq_ref.py) computes on it.

  /usr/bin/python3 tests/golden/make_family_golden.py \
      [--model models/famq-tiny-s] [--out tests/data/famq-tiny-s.golden] \
      [--famq-rt build/host/runtime/tools/famq-rt/famq-rt]

OUT/golden.json      {"model": ..., "prompts": [{"domain", "text", "ids",
                      "greedy" (32 ids, eos ignored), "min_margin"}, ...]}
OUT/logits_<i>.npy   float32 [len(ids), vocab]: every prompt position's logits

Prompt ids come from famq-rt's tokenizer (verified separately against the
Hugging Face tokenizer oracle); the test re-tokenizes the text and requires
the same ids. Greedy decoding compares argmaxes, so a prompt whose 32 greedy
steps include a near tie (top-1 minus runner-up below 1e-3 of the logit
range) is skipped for the domain's next candidate prompt, rather than
loosening the check.
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "scripts", "reference"))
from famq_ref import Reference  # noqa: E402

sys.path.insert(0, HERE)
from make_fixtures import MIN_RELATIVE_MARGIN, greedy_with_margins  # noqa: E402

# Per domain, candidate prompts in order of preference: the first whose 32
# greedy steps have no near tie is used (a near tie could flip between float
# implementations and make the test flaky rather than meaningful).
PROMPTS = [
    ("bible", ["Genesis 1:1 In the beginning", "Exodus 20:3 Thou shalt", "Psalms 23:1 The LORD is my shepherd",
               "John 3:16 For God so loved", "Proverbs 3:5 Trust in the LORD"]),
    ("dictionary", ["Anachronize, v. t.", "Blood, v. t.", "Candle, n.", "Garden, n.", "Quick, a."]),
    ("computing", ["deprecated\nadj.\n\n", "kernel\n", "hacker\nn.\n\n", "Unix\n", "compiler\n\n"]),
    ("fortunes", ["A \"critic\" is a man who", "Q: How many", "It is a miracle that", "Never trust a", "Life is"]),
    ("reasoning", ["<|im_start|>user\nWhat is 27 + 45?<|im_end|>\n<|im_start|>assistant\n",
                   "<|im_start|>user\nWhat is 38 + 54?<|im_end|>\n<|im_start|>assistant\n",
                   "Question: What is 27 + 45?\nAnswer:", "Question: What is 61 - 17?\nAnswer:",
                   "Question: What is 12 * 7?\nAnswer:"]),
]
GREEDY_TOKENS = 32


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.join(REPO, "models", "famq-tiny-s"))
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "data", "famq-tiny-s.golden"))
    ap.add_argument("--famq-rt", default=os.path.join(REPO, "build/host/runtime/tools/famq-rt/famq-rt"))
    a = ap.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    ref = Reference(a.model)
    os.makedirs(a.out, exist_ok=True)
    entries = []
    for i, (domain, candidates) in enumerate(PROMPTS):
        for text in candidates:
            ids = json.loads(subprocess.run([a.famq_rt, "tokenize", "--model", a.model, "--text", text],
                                            check=True, capture_output=True, text=True).stdout)
            greedy, margin = greedy_with_margins(ref, ids, GREEDY_TOKENS)
            if margin >= MIN_RELATIVE_MARGIN:
                break
            print(f"{domain} prompt {text!r}: near tie in greedy decoding (margin {margin:.2e}); next prompt",
                  file=sys.stderr)
        else:
            raise SystemExit(f"{domain}: every candidate prompt has a near tie; add prompts")
        logits = ref.logits(ids).numpy().astype(np.float32)
        np.save(os.path.join(a.out, f"logits_{i}.npy"), logits)
        entries.append({"domain": domain, "text": text, "ids": ids, "greedy": greedy, "min_margin": margin})
        print(f"{domain}: {text!r}, {len(ids)} prompt ids, greedy margin {margin:.3e}")
    with open(os.path.join(a.out, "golden.json"), "w") as f:
        json.dump({"model": os.path.basename(os.path.normpath(a.model)), "greedy_tokens": GREEDY_TOKENS,
                   "prompts": entries}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
