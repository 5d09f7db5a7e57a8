"""Statistics of the FAQ experiment that can answer (issue 17): per cell
(target, setting, method), the gain of every source over the original data with
a paired design, a 95 % interval by a two-level paired bootstrap, a paired sign
test over seeds, and Holm's correction. Pure Python (no numpy: /usr/bin/python3
of Debian runs it); unit-tested by scripts/experiment/test_stats.py.

Data of one cell, from `famq eval --json` (window_nll / window_tokens per text
domain, the same windows for every model):
  fp       {domain: (nll[], tokens[])}                 the fp32 target
  by_seed  {seed: {source: {domain: (nll[], tokens[])}}}

Loss of a quantized model (as report.py): ppl loss = mean over the domains of
100 * (ppl_q / ppl_fp - 1) %, ppl = exp(sum nll / sum tokens) over the windows.

Paired design: in seed s every source was calibrated from the same draw of
originals (run.sh), and every model is evaluated on the same windows. Per seed
d_s = loss(original, s) - loss(source, s) (> 0: the source is better), and the
per-seed gain g_s = d_s / loss(original, s). The cell's statistics:
  delta = mean_s d_s                       (points of ppl loss %)
  gain  = delta / mean_s loss(original, s) ("gain of means": 1 - mean loss / mean loss)

Bootstrap (B replicates, random.Random(rng_seed)): each replicate draws S seeds
with replacement from the S seeds; for every drawn seed (a repeat draws again)
and every domain it draws that domain's W windows with replacement; the same
window indices serve the fp model, the original data's model and the source's
model of that seed (paired). Each source has its own replicates, from
random.Random(f"{rng_seed}:{source}"), so adding a source changes no other. delta and gain are
recomputed from the resampled losses; the interval is the 2.5 / 97.5 percentile
of the replicates; the bootstrap p-value is two-sided,
p = min(1, 2 * (1 + #{delta* <= 0 or >= 0, the smaller}) / (B + 1)).
"""
import math
import random


def mean_nll(nll, tok, idx=None):
    if idx is None:
        return sum(nll) / sum(tok)
    return sum(nll[i] for i in idx) / sum(tok[i] for i in idx)


def ppl_loss(fp, q, idx=None):
    """Mean over domains of 100 * (ppl_q / ppl_fp - 1); idx: {domain: window indices} or None (all)."""
    out = []
    for d in sorted(fp):
        i = None if idx is None else idx[d]
        out.append(100.0 * (math.exp(mean_nll(*q[d], i) - mean_nll(*fp[d], i)) - 1.0))
    return sum(out) / len(out)


def sign_test(diffs):
    """Two-sided exact sign test of the per-seed differences (ties, == 0, dropped): (p, positive, negative)."""
    pos = sum(1 for x in diffs if x > 0)
    neg = sum(1 for x in diffs if x < 0)
    n = pos + neg
    if n == 0:
        return 1.0, 0, 0
    k = min(pos, neg)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2.0 ** n
    return min(1.0, 2.0 * tail), pos, neg


def holm(pvalues):
    """Holm's step-down adjustment: {key: p} -> {key: adjusted p} (monotone, at most 1)."""
    keys = sorted(pvalues, key=lambda k: pvalues[k])
    m = len(keys)
    out, running = {}, 0.0
    for i, k in enumerate(keys):
        running = max(running, min(1.0, (m - i) * pvalues[k]))
        out[k] = running
    return out


def percentile(sorted_xs, q):
    """Linear interpolation between order statistics (numpy's default)."""
    if not sorted_xs:
        return float("nan")
    pos = q * (len(sorted_xs) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_xs) - 1)
    return sorted_xs[lo] + (sorted_xs[hi] - sorted_xs[lo]) * (pos - lo)


def cell_stats(fp, by_seed, sources, baseline="original", B=1000, rng_seed=20261207, alpha=0.05):
    """Statistics of every source against `baseline` in one cell (see the module comment).

    Seeds where the baseline or a source is missing are left out for that
    source. Returns {source: dict} with seeds, per-seed losses / differences /
    gains, delta, gain, their intervals, bootstrap p, sign test p."""
    domains = sorted(fp)
    windows = {d: len(fp[d][0]) for d in domains}
    for s, models in by_seed.items():
        for src, q in models.items():
            for d in domains:
                if len(q[d][0]) != windows[d]:
                    raise ValueError(f"seed {s} source {src} domain {d}: {len(q[d][0])} windows, fp has {windows[d]}")
    out = {}
    for src in sources:
        if src == baseline:
            continue
        rng = random.Random(f"{rng_seed}:{src}")
        seeds = sorted(s for s, m in by_seed.items() if baseline in m and src in m)
        if not seeds:
            continue
        base = [ppl_loss(fp, by_seed[s][baseline]) for s in seeds]
        loss = [ppl_loss(fp, by_seed[s][src]) for s in seeds]
        diffs = [b - x for b, x in zip(base, loss)]
        gains = [d / b if b != 0 else None for d, b in zip(diffs, base)]
        delta = sum(diffs) / len(diffs)
        mb = sum(base) / len(base)
        gain = delta / mb if mb > 0 else None
        deltas, gains_b = [], []
        for _ in range(B):
            drawn = [seeds[rng.randrange(len(seeds))] for _ in seeds]
            sb = sx = 0.0
            for s in drawn:
                idx = {d: [rng.randrange(windows[d]) for _ in range(windows[d])] for d in domains}
                sb += ppl_loss(fp, by_seed[s][baseline], idx)
                sx += ppl_loss(fp, by_seed[s][src], idx)
            deltas.append((sb - sx) / len(drawn))
            if sb > 0:
                gains_b.append((sb - sx) / sb)
        deltas.sort()
        gains_b.sort()
        below = sum(1 for x in deltas if x <= 0)
        above = sum(1 for x in deltas if x >= 0)
        p_boot = min(1.0, 2.0 * (1 + min(below, above)) / (B + 1))
        p_sign, pos, neg = sign_test(diffs)
        lo, hi = percentile(deltas, alpha / 2), percentile(deltas, 1 - alpha / 2)
        out[src] = {
            "seeds": seeds, "loss_baseline": base, "loss": loss, "diff": diffs, "gain_per_seed": gains,
            "delta": delta, "delta_ci": [lo, hi], "gain": gain,
            "gain_ci": ([percentile(gains_b, alpha / 2), percentile(gains_b, 1 - alpha / 2)]
                        if gain is not None and len(gains_b) == B else None),
            "p_boot": p_boot, "p_sign": p_sign, "sign": [pos, neg],
            "excludes_0": lo > 0 or hi < 0, "B": B, "rng_seed": rng_seed,
        }
    return out
