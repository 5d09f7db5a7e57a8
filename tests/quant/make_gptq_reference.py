#!/usr/bin/python3
"""Writes the GPTQ golden of runtime/quant (tests/unit/quant_test.cc): a seeded
linear layer, its weighted Hessian, and what the reference GPTQ computes on it
for several configurations.

  /usr/bin/python3 tests/quant/make_gptq_reference.py [--out tests/data/quant]

The reference is a line-by-line torch port of `GPTQ.fasterquant` and
`Quantizer.find_params` (perchannel=True, mse=False) of IST-DASLab/gptq
(gptq.py, quant.py), with AutoGPTQ's `static_groups` branch (group parameters
from the original weights, per original contiguous group) used whenever
act_order meets a group size, as famq does. It runs in float64 (famq's C++
runs GPTQ in double; the reference's own float32 run is compared too and its
agreement is printed and recorded, for information).

Data: W [48][192] ~ N(0, 0.05) with a few larger rows; inputs X [512][192]
with correlated channels (a random mixing matrix), a few outlier channels,
and channel DEAD all zero (a dead column: H[DEAD][DEAD] == 0); per-token
weights random, 10% of them 0 (masked tokens). H = sum_t weight_t x_t x_t^T
is computed in float64 and stored as float32; the reference then runs on the
stored float32 values, exactly what the C++ test reads.

Output: gptq_golden.bin (little-endian arrays) + gptq_golden.json (manifest:
shapes, offsets, dtypes, configurations, the reference's loss per config).
Per config: codes, scales, zeros (unsigned), the quantization order, and each
code's tie flag: w / scale lay within TIE_MARGIN of the boundary between its
two nearest codes. A code at a tie (margin ~ 0: a symmetric group's negative
extreme lies exactly on -maxq / 2, a half-way point) can round either way in two
correct implementations, and GPTQ's error feedback then carries the
difference along the rest of that row; the test excuses exactly that.
"""
import argparse
import json
import os

import numpy as np
import torch

ROWS, COLS, TOKENS, DEAD, SEED = 48, 192, 512, 7, 20240611
# A code whose w / scale lies this close to a rounding boundary is a tie
# (float64 implementations differ by ~1e-15 there).
TIE_MARGIN = 1e-9

# name, bits, group (0 = per channel), sym, act_order, block_size, damp_percent
CONFIGS = [
    ("g32_asym_w4", 4, 32, False, False, 128, 0.01),
    ("g32_sym_w4", 4, 32, True, False, 128, 0.01),
    ("ch_asym_w4", 4, 0, False, False, 128, 0.01),
    ("ch_sym_w8", 8, 0, True, False, 128, 0.01),
    ("g32_asym_w4_act", 4, 32, False, True, 128, 0.01),
    ("g64_sym_w8_act", 8, 64, True, True, 128, 0.01),
    ("ch_asym_w4_act", 4, 0, False, True, 128, 0.01),
    ("g32_asym_w8_b64_damp10", 8, 32, False, False, 64, 0.1),
    # A group (64) that starts inside a lazy block (48) and runs past its end:
    # the reference fits it on W as it stands at the block's start.
    ("g64_asym_w4_b48", 4, 64, False, False, 48, 0.01),
]


