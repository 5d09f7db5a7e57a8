#!/usr/bin/env python3
"""Trains (or distils) one member of famq's tiny Qwen3 family on CPU.

  train.py --size l --tokens build/family/tokens --out build/family/runs/l --time-budget-min 120
  train.py --size m --tokens build/family/tokens --out build/family/runs/m --time-budget-min 60 \
      --teacher models/famq-tiny-l --kd-alpha 0.5 --kd-temp 2.0
  ... add --resume to continue a run from OUT/ckpt.pt (starts fresh if there is none).

Data: pretokenize.py's OUT/<domain>/train.npy; each row of a batch draws its
domain from --mix; text domains take a random window, reasoning rows pack whole
problems (document-aligned) whose difficulty follows a curriculum (easy first,
uniform over difficulties after --curriculum-frac of the run).

Schedule: linear warmup then cosine to --min-lr-frac * lr over the planned
steps: --max-steps, or derived from --time-budget-min and the throughput
measured over the first steps (re-planned, continuously, if the machine gets
slower or faster by more than 7%).

Outputs in OUT: ckpt.pt (atomic, every --ckpt-minutes, at the end and on
SIGTERM/SIGINT), config.json (model), train_log.jsonl, done.json when finished.
"""
import argparse
import json
import math
import os
import random
import signal
import sys
import time

# Busy-waiting OpenMP workers are ~7x slower when other processes share the
# cores (measured on the 2-core build machine); must be set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qwen3_model import Qwen3ForCausalLM, preset_config  # noqa: E402

DEFAULT_MIX = "reasoning=0.6,bible=0.09,dictionary=0.1,computing=0.1,fortunes=0.11"
DEFAULT_LR = {"s": 3e-3, "m": 2e-3, "l": 1.5e-3}


def parse_mix(s):
    out = {}
    for part in s.split(","):
        if part.strip():
            k, v = part.split("=")
            out[k.strip()] = float(v)
    return out


# ----------------------------------------------------------------------------- data
class Data:
    def __init__(self, tokens_dir, mix, seq_len, split="train"):
        with open(os.path.join(tokens_dir, "meta.json")) as f:
            self.meta = json.load(f)
        self.eot = self.meta["eot_id"]
        self.seq_len = seq_len
        self.streams, self.idx = {}, {}
        for dom in sorted(mix):
            p = os.path.join(tokens_dir, dom, f"{split}.npy")
            if mix[dom] <= 0:
                continue
            if not os.path.exists(p):
                print(f"warning: no {p}; domain {dom} dropped from the mix", file=sys.stderr)
                continue
            self.streams[dom] = np.load(p, mmap_mode="r")
            ix = np.load(os.path.join(tokens_dir, dom, f"{split}.idx.npz"))
            self.idx[dom] = {k: ix[k] for k in ix.files}
        if not self.streams:
            sys.exit("no training data found")
        self.domains = sorted(self.streams)
        w = np.array([mix[d] for d in self.domains], dtype=np.float64)
        self.probs = w / w.sum()
        # Domains with per-document difficulty are packed document-aligned with a curriculum.
        self.by_diff = {}
        for d in self.domains:
            diff = self.idx[d]["difficulty"]
            if (diff >= 0).any():
                levels = sorted(int(x) for x in np.unique(diff[diff >= 0]))
                self.by_diff[d] = (levels, [np.nonzero(diff == lv)[0] for lv in levels])

    def difficulty_weights(self, levels, progress, frac, beta):
        c = min(1.0, progress / frac) if frac > 0 else 1.0
        lo = levels[0]
        w = np.array([math.exp(-(1.0 - c) * beta * (lv - lo)) for lv in levels])
        return w / w.sum()

    def row(self, dom, rng, progress, cur_frac, cur_beta):
        n = self.seq_len + 1
        s = self.streams[dom]
        if dom not in self.by_diff:
            off = int(rng.integers(0, max(1, len(s) - n)))
            r = np.asarray(s[off:off + n], dtype=np.int64)
            if len(r) < n:  # tiny stream: pad with eot
                r = np.concatenate([r, np.full(n - len(r), self.eot, dtype=np.int64)])
            return r
        levels, groups = self.by_diff[dom]
        w = self.difficulty_weights(levels, progress, cur_frac, cur_beta)
        starts, lengths = self.idx[dom]["starts"], self.idx[dom]["lengths"]
        parts, have = [], 0
        while have < n:
            g = groups[int(rng.choice(len(levels), p=w))]
            j = int(g[int(rng.integers(0, len(g)))])
            a = int(starts[j])
            doc = np.asarray(s[a:a + int(lengths[j]) + 1], dtype=np.int64)  # includes trailing eot
            parts.append(doc)
            have += len(doc)
        return np.concatenate(parts)[:n]

    def batch(self, rows, rng, progress, cur_frac, cur_beta):
        doms = rng.choice(len(self.domains), size=rows, p=self.probs)
        x = np.stack([self.row(self.domains[int(d)], rng, progress, cur_frac, cur_beta) for d in doms])
        return torch.from_numpy(x)


