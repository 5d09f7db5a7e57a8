#!/usr/bin/env python3
"""Trains the famq-tiny byte-level BPE tokenizer (Hugging Face tokenizer.json) on the corpus.

    /usr/bin/python3 scripts/family/train_tokenizer.py --corpus build/family/corpus \
        --vocab-size 4096 --out build/family/tokenizer

NFC normalizer, Qwen2 split regex, GPT-2 byte alphabet (256 base tokens), merges until base +
merges = --vocab-size, then the specials <|endoftext|> <|im_start|> <|im_end|> <think> </think>
(ids vocab-size .. vocab-size+4). Training text: the train split of every domain, sampled
proportionally by domain down to --max-bytes; special-token strings are cut out before counting.
Merge choice: highest pair count, ties broken by the smaller (left, right) token strings, so the
result is deterministic. Writes tokenizer.json and tokenizer_config.json (Qwen3 chat template).
"""
import argparse
import collections
import heapq
import json
import os
import sys
import time
import unicodedata

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from famq_bpe import (BYTE_TABLE, QWEN2_PATTERN, SPECIAL_FLAGS, SPECIALS, pretokenize,  # noqa: E402
                      split_specials, to_byte_symbols)

REPO = os.path.dirname(os.path.dirname(HERE))
QWEN3_TEMPLATE = os.path.join(REPO, "tests", "data", "chat_templates", "qwen3.jinja")


def read_samples(corpus, max_bytes):
    domains = sorted(d for d in os.listdir(corpus) if os.path.isfile(os.path.join(corpus, d, "train.jsonl")))
    sizes = {d: os.path.getsize(os.path.join(corpus, d, "train.jsonl")) for d in domains}
    total = sum(sizes.values())
    frac = min(1.0, max_bytes / total)
    info = {}
    for d in domains:
        n = used = 0
        with open(os.path.join(corpus, d, "train.jsonl"), encoding="utf-8") as f:
            for i, line in enumerate(f):
                if int((i + 1) * frac) == int(i * frac):  # even stride: every 1/frac-th document
                    continue
                text = json.loads(line)["text"]
                n += 1
                used += len(text.encode())
                yield text
        info[d] = {"documents": n, "bytes": used}
    read_samples.info = info


def count_words(corpus, max_bytes):
    words = collections.Counter()
    for text in read_samples(corpus, max_bytes):
        for special, chunk in split_specials(text):
            if special:
                continue
            words.update(pretokenize(unicodedata.normalize("NFC", chunk)))
    sym = collections.Counter()
    for w, c in words.items():
        sym[to_byte_symbols(w)] += c
    return sym


def train(word_counts, vocab_size, log_every=500):
    """Merges until the vocabulary holds vocab_size tokens. A merge whose result string already
    exists (e.g. "ab"+"c" after "a"+"bc") reuses that id, as Hugging Face's BPE trainer does."""
    tokens = list(BYTE_TABLE)  # id -> string
    tid = {t: i for i, t in enumerate(tokens)}
    words, counts = [], []
    for w, c in sorted(word_counts.items()):
        words.append([tid[ch] for ch in w])
        counts.append(c)
    pair_count = collections.defaultdict(int)
    where = collections.defaultdict(set)
    for wi, w in enumerate(words):
        c = counts[wi]
        for a, b in zip(w, w[1:]):
            pair_count[(a, b)] += c
            where[(a, b)].add(wi)
    heap = [(-c, tokens[a], tokens[b], a, b) for (a, b), c in pair_count.items()]
    heapq.heapify(heap)
    merges = []
    t0 = time.time()
    while len(tokens) < vocab_size and heap:
        negc, sa, sb, a, b = heapq.heappop(heap)
        cur = pair_count.get((a, b), 0)
        if cur <= 0:
            continue
        if cur != -negc:
            heapq.heappush(heap, (-cur, sa, sb, a, b))
            continue
        new = tid.get(sa + sb)
        if new is None:
            new = len(tokens)
            tokens.append(sa + sb)
            tid[sa + sb] = new
        merges.append((sa, sb))
        changed = set()
        for wi in sorted(where.pop((a, b), ())):
            w = words[wi]
            c = counts[wi]
            if len(w) < 2:
                continue
            for x, y in zip(w, w[1:]):
                pair_count[(x, y)] -= c
                changed.add((x, y))
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and w[i] == a and w[i + 1] == b:
                    out.append(new)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            words[wi] = out
            for x, y in zip(out, out[1:]):
                pair_count[(x, y)] += c
                where[(x, y)].add(wi)
                changed.add((x, y))
        pair_count.pop((a, b), None)
        for p in changed:
            c = pair_count.get(p, 0)
            if c > 0:
                heapq.heappush(heap, (-c, tokens[p[0]], tokens[p[1]], p[0], p[1]))
            else:
                pair_count.pop(p, None)
        if log_every and len(merges) % log_every == 0:
            print(f"[train_tokenizer] {len(merges)} merges, last {sa + sb!r} x{-negc} "
                  f"({time.time() - t0:.1f}s)", file=sys.stderr)
    return tokens, merges


def tokenizer_json(tokens, merges):
    vocab = {t: i for i, t in enumerate(tokens)}
    assert len(vocab) == len(tokens), "duplicate token strings"
    added = []
    for k, s in enumerate(SPECIALS):
        added.append({"id": len(tokens) + k, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
                      "normalized": False, "special": SPECIAL_FLAGS[s]})
    bl = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": QWEN2_PATTERN}, "behavior": "Isolated", "invert": False},
            dict(bl)]},
        "post_processor": dict(bl),
        "decoder": dict(bl),
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": [f"{a} {b}" for a, b in merges]},
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--vocab-size", type=int, default=4096, help="base bytes + merges (specials come after)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--max-bytes", type=int, default=48 << 20,
                    help="sample the train splits proportionally by domain down to about this many bytes")
    a = ap.parse_args()
    t0 = time.time()
    wc = count_words(a.corpus, a.max_bytes)
    print(f"[train_tokenizer] {len(wc)} distinct pre-tokens, {sum(wc.values())} in all, sample "
          f"{json.dumps(read_samples.info)} ({time.time() - t0:.1f}s)", file=sys.stderr)
    tokens, merges = train(wc, a.vocab_size)
    if len(tokens) != a.vocab_size:
        print(f"[train_tokenizer] warning: only {len(tokens)} tokens (ran out of pairs)", file=sys.stderr)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tokenizer_json(tokens, merges), f, ensure_ascii=False, indent=1)
        f.write("\n")
    with open(QWEN3_TEMPLATE, encoding="utf-8") as f:
        template = f.read()
    base = len(tokens)
    cfg = {
        "add_bos_token": False, "add_prefix_space": False, "bos_token": None, "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>", "unk_token": None, "model_max_length": 2048,
        "clean_up_tokenization_spaces": False, "errors": "replace", "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "added_tokens_decoder": {str(base + k): {"content": s, "lstrip": False, "normalized": False, "rstrip": False,
                                                 "single_word": False, "special": SPECIAL_FLAGS[s]}
                                 for k, s in enumerate(SPECIALS)},
        "chat_template": template,
    }
    with open(os.path.join(a.out, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(cfg, f, ensure_ascii=False, indent=2)
        f.write("\n")
    print(f"[train_tokenizer] {len(tokens)} tokens + {len(SPECIALS)} specials -> {a.out} "
          f"({time.time() - t0:.1f}s)", file=sys.stderr)


if __name__ == "__main__":
    main()
