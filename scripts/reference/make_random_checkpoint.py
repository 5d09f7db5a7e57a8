#!/usr/bin/env python3
"""Writes a seeded, randomly initialised small checkpoint in Hugging Face
layout (config.json, model.safetensors or shards, tokenizer.json,
tokenizer_config.json, generation_config.json) for famq's tests.

  make_random_checkpoint.py --out DIR [--arch qwen3|qwen2|llama] [--seed 0]
      [--dtype BF16|F16|F32] [--shards 1] [--hidden 64 --layers 2 --heads 4
      --kv-heads 2 --head-dim 16 --intermediate 160 --vocab 384] [--untied]
      [--tokenizer-json PATH]   # reuse a tokenizer instead of training one

Weights are drawn large enough that greedy decoding has clear margins, so
implementations that agree to 1e-5 also agree on every greedy token.
"""
import argparse
import collections
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hf_checkpoint import write_safetensors  # noqa: E402

ARCHS = {"qwen3": "Qwen3ForCausalLM", "qwen2": "Qwen2ForCausalLM", "llama": "LlamaForCausalLM"}
QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                 r"|\s*[\r\n]+|\s+(?!\S)|\s+")
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]
CHATML_TEMPLATE = (
    "{%- for message in messages %}{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}"
    "{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}"
    "{%- endif %}")
TRAINING_TEXT = """The quick brown fox jumps over the lazy dog. In the beginning was the word, and the word was
with the model. Quantization maps floating point weights to small integers; calibration picks the scales.
A family of models shares one tokenizer: the large member teaches the small ones. 12 + 34 = 46, so the
answer is 46. def main(): return 0 // int x = 1; for (int i = 0; i < n; ++i) { sum += i; }
"""