def eval_slices(tokens_dir, domains, seq_len, rows):
    """A fixed validation slice per domain: `rows` windows of seq_len+1 tokens."""
    out = {}
    n = seq_len + 1
    for dom in domains:
        p = os.path.join(tokens_dir, dom, "valid.npy")
        if not os.path.exists(p):
            continue
        s = np.load(p)
        if len(s) < n:
            continue
        if len(s) < rows * n:
            offs = np.linspace(0, len(s) - n, rows).astype(np.int64)
        else:
            offs = np.arange(rows) * n  # contiguous from the start: document-aligned for reasoning
        out[dom] = torch.from_numpy(np.stack([s[o:o + n].astype(np.int64) for o in offs]))
    return out


# ----------------------------------------------------------------------------- schedule
class Schedule:
    """Warmup, then cosine over progress p in [0, 1]; p is piecewise linear in the
    step so that re-planning the total keeps the learning rate continuous."""

    def __init__(self, peak, min_frac, warmup):
        self.peak, self.min_lr, self.warmup = peak, peak * min_frac, warmup
        self.total = None         # planned number of steps
        self.anchor = (0, 0.0)    # (step, progress) where the current plan starts

    def plan(self, step, total):
        total = max(total, step + 1)
        if self.total is not None:
            self.anchor = (step, self.progress(step))
        elif self.warmup >= total:
            self.warmup = max(1, total // 10)
        self.total = total

    def progress(self, step):
        if self.total is None:
            return 0.0
        s0, p0 = self.anchor
        s0 = max(s0, self.warmup) if p0 == 0.0 else s0
        if step <= s0:
            return p0
        return min(1.0, p0 + (step - s0) / max(1, self.total - s0) * (1.0 - p0))

    def lr(self, step):
        if step < self.warmup:
            return self.peak * (step + 1) / self.warmup
        p = self.progress(step)
        return self.min_lr + (self.peak - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * p))

    def state_dict(self):
        return {"peak": self.peak, "min_lr": self.min_lr, "warmup": self.warmup, "total": self.total,
                "anchor": list(self.anchor)}

    def load_state_dict(self, d):
        self.peak, self.min_lr, self.warmup, self.total = d["peak"], d["min_lr"], d["warmup"], d["total"]
        self.anchor = tuple(d["anchor"])


# ----------------------------------------------------------------------------- losses
def kd_loss(student_logits, teacher_logits, T):
    V = student_logits.shape[-1]
    ls = F.log_softmax(student_logits.reshape(-1, V) / T, dim=-1)
    lt = F.log_softmax(teacher_logits.reshape(-1, V) / T, dim=-1)
    # KL(p_t || p_s), summed over the vocabulary, averaged over positions.
    return (lt.exp() * (lt - ls)).sum(-1).mean() * (T * T)


@torch.no_grad()
def evaluate(model, slices, teacher=None):
    model.eval()
    out = {}
    for dom, x in slices.items():
        tot, n = 0.0, 0
        for i in range(0, len(x), 4):
            b = x[i:i + 4]
            logits = model(b[:, :-1])
            tot += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), b[:, 1:].reshape(-1),
                                   reduction="sum").item()
            n += b[:, 1:].numel()
        out[dom] = round(tot / n, 4)
    model.train()
    return out


