#!/usr/bin/python3
"""Writes the golden fixtures of famq-rt's fp32 engine: three seeded random
checkpoints in Hugging Face layout (one per architecture and dtype) and what
the PyTorch reference computes on them.

  /usr/bin/python3 tests/golden/make_fixtures.py [--out tests/data]

For each fixture DIR = tests/data/tiny-random-<arch>:
  DIR/{config,generation_config,tokenizer_config,tokenizer}.json, weights
  DIR/golden.json         {"prompt_ids": 64 ids, "greedy": 32 ids (eos ignored), "min_margin": ...}
  DIR/golden_logits.npy   float32 [64, vocab]: every prompt position's logits

Greedy decoding compares argmaxes, so a fixture is only useful if no step is a
near tie that float rounding could flip: the checkpoint seed is advanced until
every greedy step's top-1 logit beats the runner-up by at least 1e-3 of the
logit range (the seed used is recorded). The prompt ids are drawn from a
seeded RNG over the non-special vocabulary.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "scripts", "reference"))
from famq_ref import Reference  # noqa: E402

FIXTURES = [
    # name, make_random_checkpoint.py arguments
    ("tiny-random-qwen3", ["--arch", "qwen3", "--dtype", "BF16"]),
    ("tiny-random-qwen2", ["--arch", "qwen2", "--dtype", "F32"]),
    ("tiny-random-llama", ["--arch", "llama", "--dtype", "F16", "--untied", "--shards", "2"]),
]
PROMPT_TOKENS = 64
GREEDY_TOKENS = 32
MIN_RELATIVE_MARGIN = 1e-3


def greedy_with_margins(ref, ids, n):
    ids, out, margins = list(ids), [], []
    for _ in range(n):
        logits = ref.logits(ids)[-1]
        top2 = torch.topk(logits, 2).values
        span = float(logits.max() - logits.min())
        margins.append(float(top2[0] - top2[1]) / max(span, 1e-30))
        nxt = int(torch.argmax(logits))
        out.append(nxt)
        ids.append(nxt)
    return out, min(margins)


def make(name, args, out_root, first_seed):
    out = os.path.join(out_root, name)
    for seed in range(first_seed, first_seed + 50):
        if os.path.isdir(out):
            shutil.rmtree(out)
        subprocess.run([sys.executable, os.path.join(REPO, "scripts/reference/make_random_checkpoint.py"),
                        "--out", out, "--seed", str(seed)] + args, check=True, stdout=subprocess.DEVNULL)
        ref = Reference(out)
        with open(os.path.join(out, "tokenizer.json")) as f:
            tok = json.load(f)
        specials = {t["id"] for t in tok.get("added_tokens", [])}
        vocab = ref.cfg["vocab_size"]
        pool = [i for i in range(len(tok["model"]["vocab"])) if i not in specials]
        rng = np.random.default_rng(seed)
        prompt = [int(x) for x in rng.choice(pool, size=PROMPT_TOKENS)]
        greedy, margin = greedy_with_margins(ref, prompt, GREEDY_TOKENS)
        if margin < MIN_RELATIVE_MARGIN:
            print(f"{name}: seed {seed} has a near tie (margin {margin:.2e}); next seed", file=sys.stderr)
            continue
        logits = ref.logits(prompt).numpy().astype(np.float32)
        assert logits.shape == (PROMPT_TOKENS, vocab)
        np.save(os.path.join(out, "golden_logits.npy"), logits)
        with open(os.path.join(out, "golden.json"), "w") as f:
            json.dump({"checkpoint_seed": seed, "make_random_checkpoint_args": args,
                       "prompt_ids": prompt, "greedy": greedy, "min_margin": margin}, f)
            f.write("\n")
        print(f"{name}: seed {seed}, greedy margin {margin:.3e}, logits max |x| {np.abs(logits).max():.3f}")
        return
    raise SystemExit(f"{name}: no seed without near ties")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "data"))
    ap.add_argument("--seed", type=int, default=1, help="first checkpoint seed tried")
    a = ap.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    for name, args in FIXTURES:
        make(name, args, a.out, a.seed)


if __name__ == "__main__":
    main()