def bytes_to_unicode():
    """GPT-2's reversible byte -> printable character map used by byte-level BPE."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + \
        list(range(ord("\xae"), ord("\xff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def train_bpe(text, num_merges):
    """Plain byte-level BPE on whitespace-split words (enough for a test vocabulary)."""
    b2u = bytes_to_unicode()
    words = collections.Counter()
    for i, w in enumerate(text.split()):
        words[tuple(b2u[b] for b in ((" " if i else "") + w).encode())] += 1
    vocab = [b2u[b] for b in range(256)]
    merges = []
    for _ in range(num_merges):
        pairs = collections.Counter()
        for w, c in words.items():
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] += c
        if not pairs:
            break
        (a, b), _ = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))
        merges.append(f"{a} {b}")
        vocab.append(a + b)
        new = collections.Counter()
        for w, c in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and w[i] == a and w[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new[tuple(out)] += c
        words = new
    return vocab, merges


def make_tokenizer(vocab_size):
    vocab, merges = train_bpe(TRAINING_TEXT * 4, vocab_size - 256 - len(SPECIALS))
    ids = {tok: i for i, tok in enumerate(vocab)}
    added = []
    for s in SPECIALS:
        ids[s] = len(ids)
        added.append({"id": ids[s], "content": s, "single_word": False, "lstrip": False, "rstrip": False,
                      "normalized": False, "special": True})
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": QWEN2_PATTERN}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}]},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
        "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": {tok: i for tok, i in ids.items() if tok not in SPECIALS}, "merges": merges},
    }, ids


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--arch", choices=sorted(ARCHS), default="qwen3")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dtype", choices=["BF16", "F16", "F32"], default="BF16")
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--head-dim", type=int, default=16)
    ap.add_argument("--intermediate", type=int, default=160)
    ap.add_argument("--vocab", type=int, default=384)
    ap.add_argument("--tokenizer-size", type=int, default=0,
                    help="size of the trained tokenizer (default: --vocab); a smaller one leaves padded "
                         "rows as real Qwen3 checkpoints do (e.g. --vocab 151936 --tokenizer-size 512)")
    ap.add_argument("--max-positions", type=int, default=512)
    ap.add_argument("--untied", action="store_true")
    ap.add_argument("--tokenizer-json", help="use this tokenizer.json instead of training a tiny one")
    ap.add_argument("--weight-scale", type=float, default=1.0, help="multiplies the default init scales")
    a = ap.parse_args()

    os.makedirs(a.out, exist_ok=True)
    if a.tokenizer_json:
        with open(a.tokenizer_json) as f:
            tok = json.load(f)
        ids = dict(tok["model"]["vocab"])
        ids.update({t["content"]: t["id"] for t in tok.get("added_tokens", [])})
        a.vocab = max(a.vocab, max(ids.values()) + 1)
    else:
        if a.tokenizer_size > a.vocab:
            raise SystemExit("--tokenizer-size exceeds --vocab")
        tok, ids = make_tokenizer(a.tokenizer_size or a.vocab)
    eos = ids.get("<|im_end|>", ids.get("<|endoftext|>"))
    rng = np.random.default_rng(a.seed)
    H, hd, q, kv, ff = a.hidden, a.head_dim, a.heads * a.head_dim, a.kv_heads * a.head_dim, a.intermediate

    def lin(out_f, in_f):
        return rng.normal(0.0, a.weight_scale / np.sqrt(in_f), size=(out_f, in_f)).astype(np.float32)

    def norm(n):
        return 1.0 + 0.1 * rng.standard_normal(n)

    t = {"model.embed_tokens.weight": rng.normal(0.0, a.weight_scale, size=(a.vocab, H)).astype(np.float32),
         "model.norm.weight": norm(H)}
    if a.untied:
        t["lm_head.weight"] = rng.normal(0.0, a.weight_scale, size=(a.vocab, H)).astype(np.float32)
    for i in range(a.layers):
        p = f"model.layers.{i}."
        t[p + "input_layernorm.weight"] = norm(H)
        t[p + "post_attention_layernorm.weight"] = norm(H)
        t[p + "self_attn.q_proj.weight"] = lin(q, H)
        t[p + "self_attn.k_proj.weight"] = lin(kv, H)
        t[p + "self_attn.v_proj.weight"] = lin(kv, H)
        t[p + "self_attn.o_proj.weight"] = lin(H, q)
        t[p + "mlp.gate_proj.weight"] = lin(ff, H)
        t[p + "mlp.up_proj.weight"] = lin(ff, H)
        t[p + "mlp.down_proj.weight"] = lin(H, ff)
        if a.arch == "qwen2":
            for n, d in (("q", q), ("k", kv), ("v", kv)):
                t[p + f"self_attn.{n}_proj.bias"] = 0.1 * rng.standard_normal(d)
        if a.arch == "qwen3":
            t[p + "self_attn.q_norm.weight"] = norm(hd)
            t[p + "self_attn.k_norm.weight"] = norm(hd)

    names = sorted(t)
    if a.shards <= 1:
        write_safetensors(os.path.join(a.out, "model.safetensors"), t, a.dtype)
    else:
        weight_map = {}
        for s in range(a.shards):
            part = names[s::a.shards]
            fname = f"model-{s + 1:05d}-of-{a.shards:05d}.safetensors"
            write_safetensors(os.path.join(a.out, fname), {n: t[n] for n in part}, a.dtype)
            weight_map.update({n: fname for n in part})
        with open(os.path.join(a.out, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {}, "weight_map": weight_map}, f, indent=2)

    config = {
        "architectures": [ARCHS[a.arch]], "model_type": a.arch, "hidden_size": H, "intermediate_size": ff,
        "num_hidden_layers": a.layers, "num_attention_heads": a.heads, "num_key_value_heads": a.kv_heads,
        "head_dim": hd, "vocab_size": a.vocab, "max_position_embeddings": a.max_positions,
        "rope_theta": 10000.0 if a.arch != "qwen3" else 1000000.0, "rms_norm_eps": 1e-6,
        "tie_word_embeddings": not a.untied, "hidden_act": "silu", "attention_bias": a.arch == "qwen2",
        "bos_token_id": ids.get("<|endoftext|>"), "eos_token_id": eos, "torch_dtype": a.dtype.lower(),
        "famq_note": f"random weights, seed {a.seed}: a test fixture, not a language model",
    }
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    with open(os.path.join(a.out, "generation_config.json"), "w") as f:
        json.dump({"eos_token_id": [eos], "do_sample": False}, f, indent=2)
    with open(os.path.join(a.out, "tokenizer.json"), "w") as f:
        json.dump(tok, f, ensure_ascii=False, indent=1)
    with open(os.path.join(a.out, "tokenizer_config.json"), "w") as f:
        json.dump({"add_bos_token": False, "bos_token": None, "eos_token": "<|im_end|>",
                   "pad_token": "<|endoftext|>", "model_max_length": a.max_positions,
                   "chat_template": CHATML_TEMPLATE}, f, indent=2)


if __name__ == "__main__":
    main()
