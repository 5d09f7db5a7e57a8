#!/usr/bin/env python3
"""A trainable Qwen3ForCausalLM in plain PyTorch (1.13), for famq's tiny test
family (famq-tiny-s/m/l).

Same semantics as scripts/reference/famq_ref.py (and Hugging Face's eager
Qwen3): RMSNorm w * x * rsqrt(mean(x^2) + eps), per-head q/k RMSNorm before
rotate_half RoPE, GQA via repeat_interleave, SwiGLU MLP, tied embeddings, no
biases. Parameter names are Hugging Face's, so `state_dict()` is exactly the
tensor set of model.safetensors (the tied lm_head is not a separate tensor).

  qwen3_model.py            # prints the presets and their exact parameter counts
"""
import json
import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

VOCAB = 4101  # 4096 BPE tokens + 5 specials (ids 4096..4100)

# head_dim 32 everywhere (as a real family shares head_dim); each member has
# at least twice the parameters of the one below (embeddings counted once).
PRESETS = {
    "s": dict(hidden_size=128, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
              head_dim=32, intermediate_size=384),
    "m": dict(hidden_size=192, num_hidden_layers=6, num_attention_heads=6, num_key_value_heads=2,
              head_dim=32, intermediate_size=512),
    "l": dict(hidden_size=256, num_hidden_layers=8, num_attention_heads=8, num_key_value_heads=4,
              head_dim=32, intermediate_size=768),
}
COMMON = dict(vocab_size=VOCAB, rope_theta=10000.0, rms_norm_eps=1e-6, max_position_embeddings=2048,
              tie_word_embeddings=True)


def preset_config(size, vocab_size=VOCAB):
    cfg = dict(COMMON)
    cfg.update(PRESETS[size])
    cfg["vocab_size"] = vocab_size
    return cfg


class RMSNorm(nn.Module):
    def __init__(self, n, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x):
        var = x.pow(2).mean(-1, keepdim=True)
        return self.weight * (x * torch.rsqrt(var + self.eps))


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def apply_rope(x, cos_h, sin_h):
    """x * cos + rotate_half(x) * sin with cos = cat(c, c), sin = cat(s, s), computed
    on the halves (bit-identical: x1*c + (-x2)*s == x1*c - x2*s) without the
    slice/neg/cat whose backward passes are slow on CPU."""
    x1, x2 = x.unflatten(-1, (2, x.shape[-1] // 2)).unbind(-2)
    return torch.stack((x1 * cos_h - x2 * sin_h, x2 * cos_h + x1 * sin_h), dim=-2).flatten(-2)


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        h, self.nh, self.nkv, self.hd = c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"]
        self.q_proj = nn.Linear(h, self.nh * self.hd, bias=False)
        self.k_proj = nn.Linear(h, self.nkv * self.hd, bias=False)
        self.v_proj = nn.Linear(h, self.nkv * self.hd, bias=False)
        self.o_proj = nn.Linear(self.nh * self.hd, h, bias=False)
        self.q_norm = RMSNorm(self.hd, c["rms_norm_eps"])
        self.k_norm = RMSNorm(self.hd, c["rms_norm_eps"])

    def forward(self, x, cos, sin, mask):
        B, T, _ = x.shape
        q = self.q_norm(self.q_proj(x).view(B, T, self.nh, self.hd)).transpose(1, 2)  # [B, nh, T, hd]
        k = self.k_norm(self.k_proj(x).view(B, T, self.nkv, self.hd)).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.nkv, self.hd).transpose(1, 2)
        q = apply_rope(q, cos, sin)
        k = apply_rope(k, cos, sin)
        rep = self.nh // self.nkv
        if rep > 1:  # == repeat_interleave(rep, dim=1), with a cheaper backward
            k = k[:, :, None].expand(B, self.nkv, rep, T, self.hd).reshape(B, self.nh, T, self.hd)
            v = v[:, :, None].expand(B, self.nkv, rep, T, self.hd).reshape(B, self.nh, T, self.hd)
        att = torch.matmul(q, k.transpose(-1, -2)) * (self.hd ** -0.5) + mask
        att = torch.softmax(att, dim=-1, dtype=torch.float32)
        o = torch.matmul(att, v).transpose(1, 2).reshape(B, T, self.nh * self.hd)
        return self.o_proj(o)


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        h, f = c["hidden_size"], c["intermediate_size"]
        self.gate_proj = nn.Linear(h, f, bias=False)
        self.up_proj = nn.Linear(h, f, bias=False)
        self.down_proj = nn.Linear(f, h, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.self_attn = Attention(c)
        self.mlp = MLP(c)
        self.input_layernorm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])
        self.post_attention_layernorm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])

    def forward(self, x, cos, sin, mask):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask)
        return x + self.mlp(self.post_attention_layernorm(x))


