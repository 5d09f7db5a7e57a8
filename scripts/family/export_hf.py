#!/usr/bin/env python3
"""Exports a famq-tiny training run as a Hugging Face Qwen3 directory and
verifies it against famq's PyTorch reference and (if built) famq-rt.

  export_hf.py --run build/family/runs/l --tokenizer DIR --out models/famq-tiny-l \
      [--famq-rt build/host/runtime/tools/famq-rt/famq-rt] [--name famq-tiny-l]

Writes config.json, model.safetensors (BF16, round to nearest even),
generation_config.json, tokenizer.json, tokenizer_config.json and training.json
(the run's arguments, steps, tokens, time and final validation losses). The check
runs the training model with BF16-rounded weights on a sample and requires
famq_ref.py's and famq-rt's logits to match it (max |diff| / max |logit| <= 1e-4
for the reference; famq-rt is reported, and must be within --rt-tol).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
from qwen3_model import Qwen3ForCausalLM  # noqa: E402
from hf_checkpoint import to_bf16_bits, write_safetensors  # noqa: E402
from famq_ref import Reference  # noqa: E402


def bf16_round(x):
    return (to_bf16_bits(x).astype(np.uint32) << 16).view(np.float32)


def rel_err(a, b):
    return float(np.abs(a - b).max() / max(1e-30, float(np.abs(b).max())))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, help="training run directory holding ckpt.pt")
    ap.add_argument("--tokenizer", required=True, help="directory with tokenizer.json and tokenizer_config.json")
    ap.add_argument("--out", required=True)
    ap.add_argument("--name", help="model name recorded in config.json (default: basename of --out)")
    ap.add_argument("--famq-rt", default="build/host/runtime/tools/famq-rt/famq-rt")
    ap.add_argument("--max-positions", type=int, default=2048)
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--rt-tol", type=float, default=1e-4,
                    help="famq-rt computes in its own precision/order; report and require this bound")
    ap.add_argument("--sample-tokens", type=int, default=64)
    a = ap.parse_args()
    torch.set_num_threads(2)

    ck = torch.load(os.path.join(a.run, "ckpt.pt"), map_location="cpu")
    cfg = ck["config"]
    with open(os.path.join(a.tokenizer, "tokenizer.json")) as f:
        tok = json.load(f)
    specials = {t["content"]: t["id"] for t in tok.get("added_tokens", [])}
    tok_vocab = max(list(tok["model"]["vocab"].values()) + list(specials.values())) + 1
    if tok_vocab != cfg["vocab_size"]:
        sys.exit(f"tokenizer has {tok_vocab} ids but the model {cfg['vocab_size']}")
    eot, im_end = specials["<|endoftext|>"], specials["<|im_end|>"]

    os.makedirs(a.out, exist_ok=True)
    tensors = {k: v.detach().float().numpy() for k, v in ck["model"].items()}
    write_safetensors(os.path.join(a.out, "model.safetensors"), tensors, "BF16")
    config = {
        "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3",
        "hidden_size": cfg["hidden_size"], "intermediate_size": cfg["intermediate_size"],
        "num_hidden_layers": cfg["num_hidden_layers"], "num_attention_heads": cfg["num_attention_heads"],
        "num_key_value_heads": cfg["num_key_value_heads"], "head_dim": cfg["head_dim"],
        "vocab_size": cfg["vocab_size"], "max_position_embeddings": a.max_positions,
        "rope_theta": cfg["rope_theta"], "rms_norm_eps": cfg["rms_norm_eps"], "tie_word_embeddings": True,
        "hidden_act": "silu", "attention_bias": False, "attention_dropout": 0.0, "initializer_range": 0.02,
        "use_cache": True, "use_sliding_window": False, "sliding_window": None, "max_window_layers":
        cfg["num_hidden_layers"], "rope_scaling": None,
        "bos_token_id": eot, "eos_token_id": im_end, "torch_dtype": "bfloat16",
        "famq_note": f"{a.name or os.path.basename(os.path.normpath(a.out))}: famq's tiny test family, trained "
                     f"for {ck['step']} steps / {ck['tokens']:,} tokens",
    }
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    with open(os.path.join(a.out, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": eot, "eos_token_id": [im_end, eot], "pad_token_id": eot,
                   "do_sample": False}, f, indent=2)
    # Provenance for the model card: the training command's arguments and what it did.
    done_path = os.path.join(a.run, "done.json")
    done = json.load(open(done_path)) if os.path.exists(done_path) else {}
    args = dict(ck.get("args", {}))
    with open(os.path.join(a.out, "training.json"), "w") as f:
        json.dump({"size": ck.get("size"), "parameters": int(sum(v.size for v in tensors.values())),
                   "steps": ck["step"], "tokens": ck["tokens"], "train_seconds": round(ck["elapsed"], 1),
                   "session_seconds": done.get("session_s"), "final_val_loss": done.get("eval"),
                   "teacher": os.path.basename(os.path.normpath(args["teacher"])) if args.get("teacher") else None,
                   "args": args}, f, indent=2)
        f.write("\n")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        src = os.path.join(a.tokenizer, name)
        if os.path.exists(src):
            shutil.copyfile(src, os.path.join(a.out, name))
        else:
            print(f"warning: {src} missing", file=sys.stderr)
    print(f"wrote {a.out} ({sum(v.size for v in tensors.values()):,} parameters, step {ck['step']})")

    # --- verification ----------------------------------------------------------
    model = Qwen3ForCausalLM(cfg)
    model.load_state_dict({k: torch.from_numpy(bf16_round(v)) for k, v in tensors.items()}, strict=True)
    model.eval()
    rng = np.random.default_rng(0)
    ids = [specials.get("<|im_start|>", eot)] + rng.integers(0, min(tok_vocab, 4096), a.sample_tokens - 1).tolist()
    with torch.no_grad():
        want = model(torch.tensor(ids)).numpy()
    ref = Reference(a.out).logits(ids).numpy()
    e = rel_err(ref, want)
    print(f"famq_ref.py vs training model (BF16 weights): max rel err {e:.2e} (tol {a.tol:g})")
    ok = e <= a.tol
    # The exported directory reloads into the training class bit-exactly.
    re = Qwen3ForCausalLM.from_hf_dir(a.out).eval()
    with torch.no_grad():
        e2 = rel_err(re(torch.tensor(ids)).numpy(), want)
    print(f"reloaded export vs training model: max rel err {e2:.2e}")
    ok = ok and e2 == 0.0
    if os.access(a.famq_rt, os.X_OK):
        with tempfile.TemporaryDirectory() as td:
            out = os.path.join(td, "rt.npy")
            subprocess.run([a.famq_rt, "logits", "--model", a.out, "--prompt-ids", json.dumps(ids), "--out", out,
                            "--threads", "2"], check=True, stdout=subprocess.DEVNULL)
            rt = np.load(out).reshape(len(ids), -1)[:, :cfg["vocab_size"]]
        e3 = rel_err(rt, want)
        agree = float((rt.argmax(-1) == want.argmax(-1)).mean())
        print(f"famq-rt logits vs training model: max rel err {e3:.2e} (tol {a.rt_tol:g}), argmax agreement "
              f"{agree:.3f}")
        ok = ok and e3 <= a.rt_tol
    else:
        print(f"{a.famq_rt} not built: famq-rt check skipped")
    if not ok:
        sys.exit("export verification FAILED")
    print("export verified")


if __name__ == "__main__":
    main()
