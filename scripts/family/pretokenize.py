#!/usr/bin/env python3
"""Encodes the famq-tiny training corpus with famq's own C++ tokenizer.

  pretokenize.py --corpus build/family/corpus --tokenizer DIR \
      --famq-rt build/host/runtime/tools/famq-rt/famq-rt --out build/family/tokens

For every CORPUS/<domain>/<split>.jsonl ({"text": ...} per line) writes
  OUT/<domain>/<split>.npy      flat uint16 ids, each document followed by <|endoftext|>
  OUT/<domain>/<split>.idx.npz  starts (int64), lengths (int32, without the
                                trailing <|endoftext|>), difficulty (int8, -1 if none)
and OUT/meta.json (vocab size, special ids, token counts per domain/split).

Special tokens written literally in the text (<|im_start|>, <think>, ...) come
out as their single special ids (famq-rt splits on added tokens first); this
is checked for every document.
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

SPLITS = ("train", "valid", "test")


def load_tokenizer_info(tok_dir):
    with open(os.path.join(tok_dir, "tokenizer.json"), "rb") as f:
        raw = f.read()
    tok = json.loads(raw)
    specials = {t["content"]: t["id"] for t in tok.get("added_tokens", [])}
    vocab_size = max(list(tok["model"]["vocab"].values()) + list(specials.values())) + 1
    return specials, vocab_size, hashlib.sha256(raw).hexdigest()


def famq_tokenize(famq_rt, tok_dir, texts, chunk=20000):
    """Returns a list of id lists, one per text, via `famq-rt tokenize --file`."""
    out = []
    for i in range(0, len(texts), chunk):
        part = texts[i:i + chunk]
        with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False, encoding="utf-8") as f:
            for t in part:
                f.write(json.dumps(t, ensure_ascii=False) + "\n")
            path = f.name
        try:
            res = subprocess.run([famq_rt, "tokenize", "--model", tok_dir, "--file", path],
                                 check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except subprocess.CalledProcessError as e:
            sys.exit(f"famq-rt tokenize failed: {e.stderr.decode(errors='replace')}")
        finally:
            os.unlink(path)
        lines = res.stdout.decode().splitlines()
        if len(lines) != len(part):
            sys.exit(f"famq-rt tokenize printed {len(lines)} lines for {len(part)} texts")
        out.extend(json.loads(ln) for ln in lines)
    return out


def encode_split(path, famq_rt, tok_dir, specials, eot, vocab_size):
    docs = []
    with open(path, encoding="utf-8") as f:
        for ln in f:
            if ln.strip():
                docs.append(json.loads(ln))
    texts = [d["text"] for d in docs]
    ids = famq_tokenize(famq_rt, tok_dir, texts)
    special_ids = set(specials.values())
    total = sum(len(x) + 1 for x in ids)
    flat = np.empty(total, dtype=np.uint16)
    starts = np.empty(len(ids), dtype=np.int64)
    lengths = np.empty(len(ids), dtype=np.int32)
    diff = np.full(len(ids), -1, dtype=np.int8)
    pos = 0
    for j, (d, x) in enumerate(zip(docs, ids)):
        # Every literal special token must have become exactly one special id.
        want = sum(d["text"].count(s) for s in specials)
        got = sum(1 for t in x if t in special_ids)
        if want != got:
            sys.exit(f"{path}:{j + 1}: {want} special tokens in the text but {got} special ids after "
                     f"tokenization: famq-rt did not split on added tokens")
        if x and max(x) >= vocab_size:
            sys.exit(f"{path}:{j + 1}: token id {max(x)} >= vocab size {vocab_size}")
        starts[j], lengths[j] = pos, len(x)
        flat[pos:pos + len(x)] = x
        flat[pos + len(x)] = eot
        pos += len(x) + 1
        if "difficulty" in d:
            diff[j] = int(d["difficulty"])
    return flat, starts, lengths, diff, sum(len(t) for t in texts)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default="build/family/corpus")
    ap.add_argument("--tokenizer", required=True, help="directory holding tokenizer.json")
    ap.add_argument("--famq-rt", default="build/host/runtime/tools/famq-rt/famq-rt")
    ap.add_argument("--out", default="build/family/tokens")
    a = ap.parse_args()

    if not os.access(a.famq_rt, os.X_OK):
        sys.exit(f"{a.famq_rt} not found: cmake --preset host && cmake --build --preset host -j2 --target famq-rt")
    specials, vocab_size, sha = load_tokenizer_info(a.tokenizer)
    if "<|endoftext|>" not in specials:
        sys.exit("tokenizer.json has no <|endoftext|> added token")
    eot = specials["<|endoftext|>"]
    if vocab_size > 65536:
        sys.exit("vocab does not fit uint16")
    # Sanity check of special-token handling before the real work.
    probe = famq_tokenize(a.famq_rt, a.tokenizer, ["<|im_start|>user\n12+3<|im_end|>"])[0]
    if probe[0] != specials.get("<|im_start|>") or probe[-1] != specials.get("<|im_end|>"):
        sys.exit(f"famq-rt does not map special tokens to their ids: {probe}")

    meta = {"vocab_size": vocab_size, "specials": specials, "eot_id": eot, "tokenizer_sha256": sha,
            "tokenizer_dir": os.path.abspath(a.tokenizer), "domains": {}}
    domains = sorted(d for d in os.listdir(a.corpus) if os.path.isdir(os.path.join(a.corpus, d)))
    for dom in domains:
        meta["domains"][dom] = {}
        for split in SPLITS:
            src = os.path.join(a.corpus, dom, f"{split}.jsonl")
            if not os.path.exists(src):
                continue
            flat, starts, lengths, diff, nchars = encode_split(src, a.famq_rt, a.tokenizer, specials, eot, vocab_size)
            od = os.path.join(a.out, dom)
            os.makedirs(od, exist_ok=True)
            np.save(os.path.join(od, f"{split}.npy"), flat)
            np.savez(os.path.join(od, f"{split}.idx.npz"), starts=starts, lengths=lengths, difficulty=diff)
            info = {"docs": int(len(starts)), "tokens": int(len(flat)), "chars": int(nchars),
                    "chars_per_token": round(nchars / max(1, int(lengths.sum())), 3)}
            if (diff >= 0).any():
                info["difficulty_counts"] = {int(k): int((diff == k).sum()) for k in np.unique(diff)}
            meta["domains"][dom][split] = info
            print(f"{dom}/{split}: {info}", flush=True)
    with open(os.path.join(a.out, "meta.json"), "w") as f:
        json.dump(meta, f, indent=2)


if __name__ == "__main__":
    main()