class Qwen3Model(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embed_tokens = nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.layers = nn.ModuleList(DecoderLayer(c) for _ in range(c["num_hidden_layers"]))
        self.norm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])


class Qwen3ForCausalLM(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = c = dict(config)
        if not c.get("tie_word_embeddings", True):
            raise ValueError("famq-tiny models tie their embeddings")
        self.model = Qwen3Model(c)
        hd, base = c["head_dim"], c.get("rope_theta", 10000.0)
        # Same arithmetic as famq_ref.py: int64 arange -> float, then pos @ inv_freq.
        self.inv_freq = 1.0 / (base ** (torch.arange(0, hd, 2, dtype=torch.int64).float() / hd))
        self._rope_cache = {}
        self._mask_cache = {}

    # -- helpers ---------------------------------------------------------------
    def _rope(self, T):
        if T not in self._rope_cache:
            pos = torch.arange(T).float()
            freqs = pos[:, None] @ self.inv_freq[None, :]
            emb = torch.cat((freqs, freqs), dim=-1)
            h = emb.shape[-1] // 2
            # halves of cos/sin (both halves are equal): [T, hd/2], broadcast over [B, nh, T, hd/2]
            self._rope_cache[T] = (emb.cos()[:, :h].contiguous(), emb.sin()[:, :h].contiguous())
        return self._rope_cache[T]

    def _mask(self, T):
        if T not in self._mask_cache:
            self._mask_cache[T] = torch.full((T, T), float("-inf")).triu(1)
        return self._mask_cache[T]

    def init_weights(self, seed=0, std=0.02):
        """GPT-2/HF style init: N(0, std) for projections and the tied embedding,
        residual output projections scaled by 1/sqrt(2 * layers), norms at 1."""
        g = torch.Generator().manual_seed(seed)
        L = self.config["num_hidden_layers"]
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name.endswith("norm.weight"):
                    p.fill_(1.0)
                elif name.endswith(("o_proj.weight", "down_proj.weight")):
                    p.copy_(torch.randn(p.shape, generator=g) * (std / math.sqrt(2 * L)))
                else:
                    p.copy_(torch.randn(p.shape, generator=g) * std)
        return self

    def num_parameters(self):
        return sum(p.numel() for p in self.parameters())

    # -- forward ---------------------------------------------------------------
    def hidden(self, ids):
        """ids: LongTensor [B, T] -> final normed hidden states [B, T, h]."""
        T = ids.shape[1]
        cos, sin = self._rope(T)
        mask = self._mask(T)
        x = self.model.embed_tokens(ids)
        for layer in self.model.layers:
            x = layer(x, cos, sin, mask)
        return self.model.norm(x)

    def forward(self, ids):
        """ids: LongTensor [B, T] (or [T]) -> logits [B, T, vocab] (or [T, vocab])."""
        squeeze = ids.dim() == 1
        if squeeze:
            ids = ids[None]
        logits = F.linear(self.hidden(ids), self.model.embed_tokens.weight)
        return logits[0] if squeeze else logits

    @torch.no_grad()
    def greedy(self, ids, n, stop=()):
        ids, out = list(ids), []
        for _ in range(n):
            nxt = int(torch.argmax(self(torch.tensor(ids))[-1]))
            out.append(nxt)
            ids.append(nxt)
            if nxt in stop:
                break
        return out

    # -- Hugging Face directories ---------------------------------------------
    @classmethod
    def from_hf_dir(cls, model_dir):
        """Loads an exported famq-tiny directory (config.json + model.safetensors)."""
        import sys
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
        from hf_checkpoint import load_tensors
        with open(os.path.join(model_dir, "config.json")) as f:
            hf = json.load(f)
        keys = ["vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                "num_key_value_heads", "head_dim", "rope_theta", "rms_norm_eps", "max_position_embeddings",
                "tie_word_embeddings"]
        m = cls({k: hf[k] for k in keys if k in hf})
        t = load_tensors(model_dir)
        sd = {k: torch.from_numpy(v.copy()) for k, v in t.items() if k != "lm_head.weight"}
        m.load_state_dict(sd, strict=True)
        return m


def param_count(size):
    return Qwen3ForCausalLM(preset_config(size)).num_parameters()


if __name__ == "__main__":
    prev = None
    for s in ("s", "m", "l"):
        c = preset_config(s)
        n = param_count(s)
        emb = c["vocab_size"] * c["hidden_size"]
        ratio = f"  ({n / prev:.2f}x the one below)" if prev else ""
        print(f"{s}: {n:,} parameters ({n - emb:,} non-embedding, {emb:,} tied embedding){ratio}  {PRESETS[s]}")
        prev = n