# ----------------------------------------------------------------------------- checkpoints
def save_ckpt(path, state):
    tmp = path + ".tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=["s", "m", "l"], required=True)
    ap.add_argument("--tokens", default="build/family/tokens")
    ap.add_argument("--out", required=True)
    ap.add_argument("--teacher", help="exported famq-tiny directory to distil from")
    ap.add_argument("--kd-alpha", type=float, default=0.5)
    ap.add_argument("--kd-temp", type=float, default=2.0)
    ap.add_argument("--time-budget-min", type=float, default=0.0, help="total training time (over resumes)")
    ap.add_argument("--max-steps", type=int, default=0, help="fixed number of steps (overrides the time plan)")
    ap.add_argument("--lr", type=float, default=0.0, help=f"peak learning rate (default {DEFAULT_LR})")
    ap.add_argument("--min-lr-frac", type=float, default=0.1)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--beta2", type=float, default=0.95)
    ap.add_argument("--grad-clip", type=float, default=1.0)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--batch-tokens", type=int, default=4096)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mix", default=DEFAULT_MIX, help="domain=weight,... (renormalised)")
    ap.add_argument("--curriculum-frac", type=float, default=0.5,
                    help="fraction of the run after which reasoning difficulties are sampled uniformly")
    ap.add_argument("--curriculum-beta", type=float, default=1.5,
                    help="at the start difficulty d is weighted exp(-beta*(d-1))")
    ap.add_argument("--eval-every", type=int, default=200, help="steps between validation passes")
    ap.add_argument("--eval-rows", type=int, default=8, help="validation windows per domain")
    ap.add_argument("--ckpt-minutes", type=float, default=5.0)
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--plan-after", type=int, default=8, help="steps timed before planning the run")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--resume", action="store_true", help="continue from OUT/ckpt.pt if it exists")
    a = ap.parse_args()

    if not a.time_budget_min and not a.max_steps:
        sys.exit("give --time-budget-min or --max-steps")
    torch.set_num_threads(a.threads)
    os.makedirs(a.out, exist_ok=True)
    ckpt_path = os.path.join(a.out, "ckpt.pt")
    log_path = os.path.join(a.out, "train_log.jsonl")

    mix = parse_mix(a.mix)
    data = Data(a.tokens, mix, a.seq_len)
    vocab = data.meta["vocab_size"]
    cfg = preset_config(a.size, vocab_size=vocab)
    rows = max(1, a.batch_tokens // a.seq_len)

    torch.manual_seed(a.seed)
    random.seed(a.seed)
    model = Qwen3ForCausalLM(cfg).init_weights(seed=a.seed)
    decay = [p for n, p in model.named_parameters() if not n.endswith("norm.weight")]
    no_decay = [p for n, p in model.named_parameters() if n.endswith("norm.weight")]
    peak = a.lr or DEFAULT_LR[a.size]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=peak, betas=(0.9, a.beta2), eps=1e-8)
    sched = Schedule(peak, a.min_lr_frac, a.warmup)
    rng = np.random.default_rng(a.seed + 1)
    step, elapsed, tokens_seen, rows_drawn = 0, 0.0, 0, 0

    teacher = None
    if a.teacher:
        teacher = Qwen3ForCausalLM.from_hf_dir(a.teacher).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        if teacher.config["vocab_size"] != vocab:
            sys.exit(f"teacher vocab {teacher.config['vocab_size']} != data vocab {vocab}")

    if a.resume and os.path.exists(ckpt_path):
        ck = torch.load(ckpt_path)
        if ck["config"] != cfg:
            sys.exit(f"{ckpt_path} holds a different model config: {ck['config']}")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["schedule"])
        rng.bit_generator.state = ck["data_rng"]
        torch.set_rng_state(ck["torch_rng"])
        random.setstate(ck["py_rng"])
        step, elapsed, tokens_seen, rows_drawn = ck["step"], ck["elapsed"], ck["tokens"], ck["rows_drawn"]
        print(f"resumed from {ckpt_path} at step {step} ({elapsed / 60:.1f} min trained, "
              f"planned {sched.total})", flush=True)
    elif a.resume:
        print(f"no {ckpt_path}: starting fresh", flush=True)

    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)

    print(f"famq-tiny-{a.size}: {model.num_parameters():,} parameters, {rows}x{a.seq_len} tokens/step, "
          f"lr {peak:g}, domains {dict(zip(data.domains, np.round(data.probs, 3).tolist()))}"
          + (f", distilling from {a.teacher} (alpha {a.kd_alpha}, T {a.kd_temp})" if teacher else ""), flush=True)

    if a.max_steps and sched.total is None:
        sched.plan(step, a.max_steps)
    budget = a.time_budget_min * 60.0
    slices = eval_slices(a.tokens, data.domains, a.seq_len, a.eval_rows)

    stop = {"sig": None}

    def on_signal(signum, frame):
        stop["sig"] = signum
        print(f"\nsignal {signum}: saving and exiting after this step", flush=True)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def state():
        return {"model": model.state_dict(), "optimizer": opt.state_dict(), "schedule": sched.state_dict(),
                "data_rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(), "py_rng": random.getstate(),
                "step": step, "elapsed": elapsed, "tokens": tokens_seen, "rows_drawn": rows_drawn,
                "config": cfg, "size": a.size, "args": vars(a)}

    logf = open(log_path, "a")

    def log(rec):
        logf.write(json.dumps(rec) + "\n")
        logf.flush()

    session_start = time.time()
    last_ckpt = time.time()
    plan_t0, plan_s0 = None, step    # timing window for (re)planning
    win_t0, win_tok, win_loss, win_n = time.time(), 0, 0.0, 0
    model.train()
    while True:
        if sched.total is not None and step >= sched.total:
            break
        if sched.total is None and budget and elapsed >= budget:
            break
        t0 = time.time()
        progress = sched.progress(step)
        lr = sched.lr(step)
        for g in opt.param_groups:
            g["lr"] = lr
        x = data.batch(rows, rng, progress, a.curriculum_frac, a.curriculum_beta)
        rows_drawn += rows
        inp, tgt = x[:, :-1], x[:, 1:]
        logits = model(inp)
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1))
        if teacher is not None:
            with torch.no_grad():
                tl = teacher(inp)
            kd = kd_loss(logits, tl, a.kd_temp)
            loss = (1 - a.kd_alpha) * ce + a.kd_alpha * kd
        else:
            kd = None
            loss = ce
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), a.grad_clip)
        opt.step()
        step += 1
        tokens_seen += inp.numel()
        dt = time.time() - t0
        elapsed += dt
        win_tok += inp.numel()
        win_loss += ce.item()
        win_n += 1

        # Planning from measured throughput (skip the first, slower steps).
        if step == 2:
            plan_t0, plan_s0 = time.time(), step
        if budget and not a.max_steps and plan_t0 is not None and step - plan_s0 >= a.plan_after:
            sps = (time.time() - plan_t0) / (step - plan_s0)
            want = step + int(max(0.0, budget - elapsed) / sps)
            if sched.total is None:
                sched.plan(step, want)
                print(f"planned {sched.total} steps ({sps:.2f} s/step, {rows * a.seq_len / sps:.0f} tok/s, "
                      f"warmup {sched.warmup})", flush=True)
                log({"step": step, "planned_steps": sched.total, "s_per_step": round(sps, 3)})
                plan_t0, plan_s0 = time.time(), step
            elif step - plan_s0 >= 50 and sched.progress(step) < 0.95:
                if abs(want - sched.total) > max(5, 0.07 * (sched.total - step)) and want > step:
                    print(f"re-planned {sched.total} -> {want} steps ({sps:.2f} s/step)", flush=True)
                    log({"step": step, "planned_steps": want, "s_per_step": round(sps, 3)})
                    sched.plan(step, want)
                plan_t0, plan_s0 = time.time(), step

        if step % a.log_every == 0:
            wdt = time.time() - win_t0
            rec = {"step": step, "loss": round(win_loss / win_n, 4), "lr": round(lr, 7),
                   "tok_s": round(win_tok / wdt, 1), "elapsed": round(elapsed, 1), "tokens": tokens_seen,
                   "gnorm": round(float(gnorm), 3)}
            if kd is not None:
                rec["kd"] = round(kd.item(), 4)
                rec["loss_total"] = round(loss.item(), 4)
            log(rec)
            if sched.total:
                left = (sched.total - step) * wdt / win_n
                eta = f"ETA {left / 60:.1f} min"
            else:
                eta = "planning"
            print(f"step {step}/{sched.total or '?'} loss {rec['loss']:.4f}"
                  + (f" kd {rec['kd']:.4f}" if kd is not None else "")
                  + f" lr {lr:.2e} {rec['tok_s']:.0f} tok/s {elapsed / 60:.1f} min {eta}", flush=True)
            win_t0, win_tok, win_loss, win_n = time.time(), 0, 0.0, 0

        if a.eval_every and step % a.eval_every == 0 and step != sched.total:
            te = time.time()
            ev = evaluate(model, slices)
            elapsed += time.time() - te
            log({"step": step, "eval": ev, "elapsed": round(elapsed, 1)})
            print(f"eval step {step}: {ev} ({time.time() - te:.1f} s)", flush=True)

        if stop["sig"] is not None or time.time() - last_ckpt >= a.ckpt_minutes * 60:
            save_ckpt(ckpt_path, state())
            last_ckpt = time.time()
            if stop["sig"] is not None:
                log({"step": step, "interrupted": True, "elapsed": round(elapsed, 1)})
                print(f"saved {ckpt_path} at step {step}; exiting", flush=True)
                sys.exit(128 + stop["sig"])

    ev = evaluate(model, slices)
    log({"step": step, "eval": ev, "elapsed": round(elapsed, 1), "final": True})
    print(f"final eval step {step}: {ev}", flush=True)
    save_ckpt(ckpt_path, state())
    with open(os.path.join(a.out, "done.json"), "w") as f:
        json.dump({"step": step, "tokens": tokens_seen, "elapsed_s": round(elapsed, 1), "eval": ev,
                   "session_s": round(time.time() - session_start, 1)}, f, indent=2)
    print(f"done: {step} steps, {tokens_seen:,} tokens, {elapsed / 60:.1f} min; {ckpt_path}", flush=True)


if __name__ == "__main__":
    main()