class Quantizer:
    """quant.py's Quantizer with perchannel=True, weight=True, mse=False."""

    def __init__(self, bits, sym):
        self.maxq = 2 ** bits - 1
        self.sym = sym

    def find_params(self, x):
        tmp = torch.zeros(x.shape[0], dtype=x.dtype)
        xmin = torch.minimum(x.min(1)[0], tmp)
        xmax = torch.maximum(x.max(1)[0], tmp)
        if self.sym:
            xmax = torch.maximum(torch.abs(xmin), xmax)
            tmp = xmin < 0
            if torch.any(tmp):
                xmin[tmp] = -xmax[tmp]
        tmp = (xmin == 0) & (xmax == 0)
        xmin[tmp] = -1
        xmax[tmp] = +1
        self.scale = (xmax - xmin) / self.maxq
        if self.sym:
            self.zero = torch.full_like(self.scale, (self.maxq + 1) / 2)
        else:
            self.zero = torch.round(-xmin / self.scale)
        self.scale = self.scale.unsqueeze(1)
        self.zero = self.zero.unsqueeze(1)

    def quantize_codes(self, x):  # x: [rows, 1]
        return torch.clamp(torch.round(x / self.scale) + self.zero, 0, self.maxq)

    def tie_margin(self, x):
        """Distance of x / scale from the rounding boundary between the two
        nearest codes (0 = an exact tie); 0.5 where both clamp to one code."""
        v = x / self.scale
        fl = torch.floor(v)
        margin = torch.abs(v - (fl + 0.5))
        same = torch.clamp(fl + self.zero, 0, self.maxq) == torch.clamp(fl + 1 + self.zero, 0, self.maxq)
        return torch.where(same, torch.full_like(margin, 0.5), margin)


