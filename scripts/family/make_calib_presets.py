#!/usr/bin/python3
"""Writes the calibration presets of `famq bundle --calib-preset NAME`:
original calibration samples drawn (seeded) from the family's *training*
splits, never from validation or test.

  /usr/bin/python3 scripts/family/make_calib_presets.py \
      [--corpus build/family/corpus] [--out models/calib] [--samples 128] [--seed 7]

OUT/NAME.jsonl holds {"text": ..., "domain": ...} per line:
  mixture     domains drawn with the training mix of scripts/family/train.py
  bible, dictionary, computing, fortunes
              one domain (the "narrow" setting of the FAQ experiment)
  reasoning   plain-format reasoning problems with their worked answers
Text documents longer than --max-chars are cut at a line break near a random
offset, so a sample is about 256 tokens of this tokenizer (~3.5 bytes/token).
"""
import argparse
import json
import os
import random
import re

HERE = os.path.dirname(os.path.abspath(__file__))
# The training mix, read from train.py without importing torch.
with open(os.path.join(HERE, "train.py"), encoding="utf-8") as _f:
    DEFAULT_MIX = re.search(r'^DEFAULT_MIX = "([^"]+)"', _f.read(), re.M).group(1)

DOMAINS = ["bible", "dictionary", "computing", "fortunes", "reasoning"]


def load(corpus, domain):
    docs = []
    with open(os.path.join(corpus, domain, "train.jsonl"), encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            if domain == "reasoning" and d.get("format") != "plain":
                continue
            docs.append(d["text"])
    return docs


def cut(text, rng, max_chars):
    if len(text) <= max_chars:
        return text
    start = rng.randrange(0, len(text) - max_chars)
    nl = text.rfind("\n", 0, start)
    start = nl + 1 if nl >= 0 and start - nl < max_chars // 2 else start
    piece = text[start:start + max_chars]
    end = piece.rfind("\n")
    return piece[:end] if end > max_chars // 2 else piece


def draw(docs, rng, n, max_chars):
    out = []
    for i in rng.sample(range(len(docs)), min(n, len(docs))):
        out.append(cut(docs[i], rng, max_chars).strip())
    return [t for t in out if t]


def write(path, rows):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for domain, text in rows:
            f.write(json.dumps({"text": text, "domain": domain}, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default="build/family/corpus")
    ap.add_argument("--out", default="models/calib")
    ap.add_argument("--samples", type=int, default=128)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--max-chars", type=int, default=900)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    docs = {d: load(a.corpus, d) for d in DOMAINS}
    for i, d in enumerate(DOMAINS):
        rng = random.Random(a.seed * 1000 + i)
        rows = [(d, t) for t in draw(docs[d], rng, a.samples, a.max_chars)]
        write(os.path.join(a.out, f"{d}.jsonl"), rows)
        print(f"{d}: {len(rows)} samples")
    mix = {k: float(v) for k, v in (kv.split("=") for kv in DEFAULT_MIX.split(","))}
    rng = random.Random(a.seed)
    names = sorted(mix)
    weights = [mix[k] for k in names]
    rows = []
    used = {d: set() for d in DOMAINS}
    while len(rows) < a.samples:
        d = rng.choices(names, weights)[0]
        j = rng.randrange(len(docs[d]))
        if j in used[d]:
            continue
        used[d].add(j)
        t = cut(docs[d][j], rng, a.max_chars).strip()
        if t:
            rows.append((d, t))
    write(os.path.join(a.out, "mixture.jsonl"), rows)
    print("mixture: " + ", ".join(f"{d} {sum(1 for r in rows if r[0] == d)}" for d in names))


if __name__ == "__main__":
    main()
