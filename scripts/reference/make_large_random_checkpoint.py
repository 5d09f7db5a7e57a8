"""Random BF16 Qwen3 checkpoints at real shapes, streamed tensor by tensor.

  make_large_random_checkpoint.py 1.7b|4b|8b OUT_DIR

make_random_checkpoint.py holds every tensor in fp32 in memory (16 GB for
4B); this writes each tensor as it draws it (numpy normal, seed 0, scaled
1/sqrt(in); BF16 by truncation), so it needs little memory. The tokenizer
(512 trained tokens, vocab padded to 151,936 as Qwen3's) and the config come
from make_random_checkpoint.py; the shapes are Qwen3-1.7B / 4B / 8B's.
For benchmarks (docs/BENCHMARKS.md): the weights are noise.
"""
import json, os, struct, subprocess, sys
import numpy as np
repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHAPES = {  # hidden, layers, heads, kv_heads, head_dim, intermediate, tied
    "1.7b": (2048, 28, 16, 8, 128, 6144, True),
    "4b": (2560, 36, 32, 8, 128, 9728, True),
    "8b": (4096, 36, 32, 8, 128, 12288, False),
}
name, out = sys.argv[1], sys.argv[2]
H, L, nh, nkv, hd, ff, tied = SHAPES[name]
V = 151936
subprocess.check_call(["/usr/bin/python3", f"{repo}/scripts/reference/make_random_checkpoint.py", "--out", out,
                       "--vocab", str(V), "--tokenizer-size", "512", "--max-positions", "40960"]
                      + ([] if tied else ["--untied"]))
cfg = json.load(open(f"{out}/config.json"))
cfg.update(hidden_size=H, num_hidden_layers=L, num_attention_heads=nh, num_key_value_heads=nkv, head_dim=hd,
           intermediate_size=ff, tie_word_embeddings=tied)
json.dump(cfg, open(f"{out}/config.json", "w"), indent=2)
q, kv = nh * hd, nkv * hd
shapes = {"model.embed_tokens.weight": (V, H), "model.norm.weight": (H,)}
if not tied:
    shapes["lm_head.weight"] = (V, H)
for i in range(L):
    p = f"model.layers.{i}."
    shapes.update({p + "input_layernorm.weight": (H,), p + "post_attention_layernorm.weight": (H,),
                   p + "self_attn.q_proj.weight": (q, H), p + "self_attn.k_proj.weight": (kv, H),
                   p + "self_attn.v_proj.weight": (kv, H), p + "self_attn.o_proj.weight": (H, q),
                   p + "mlp.gate_proj.weight": (ff, H), p + "mlp.up_proj.weight": (ff, H),
                   p + "mlp.down_proj.weight": (H, ff), p + "self_attn.q_norm.weight": (hd,),
                   p + "self_attn.k_norm.weight": (hd,)})
header, off = {}, 0
for n in sorted(shapes):
    nb = int(np.prod(shapes[n])) * 2
    header[n] = {"dtype": "BF16", "shape": list(shapes[n]), "data_offsets": [off, off + nb]}
    off += nb
header["__metadata__"] = {"format": "pt"}
hj = json.dumps(header, separators=(",", ":")).encode()
hj += b" " * ((8 - len(hj) % 8) % 8)
rng = np.random.default_rng(0)
tmp = f"{out}/model.safetensors.tmp"
with open(tmp, "wb") as f:
    f.write(struct.pack("<Q", len(hj)))
    f.write(hj)
    for n in sorted(shapes):
        s = shapes[n]
        if len(s) == 1:
            x = (1.0 + 0.1 * rng.standard_normal(s[0], dtype=np.float32)).astype(np.float32)
            f.write((x.view(np.uint32) >> 16).astype(np.uint16).tobytes())
            continue
        scale = 1.0 if "embed" in n or "lm_head" in n else 1.0 / np.sqrt(s[1])
        rows = max(1, (1 << 24) // s[1])
        for r in range(0, s[0], rows):
            x = rng.standard_normal((min(rows, s[0] - r), s[1]), dtype=np.float32) * np.float32(scale)
            f.write((x.view(np.uint32) >> 16).astype(np.uint16).tobytes())
os.replace(tmp, f"{out}/model.safetensors")
print(name, "params", sum(int(np.prod(s)) for s in shapes.values()), "bytes", off)