def fasterquant(W, H, bits, groupsize, sym, actorder, blocksize, percdamp):
    """gptq.py GPTQ.fasterquant (+ AutoGPTQ static_groups when actorder and
    groupsize): returns unsigned codes [rows][cols] (original column order),
    scales and zero points [rows][groups], the reference's loss sum, each
    code's tie margin (Quantizer.tie_margin, original column order) and the
    quantization order (perm)."""
    W = W.clone()
    H = H.clone()
    rows, columns = W.shape
    static_groups = actorder and groupsize != -1
    quantizer = Quantizer(bits, sym)
    quantizer.find_params(W)  # `if not self.quantizer.ready()`: before the dead columns
    channel_params = (quantizer.scale.clone(), quantizer.zero.clone())

    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0

    groups = []
    if static_groups:
        for i in range(0, columns, groupsize):
            q = Quantizer(bits, sym)
            q.find_params(W[:, i:(i + groupsize)])
            groups.append(q)

    if actorder:
        perm = torch.argsort(torch.diag(H), descending=True)
        W = W[:, perm]
        H = H[perm][:, perm]
        invperm = torch.argsort(perm)

    else:
        perm = torch.arange(columns)

    Losses = torch.zeros_like(W)
    Qint = torch.zeros_like(W)
    Margin = torch.zeros_like(W)

    damp = percdamp * torch.mean(torch.diag(H))
    diag = torch.arange(columns)
    H[diag, diag] += damp
    H = torch.linalg.cholesky(H)
    H = torch.cholesky_inverse(H)
    H = torch.linalg.cholesky(H, upper=True)
    Hinv = H

    ngroups = columns // groupsize if groupsize != -1 else 1
    scales = torch.zeros(rows, ngroups, dtype=W.dtype)
    zeros = torch.zeros(rows, ngroups, dtype=W.dtype)
    if groupsize == -1:
        scales[:, 0:1], zeros[:, 0:1] = channel_params
    if static_groups:
        for g, q in enumerate(groups):
            scales[:, g:g + 1], zeros[:, g:g + 1] = q.scale, q.zero

    for i1 in range(0, columns, blocksize):
        i2 = min(i1 + blocksize, columns)
        count = i2 - i1
        W1 = W[:, i1:i2].clone()
        Q1 = torch.zeros_like(W1)
        Qint1 = torch.zeros_like(W1)
        Err1 = torch.zeros_like(W1)
        Losses1 = torch.zeros_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]

        for i in range(count):
            w = W1[:, i]
            d = Hinv1[i, i]
            if groupsize != -1:
                if not static_groups:
                    if (i1 + i) % groupsize == 0:
                        quantizer.find_params(W[:, (i1 + i):(i1 + i + groupsize)])
                        g = (i1 + i) // groupsize
                        scales[:, g:g + 1], zeros[:, g:g + 1] = quantizer.scale, quantizer.zero
                else:
                    idx = i1 + i
                    if actorder:
                        idx = perm[idx]
                    quantizer = groups[idx // groupsize]
            qi = quantizer.quantize_codes(w.unsqueeze(1))
            q = (quantizer.scale * (qi - quantizer.zero)).flatten()
            Qint1[:, i] = qi.flatten()
            Margin[:, i1 + i] = quantizer.tie_margin(w.unsqueeze(1)).flatten()
            Q1[:, i] = q
            Losses1[:, i] = (w - q) ** 2 / d ** 2
            err1 = (w - q) / d
            W1[:, i:] -= err1.unsqueeze(1).matmul(Hinv1[i, i:].unsqueeze(0))
            Err1[:, i] = err1

        Qint[:, i1:i2] = Qint1
        Losses[:, i1:i2] = Losses1 / 2
        W[:, i2:] -= Err1.matmul(Hinv[i1:i2, i2:])

    if actorder:
        Qint = Qint[:, invperm]
        Margin = Margin[:, invperm]
    return Qint, scales, zeros, torch.sum(Losses).item(), Margin, perm


def make_data():
    rng = np.random.default_rng(SEED)
    mix = np.eye(COLS) + rng.normal(0, 0.6 / np.sqrt(COLS), (COLS, COLS))
    mix += 0.8 * np.outer(rng.normal(size=COLS), rng.normal(size=COLS)) / COLS  # a shared direction
    x = rng.normal(size=(TOKENS, COLS)) @ mix
    x[:, [11, 50, 133]] *= 8.0  # outlier channels
    x[:, DEAD] = 0.0
    weights = rng.uniform(0.2, 1.0, TOKENS)
    weights[rng.uniform(size=TOKENS) < 0.1] = 0.0
    weights /= weights.sum()
    h = (x * weights[:, None]).T @ x
    w = rng.normal(0, 0.05, (ROWS, COLS))
    w[[3, 17], :] *= 4.0
    return w.astype(np.float32), h.astype(np.float32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "quant"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(1)

    w32, h32 = make_data()
    blob = bytearray()
    arrays = {}

    def put(name, array, dtype):
        a = np.ascontiguousarray(array.astype({"f32": "<f4", "u8": "u1"}[dtype]))
        arrays[name] = {"offset": len(blob), "dtype": dtype, "shape": list(a.shape)}
        blob.extend(a.tobytes())

    put("w", w32, "f32")
    put("h", h32, "f32")
    configs = []
    for name, bits, group, sym, act, block, damp in CONFIGS:
        runs = {}
        for dtype in (torch.float64, torch.float32):
            runs[dtype] = fasterquant(torch.from_numpy(w32).to(dtype), torch.from_numpy(h32).to(dtype), bits,
                                      group if group else -1, sym, act, block, damp)
        codes, scales, zeros, loss, margin, perm = runs[torch.float64]
        agree = float((runs[torch.float32][0] == codes).double().mean())
        print(f"{name}: loss {loss:.6g}; float32 reference codes agree with float64 on {100 * agree:.3f}%")
        put(name + ".codes", codes.numpy(), "u8")
        put(name + ".scales", scales.numpy(), "f32")
        put(name + ".zeros", zeros.numpy(), "u8")
        put(name + ".tie", (margin < TIE_MARGIN).numpy(), "u8")
        put(name + ".order", perm.numpy(), "f32")
        print(f"{name}: {int((margin < TIE_MARGIN).sum())} codes within {TIE_MARGIN} of a rounding tie")
        configs.append({"name": name, "bits": bits, "group_size": group, "symmetric": sym, "act_order": act,
                        "block_size": block, "damp_percent": damp, "loss": loss,
                        "fp32_reference_code_agreement": agree})

    with open(os.path.join(args.out, "gptq_golden.bin"), "wb") as f:
        f.write(blob)
    with open(os.path.join(args.out, "gptq_golden.json"), "w") as f:
        json.dump({"generator": "tests/quant/make_gptq_reference.py", "seed": SEED, "rows": ROWS, "cols": COLS,
                   "dead_column": DEAD, "tie_margin": TIE_MARGIN, "arrays": arrays, "configs": configs}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
