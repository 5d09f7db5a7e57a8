#!/usr/bin/env python3
"""famq's PyTorch reference of the architectures famq-rt runs (Qwen3, Qwen2,
Llama): a direct float32 transcription of Hugging Face transformers'
modeling code (eager attention), loading the same Hugging Face directory.

  famq_ref.py logits   --model DIR --ids '[1,2,3]' --out ref.npy
  famq_ref.py generate --model DIR --ids '[1,2,3]' -n 32      # greedy, prints JSON ids
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hf_checkpoint import load_tensors  # noqa: E402


class Reference:
    def __init__(self, model_dir):
        with open(os.path.join(model_dir, "config.json")) as f:
            self.cfg = cfg = json.load(f)
        arch = cfg["architectures"][0]
        self.qk_norm = arch == "Qwen3ForCausalLM"
        self.bias = arch == "Qwen2ForCausalLM" or cfg.get("attention_bias", False)
        self.h = cfg["hidden_size"]
        self.nh = cfg["num_attention_heads"]
        self.nkv = cfg.get("num_key_value_heads", self.nh)
        self.hd = cfg.get("head_dim") or self.h // self.nh
        self.eps = cfg.get("rms_norm_eps", 1e-6)
        self.layers = cfg["num_hidden_layers"]
        self.w = {k: torch.from_numpy(v.copy()) for k, v in load_tensors(model_dir).items()}
        self.lm_head = self.w["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings") else self.w["lm_head.weight"]
        base = cfg.get("rope_theta", 10000.0)
        self.inv_freq = 1.0 / (base ** (torch.arange(0, self.hd, 2, dtype=torch.int64).float() / self.hd))
        rs = cfg.get("rope_scaling")
        if rs and (rs.get("rope_type") or rs.get("type")) == "llama3":
            self.inv_freq = self._llama3_scale(self.inv_freq, rs)

    @staticmethod
    def _llama3_scale(inv_freq, rs):
        factor, lo, hi = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
        old = rs["original_max_position_embeddings"]
        low_wavelen, high_wavelen = old / lo, old / hi
        wavelen = 2 * math.pi / inv_freq
        out = torch.where(wavelen > low_wavelen, inv_freq / factor, inv_freq)
        smooth = (old / wavelen - lo) / (hi - lo)
        smoothed = (1 - smooth) * out / factor + smooth * out
        medium = ~(wavelen < high_wavelen) * ~(wavelen > low_wavelen)
        return torch.where(medium, smoothed, out)

    def _rms(self, x, w):
        var = x.pow(2).mean(-1, keepdim=True)
        return w * (x * torch.rsqrt(var + self.eps))

    @staticmethod
    def _rotate_half(x):
        x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
        return torch.cat((-x2, x1), dim=-1)

    @torch.no_grad()
    def logits(self, ids):
        T = len(ids)
        x = self.w["model.embed_tokens.weight"][torch.tensor(ids)]  # [T, h]
        pos = torch.arange(T).float()
        freqs = pos[:, None] @ self.inv_freq[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos(), emb.sin()  # [T, hd]
        mask = torch.full((T, T), float("-inf")).triu(1)
        for i in range(self.layers):
            p = f"model.layers.{i}."
            w = lambda n: self.w[p + n]  # noqa: E731
            hn = self._rms(x, w("input_layernorm.weight"))

            def proj(name):
                y = hn @ w(f"self_attn.{name}.weight").T
                return y + w(f"self_attn.{name}.bias") if self.bias else y

            q = proj("q_proj").view(T, self.nh, self.hd).transpose(0, 1)
            k = proj("k_proj").view(T, self.nkv, self.hd).transpose(0, 1)
            v = proj("v_proj").view(T, self.nkv, self.hd).transpose(0, 1)
            if self.qk_norm:
                q = self._rms(q, w("self_attn.q_norm.weight"))
                k = self._rms(k, w("self_attn.k_norm.weight"))
            q = q * cos + self._rotate_half(q) * sin
            k = k * cos + self._rotate_half(k) * sin
            rep = self.nh // self.nkv
            k = k.repeat_interleave(rep, dim=0)
            v = v.repeat_interleave(rep, dim=0)
            att = (q @ k.transpose(1, 2)) * (self.hd ** -0.5) + mask
            att = torch.softmax(att, dim=-1, dtype=torch.float32)
            o = (att @ v).transpose(0, 1).reshape(T, self.nh * self.hd)
            x = x + o @ w("self_attn.o_proj.weight").T
            hn = self._rms(x, w("post_attention_layernorm.weight"))
            g = torch.nn.functional.silu(hn @ w("mlp.gate_proj.weight").T)
            x = x + (g * (hn @ w("mlp.up_proj.weight").T)) @ w("mlp.down_proj.weight").T
        x = self._rms(x, self.w["model.norm.weight"])
        return x @ self.lm_head.T

    def greedy(self, ids, n, stop=()):
        ids, out = list(ids), []
        for _ in range(n):
            nxt = int(torch.argmax(self.logits(ids)[-1]))
            out.append(nxt)
            ids.append(nxt)
            if nxt in stop:
                break
        return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["logits", "generate"])
    ap.add_argument("--model", required=True)
    ap.add_argument("--ids", required=True, help="JSON array of prompt token ids")
    ap.add_argument("--out", help="logits: output .npy")
    ap.add_argument("-n", type=int, default=32, help="generate: new tokens")
    ap.add_argument("--no-stop", action="store_true", help="generate: ignore eos tokens")
    a = ap.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    ref = Reference(a.model)
    ids = json.loads(a.ids)
    if a.command == "logits":
        np.save(a.out, ref.logits(ids).numpy().astype(np.float32))
    else:
        eos = ref.cfg.get("eos_token_id")
        stop = () if a.no_stop or eos is None else (eos if isinstance(eos, list) else [eos])
        print(json.dumps(ref.greedy(ids, a.n, stop)))


if __name__ == "__main__":
    main()
