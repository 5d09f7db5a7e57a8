#!/usr/bin/python3
"""Report of the FAQ experiment (scripts/experiment/run.sh): tables of accuracy
loss and FAQ gain with their spread over seeds, a JSON of every number, and
SVG plots.

  /usr/bin/python3 scripts/experiment/report.py OUT [--write docs/RESULTS.md]

OUT is run.sh's output directory (results/, coverage/, timing.txt,
config.conf). Without --write the report goes to OUT/report/RESULTS.md; with
it, to the given file, its JSON and plots to results/ beside it.
Hand-written findings are taken from scripts/experiment/findings.md (and the
hand-run W3/W2 section from scripts/experiment/lowbits.md) when they exist
and the report is the full grid (--write).

Definitions (docs/DESIGN.md §7): loss = quantized metric vs fp32 metric of the same
target, signed so that larger is worse:
  ppl loss    = mean over the text domains of 100 * (ppl_q / ppl_fp - 1)   [%]
  top-1 loss  = mean over the text domains of 100 * (acc_fp - acc_q)       [points]
  reasoning   = 100 * (exact_fp - exact_q)                                 [points]
FAQ gain = 1 - loss(source) / loss(original), per seed (same draw of the
originals), then mean and standard deviation over seeds.
"""
import argparse
import json
import math
import os
import re
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stats  # noqa: E402  (scripts/experiment/stats.py)

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

SOURCE_LABELS = {
    "original": "original",
    "self": "self",
    "faq": "FAQ",
    "faq-nocompete": "FAQ − compete",
    "faq-norenorm": "FAQ − renorm",
    "faq-nocot": "FAQ − CoT cue",
    "faq-longp": "FAQ, P = 160",
    "faq-cool": "FAQ, T = 0.5",
    "faq-base": "FAQ, base template",
    "oracle": "oracle (mixture originals)",
}
METHOD_LABELS = {
    "rtn": "RTN W4 g32",
    "gptq": "GPTQ W4 g32",
    "awq": "AWQ W4 g32",
    "smoothquant": "SmoothQuant W8A8",
    "minmax": "W8A8 min-max",
    "gptq-ch": "GPTQ W4 per-channel",
    "rtn-w3": "RTN W3 g128",
    "rtn-w2": "RTN W2 g64",
    "gptq-w3": "GPTQ W3 g128",
    "awq-w3": "AWQ W3 g128",
    "gptq-w2": "GPTQ W2 g64",
}


def is_floor(method):
    """RTN reads no data: run once per target, not per source (run.sh)."""
    return method == "rtn" or method.startswith("rtn-")
METRICS = {"ppl": "ppl loss (%)", "top1": "top-1 loss (points)", "reasoning": "reasoning loss (points)"}
# A mean loss of the original data below this (in the metric's unit) is within
# what the evaluation resolves: gains against it are not reported as numbers.
RESOLUTION = {"ppl": 0.02, "top1": 0.02, "reasoning": 1.0}


def source_label(src):
    if src in SOURCE_LABELS:
        return SOURCE_LABELS[src]
    return "FAQ " + src[4:] if src.startswith("faq-") else src


def read_conf(path):
    conf = {}
    for line in open(path, encoding="utf-8"):
        m = re.match(r'^(\w+)=("([^"]*)"|(\S*))', line)
        if m:
            conf[m.group(1)] = m.group(3) if m.group(3) is not None else m.group(4)
    return conf


def losses(q, fp):
    dom = sorted(fp["text"])
    ppl = statistics.mean(100.0 * (q["text"][d]["ppl"] / fp["text"][d]["ppl"] - 1.0) for d in dom)
    top1 = statistics.mean(100.0 * (fp["text"][d]["top1_accuracy"] - q["text"][d]["top1_accuracy"]) for d in dom)
    out = {"ppl": ppl, "top1": top1}
    if fp.get("reasoning") and q.get("reasoning"):
        out["reasoning"] = 100.0 * (fp["reasoning"]["accuracy"] - q["reasoning"]["accuracy"])
    out["ppl_by_domain"] = {d: 100.0 * (q["text"][d]["ppl"] / fp["text"][d]["ppl"] - 1.0) for d in dom}
    return out


def mean_sd(xs):
    xs = [x for x in xs if x is not None and math.isfinite(x)]
    if not xs:
        return None, None
    return statistics.mean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def fmt(m, sd, digits=2, pct=False):
    if m is None:
        return "–"
    if pct:
        return f"{100 * m:+.0f}% ± {100 * sd:.0f}"
    return f"{m:.{digits}f} ± {sd:.{digits}f}"


def load(out):
    runs, fps = [], {}
    rdir = os.path.join(out, "results")
    for t in sorted(os.listdir(rdir)):
        for f in sorted(os.listdir(os.path.join(rdir, t))):
            r = json.load(open(os.path.join(rdir, t, f)))
            if r["method"] == "fp":
                fps[t] = r
            else:
                runs.append(r)
    for r in runs:
        r["loss"] = losses(r["eval"], fps[r["target"]]["eval"])
    return runs, fps


def aggregate(runs, conf):
    targets = conf["targets"].split()
    settings = [s.split(":")[0] for s in conf["settings"].split()]
    sources = conf["sources"].split()
    methods = [m for m in conf["methods"].split() if not is_floor(m)]
    seeds = [int(s) for s in conf["seeds"].split()]
    by = {(r["target"], r["setting"], r["seed"], r["source"], r["method"]): r for r in runs}
    agg = []
    for t in targets:
        for s in settings:
            for m in methods:
                for src in sources:
                    row = {"target": t, "setting": s, "method": m, "source": src}
                    for k in METRICS:
                        vals = [by[(t, s, e, src, m)]["loss"].get(k) for e in seeds if (t, s, e, src, m) in by]
                        base = [by[(t, s, e, "original", m)]["loss"].get(k) for e in seeds if (t, s, e, "original", m) in by]
                        row[k] = mean_sd(vals)
                        row[k + "_n"] = len([v for v in vals if v is not None])
                        gains = []
                        for e in seeds:
                            a, b = by.get((t, s, e, src, m)), by.get((t, s, e, "original", m))
                            if a and b and a["loss"].get(k) is not None and b["loss"].get(k):
                                gains.append(1.0 - a["loss"][k] / b["loss"][k])
                        bm = mean_sd(base)[0]
                        resolved = bm is not None and bm >= RESOLUTION[k]
                        row[k + "_gain"] = mean_sd(gains) if (src != "original" and resolved) else (None, None)
                        row[k + "_gain_of_means"] = (
                            1.0 - row[k][0] / bm if (src != "original" and resolved and row[k][0] is not None) else None)
                    agg.append(row)
    return agg


def cell(agg, target, setting, method, source):
    return next(r for r in agg if (r["target"], r["setting"], r["method"], r["source"]) ==
                (target, setting, method, source))


def metric_tables(L, agg, settings, targets, methods, sources, key, digits, suffix=""):
    """One table per setting: rows (target, method), columns sources, mean ± sd of `key`."""
    for s in settings:
        lab = s.split(":")[0]
        L.append(f"**{lab}{suffix}**\n")
        L.append("| target | method | " + " | ".join(source_label(x) for x in sources) + " |")
        L.append("|---|---|" + "---|" * len(sources))
        for t in targets:
            for m in methods:
                cells = [fmt(*cell(agg, t, lab, m, src)[key], digits=digits) for src in sources]
                L.append(f"| {t} | {METHOD_LABELS.get(m, m)} | " + " | ".join(cells) + " |")
        L.append("")


def read_timing(out):
    """Seconds per phase, summed over the runs that wrote OUT/timing.txt (resumed runs add up)."""
    timing = {}
    path = os.path.join(out, "timing.txt")
    if os.path.exists(path):
        for line in open(path):
            k, v = line.split()
            timing[k] = timing.get(k, 0) + int(v)
    timing["total"] = sum(timing.values())
    return timing


def svg_loss(agg, conf, path):
    import matplotlib
    matplotlib.use("Agg")
    matplotlib.rcParams["svg.hashsalt"] = "famq"  # reproducible ids: the same numbers give the same file
    import matplotlib.pyplot as plt
    targets = conf["targets"].split()
    settings = [s.split(":")[0] for s in conf["settings"].split()]
    sources = conf["sources"].split()
    methods = [m for m in conf["methods"].split() if not is_floor(m)]
    fig, axes = plt.subplots(len(targets), len(settings), figsize=(6.5 * len(settings), 3.6 * len(targets)),
                             squeeze=False)
    width = 0.8 / len(sources)
    for i, t in enumerate(targets):
        for j, s in enumerate(settings):
            ax = axes[i][j]
            for k, src in enumerate(sources):
                ms, sds = [], []
                for m in methods:
                    row = cell(agg, t, s, m, src)
                    ms.append(row["ppl"][0] or 0.0)
                    sds.append(row["ppl"][1] or 0.0)
                xs = [x + (k - (len(sources) - 1) / 2) * width for x in range(len(methods))]
                ax.bar(xs, ms, width, yerr=sds, capsize=2, label=source_label(src))
            ax.set_xticks(range(len(methods)))
            ax.set_xticklabels([METHOD_LABELS.get(m, m) for m in methods], fontsize=7)
            ax.set_title(f"{t}, {s} calibration", fontsize=9)
            ax.set_ylabel("ppl loss vs fp32 (%)", fontsize=8)
            ax.axhline(0, color="black", linewidth=0.5)
            ax.grid(axis="y", alpha=0.3)
    axes[0][0].legend(fontsize=7, ncol=2)
    fig.suptitle("Perplexity loss by method and calibration source (mean ± sd over seeds; lower is better)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, format="svg", metadata={"Date": None})
    plt.close(fig)


def window_data(ev):
    """{domain: (window_nll, window_tokens)} of a famq eval result, or None (an eval without per-window output)."""
    text = ev.get("text", {})
    if not text or not all("window_nll" in v and "window_tokens" in v for v in text.values()):
        return None
    return {d: (v["window_nll"], v["window_tokens"]) for d, v in text.items()}


def answer_stats(runs, fps, conf):
    """Per cell and source, stats.cell_stats against the original data; Holm over the
    non-primary cells (bootstrap p). None when the results lack per-window NLL."""
    targets = conf["targets"].split()
    settings = [x.split(":")[0] for x in conf["settings"].split()]
    sources = conf["sources"].split()
    methods = [m for m in conf["methods"].split() if not is_floor(m)]
    primary = set(conf.get("primary", "").split())
    B = int(conf.get("bootstrap", "1000") or 1000)
    rng_seed = int(conf.get("bootstrap_seed", "20261207") or 20261207)
    cells = []
    for t in targets:
        if t not in fps:
            continue
        fp = window_data(fps[t]["eval"])
        if fp is None:
            return None
        for lab in settings:
            for m in methods:
                by_seed = {}
                for r in runs:
                    if (r["target"], r["setting"], r["method"]) == (t, lab, m):
                        wd = window_data(r["eval"])
                        if wd is None:
                            return None
                        by_seed.setdefault(r["seed"], {})[r["source"]] = wd
                res = stats.cell_stats(fp, by_seed, sources, B=B, rng_seed=rng_seed)
                for src, v in res.items():
                    v.update(target=t, setting=lab, method=m, source=src,
                             primary=f"{t}:{lab}:{m}:{src}" in primary)
                    cells.append(v)
    keyed = {i: c["p_boot"] for i, c in enumerate(cells) if not c["primary"]}
    adj = stats.holm(keyed)
    for i, c in enumerate(cells):
        c["p_holm"] = adj.get(i)
        c["answers"] = c["excludes_0"] if c["primary"] else (adj[i] < 0.05)
        oracle = next((o for o in cells if o["source"] == "oracle" and
                       (o["target"], o["setting"], o["method"]) == (c["target"], c["setting"], c["method"])), None)
        c["of_oracle"] = (c["delta"] / oracle["delta"] if oracle is not None and c["source"] != "oracle"
                          and oracle["delta"] > 0 else None)
    # A primary cell named in the config but absent from the results is an error of the run, not a silent gap.
    missing = sorted(primary - {f"{c['target']}:{c['setting']}:{c['method']}:{c['source']}" for c in cells})
    return {"cells": cells, "B": B, "rng_seed": rng_seed, "primary": sorted(primary), "primary_missing": missing}


def svg_intervals(st, path):
    import matplotlib
    matplotlib.use("Agg")
    matplotlib.rcParams["svg.hashsalt"] = "famq"
    import matplotlib.pyplot as plt
    cells = st["cells"]
    fig, ax = plt.subplots(figsize=(8, 0.22 * len(cells) + 1.2))
    for y, c in enumerate(reversed(cells)):
        lo, hi = c["delta_ci"]
        color = "tab:green" if c["answers"] and c["delta"] > 0 else "tab:red" if c["answers"] else "tab:gray"
        ax.plot([lo, hi], [y, y], color=color, linewidth=2.5 if c["primary"] else 1.2)
        ax.plot([c["delta"]], [y], "o", color=color, markersize=3)
    ax.set_yticks(range(len(cells)))
    ax.set_yticklabels([("* " if c["primary"] else "") + f"{c['target']} {c['setting']} "
                        f"{METHOD_LABELS.get(c['method'], c['method'])}: {source_label(c['source'])}"
                        for c in reversed(cells)], fontsize=6)
    ax.axvline(0, color="black", linewidth=0.6)
    ax.set_xlabel("ppl loss (original) − ppl loss (source), points of %: > 0 the source is better", fontsize=8)
    ax.set_title("Paired gain over the original data, 95 % bootstrap interval (seeds and windows); * primary",
                 fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, format="svg", metadata={"Date": None})
    plt.close(fig)


def answer_section(L, st, rel):
    L.append("## Statistics that can answer: gain over the original data with 95 % intervals\n")
    L.append(
        "Per cell (target, setting, method) and seed every source was calibrated from the same draw of originals "
        "(paired), and every model is evaluated on the same windows. Per seed, d = ppl loss(original) − ppl loss"
        "(source) (> 0: the source is better); Δ = mean of d over seeds, gain = Δ / mean loss(original). "
        f"Interval: 2.5 / 97.5 percentiles of {st['B']} bootstrap replicates (scripts/experiment/stats.py, "
        f"random.Random('{st['rng_seed']}:SOURCE')): each replicate draws the seeds with replacement, and for "
        "every drawn seed and text domain that domain's windows with replacement, the same windows for the fp32, "
        "the original data's and the source's model. Sign test: exact two-sided over seeds (ties dropped). "
        "Primary cells, named in the config before running: " +
        (", ".join(f"`{p}`" for p in st["primary"]) if st["primary"] else "none") +
        ": the answer is whether their interval excludes 0; every other cell is corrected for multiple "
        "comparisons by Holm over their bootstrap p-values (answers: Holm p < 0.05).\n")
    if st["primary_missing"]:
        L.append("**Primary cells without results:** " + ", ".join(f"`{p}`" for p in st["primary_missing"]) + "\n")
    L.append(f"![intervals]({rel}/gain_intervals.svg)\n")
    L.append("| target | setting | method | source | seeds | loss original (%) | Δ [95 % CI] | gain [95 % CI] | "
             "gain per seed | sign +/− (p) | p boot | p Holm | of oracle | answer |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for c in sorted(cells_order(st["cells"])):
        c = c[-1]
        mb = statistics.mean(c["loss_baseline"])
        resolved = mb >= RESOLUTION["ppl"] and c["gain"] is not None and c["gain_ci"] is not None
        gain = f"{100 * c['gain']:+.0f}% [{100 * c['gain_ci'][0]:+.0f}, {100 * c['gain_ci'][1]:+.0f}]" if resolved else "–"
        per_seed = " ".join(f"{100 * g:+.0f}" if g is not None else "–" for g in c["gain_per_seed"]) if resolved else "–"
        if c["answers"]:
            ans = "**better**" if c["delta"] > 0 else "**worse**"
        else:
            ans = "contains 0"
        L.append(f"| {c['target']} | {c['setting']} | {METHOD_LABELS.get(c['method'], c['method'])} | "
                 f"{'**' if c['primary'] else ''}{source_label(c['source'])}{'** (primary)' if c['primary'] else ''} | "
                 f"{len(c['seeds'])} | {mb:.3f} | {c['delta']:+.3f} [{c['delta_ci'][0]:+.3f}, {c['delta_ci'][1]:+.3f}] | "
                 f"{gain} | {per_seed} | {c['sign'][0]}/{c['sign'][1]} ({c['p_sign']:.3f}) | {c['p_boot']:.3f} | "
                 f"{'–' if c['p_holm'] is None else format(c['p_holm'], '.3f')} | "
                 f"{'–' if c['of_oracle'] is None else format(100 * c['of_oracle'], '+.0f') + '%'} | {ans} |")
    L.append("")


def cells_order(cells):
    return [(not c["primary"], c["target"], c["setting"], c["method"], c["source"], i, c) for i, c in enumerate(cells)]


def coverage(out, conf):
    """Per layer and slot: mean over channels of min(1, calib max |x| / eval max |x|)."""
    t = conf.get("coverage_target", "").strip() or conf["targets"].split()[0]
    cdir = os.path.join(out, "coverage", t)
    ev_path = os.path.join(cdir, "eval.json")
    if not os.path.exists(ev_path):
        return None
    ev = json.load(open(ev_path))
    res = {"target": t, "eval_tokens": ev["tokens"], "sets": {}}
    for f in sorted(os.listdir(cdir)):
        if f == "eval.json" or not f.endswith(".json"):
            continue
        c = json.load(open(os.path.join(cdir, f)))
        per, over = {}, {}
        for slot in ev["layers"][0]:
            vals, wide = [], []
            for le, lc in zip(ev["layers"], c["layers"]):
                pairs = [(a, b) for a, b in zip(le[slot], lc[slot]) if a > 0]
                vals.append(statistics.mean(min(1.0, b / a) for a, b in pairs) if pairs else 1.0)
                wide.append(statistics.mean(1.0 if b > a else 0.0 for a, b in pairs) if pairs else 0.0)
            per[slot] = vals
            over[slot] = wide
        res["sets"][f[:-5]] = {"tokens": c["tokens"], "coverage": per, "wider": over}
    return res


def svg_coverage(cov, conf, path):
    import matplotlib
    matplotlib.use("Agg")
    matplotlib.rcParams["svg.hashsalt"] = "famq"  # reproducible ids: the same numbers give the same file
    import matplotlib.pyplot as plt
    settings = [s.split(":")[0] for s in conf["settings"].split()]
    sources = conf["sources"].split()
    slots = list(next(iter(cov["sets"].values()))["coverage"])
    fig, axes = plt.subplots(len(settings), len(slots), figsize=(3.2 * len(slots), 3.0 * len(settings)),
                             squeeze=False, sharey=True)
    for i, s in enumerate(settings):
        for j, slot in enumerate(slots):
            ax = axes[i][j]
            for src in sources:
                key = f"{s}-{src}"
                if key in cov["sets"]:
                    v = cov["sets"][key]["coverage"][slot]
                    ax.plot(range(len(v)), v, marker="o", markersize=3, label=source_label(src))
            ax.set_title(f"{s}: {slot} input", fontsize=9)
            ax.set_xlabel("block", fontsize=8)
            if j == 0:
                ax.set_ylabel("coverage of eval max |x|", fontsize=8)
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"{cov['target']}: mean over channels of min(1, calibration max |x| / evaluation max |x|)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, format="svg", metadata={"Date": None})
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--write", default="", help="RESULTS.md to write (plots and JSON go to results/ beside it)")
    ap.add_argument("--tuning", default="", help="run.sh output of the tuning run on validation splits (a section)")
    a = ap.parse_args()
    conf = read_conf(os.path.join(a.out, "config.conf"))
    dest = a.write or os.path.join(a.out, "report", "RESULTS.md")
    rdir = os.path.join(os.path.dirname(os.path.abspath(dest)), "results")
    os.makedirs(rdir, exist_ok=True)
    runs, fps = load(a.out)
    if not runs:
        sys.exit("report: no results in " + a.out)
    agg = aggregate(runs, conf)
    cov = coverage(a.out, conf)
    timing = read_timing(a.out)

    targets = conf["targets"].split()
    settings = conf["settings"].split()
    sources = conf["sources"].split()
    methods = [m for m in conf["methods"].split() if not is_floor(m)]
    seeds = conf["seeds"].split()
    rel = os.path.relpath(rdir, os.path.dirname(os.path.abspath(dest)))

    svg_loss(agg, conf, os.path.join(rdir, "loss_by_method_source.svg"))
    if cov and cov["sets"]:
        svg_coverage(cov, conf, os.path.join(rdir, "coverage_by_layer.svg"))

    L = []
    L.append("# FAQ on famq's family: results\n")
    L.append("Written by `scripts/experiment/report.py` from the run of "
             f"`bash scripts/experiment/run.sh scripts/experiment/{conf.get('name', 'full')}.conf`; "
             "every number below is in [results/results.json](" + rel + "/results.json).\n")
    L.append("## Set-up\n")
    fpd = {t: fps[t]["eval"] for t in fps}
    L.append(f"- targets {', '.join(targets)}; regenerator and expert {conf['regenerator']}; "
             f"n = {conf['n']} originals per draw, L = {conf['seq_len']} tokens per calibration sample for every source "
             f"(equal budgets: {conf['n']} samples × {conf['seq_len']} tokens), G = {conf['group_size']}, keep 1, "
             f"seeds {', '.join(seeds)} (each seed draws other originals and regenerates with its own seed);")
    L.append("- calibration settings: " + "; ".join(
        f"**{s.split(':')[0]}** = draws from `models/calib/{s.split(':')[1]}.jsonl`" for s in settings) +
             " (training splits only);")
    L.append("- sources: " + "; ".join(f"**{source_label(s)}**" for s in sources) +
             " ([DESIGN.md §1.1](DESIGN.md); self = the target regenerates, scored by the same expert);")
    L.append("- methods: " + "; ".join(METHOD_LABELS.get(m, m) for m in conf["methods"].split()) +
             " (RTN needs no calibration: the floor, once per target);")
    L.append(f"- evaluation: `famq eval --suite {conf['suite']}` (`models/eval/{conf['suite']}.json`: test splits, "
             "never tuned on), fp32 reference per target: " + "; ".join(
                 f"{t} reasoning {100 * fpd[t]['reasoning']['accuracy']:.1f}%, ppl " +
                 ", ".join(f"{d} {fpd[t]['text'][d]['ppl']:.1f}" for d in sorted(fpd[t]['text'])) for t in targets
                 if t in fpd) + ".\n")
    L.append("Loss is signed so that larger is worse: ppl loss = mean over the four text domains of "
             "100·(ppl_q/ppl_fp − 1) %; top-1 loss = mean of 100·(acc_fp − acc_q) points; reasoning loss = "
             "100·(exact_fp − exact_q) points. FAQ gain = 1 − loss(source)/loss(original), per seed, then mean ± sd "
             f"over seeds; it is left out (–) where the original data's mean loss is below the resolution "
             f"({RESOLUTION['ppl']}% ppl, {RESOLUTION['top1']} top-1 points, {RESOLUTION['reasoning']} reasoning "
             "points).\n")

    findings = os.path.join(HERE, "findings.md")
    if a.write and os.path.exists(findings):
        L.append(open(findings, encoding="utf-8").read().rstrip() + "\n")
    lowbits = os.path.join(HERE, "lowbits.md")  # hand-run W3/W2 measurements (not the grid)
    if a.write and os.path.exists(lowbits):
        L.append(open(lowbits, encoding="utf-8").read().rstrip() + "\n")

    tuning_doc = None
    if a.tuning and os.path.isdir(os.path.join(a.tuning, "results")):
        tconf = read_conf(os.path.join(a.tuning, "config.conf"))
        truns, _ = load(a.tuning)
        tagg = aggregate(truns, tconf)
        tsources = tconf["sources"].split()
        tmethods = [m for m in tconf["methods"].split() if not is_floor(m)]
        ttargets = tconf["targets"].split()
        L.append("## Tuning on the validation splits\n")
        L.append(f"`bash scripts/experiment/run.sh scripts/experiment/{tconf.get('name', 'tune')}.conf`: "
                 f"{', '.join(ttargets)}, suite `{tconf['suite']}` (validation splits), seeds {tconf['seeds']}, "
                 "the same draws as the grid; variants of the regeneration (flags in the config). "
                 f"Wall time {read_timing(a.tuning)['total'] // 60} min {read_timing(a.tuning)['total'] % 60} s. "
                 "Ppl loss (%), mean ± sd over seeds:\n")
        metric_tables(L, tagg, tconf["settings"].split(), ttargets, tmethods, tsources, "ppl", 3)
        L.append("Gain of the means (1 − mean loss / mean loss of the original data), averaged over the methods:\n")
        L.append("| setting | " + " | ".join(source_label(x) for x in tsources if x != "original") + " |")
        L.append("|---|" + "---|" * (len(tsources) - 1))
        tuning_doc = {"config": tconf, "aggregate": tagg}
        for s_ in tconf["settings"].split():
            lab = s_.split(":")[0]
            cells = []
            for x in tsources:
                if x == "original":
                    continue
                g = [r["ppl_gain_of_means"] for r in tagg if r["setting"] == lab and r["source"] == x
                     and r["ppl_gain_of_means"] is not None]
                cells.append(f"{100 * statistics.mean(g):+.0f}%" if g else "–")
            L.append(f"| {lab} | " + " | ".join(cells) + " |")
        L.append("")

    st = answer_stats(runs, fps, conf)
    if st is not None and st["cells"]:
        svg_intervals(st, os.path.join(rdir, "gain_intervals.svg"))
        answer_section(L, st, rel)

    L.append("## Perplexity loss (%) and gain over the original data\n")
    L.append(f"![loss by method and source]({rel}/loss_by_method_source.svg)\n")
    for t in targets:
        for s in settings:
            lab = s.split(":")[0]
            L.append(f"### {t}, {lab} calibration\n")
            L.append("| method | " + " | ".join(source_label(x) for x in sources) + " |")
            L.append("|---|" + "---|" * len(sources))
            for m in methods:
                cells = []
                for src in sources:
                    r = cell(agg, t, lab, m, src)
                    c = fmt(*r["ppl"], digits=3)
                    if src != "original" and r["ppl_gain"][0] is not None:
                        c += f"<br>gain {fmt(*r['ppl_gain'], pct=True)}"
                    cells.append(c)
                L.append(f"| {METHOD_LABELS.get(m, m)} | " + " | ".join(cells) + " |")
            for rtn in [r for r in runs if r["target"] == t and is_floor(r["method"])]:
                L.append(f"\n{METHOD_LABELS.get(rtn['method'], rtn['method'])} (no calibration): ppl loss "
                         f"{rtn['loss']['ppl']:.3f} %, top-1 loss {rtn['loss']['top1']:.3f}, reasoning loss "
                         f"{rtn['loss'].get('reasoning', float('nan')):.1f}.\n")

    domains = sorted(next(iter(fps.values()))["eval"]["text"])
    L.append("## Perplexity loss per domain (%), mean over the calibrated methods and seeds\n")
    L.append("| target | setting | source | " + " | ".join(domains) + " |")
    L.append("|---|---|---|" + "---|" * len(domains))
    for t in targets:
        for s_ in settings:
            lab = s_.split(":")[0]
            for src in sources:
                sel = [r for r in runs if r["target"] == t and r["setting"] == lab and r["source"] == src
                       and not is_floor(r["method"])]
                if sel:
                    L.append(f"| {t} | {lab} | {source_label(src)} | " + " | ".join(
                        f"{statistics.mean(r['loss']['ppl_by_domain'][d] for r in sel):.3f}" for d in domains) + " |")
    L.append("")

    L.append("## Average FAQ gain per source (ppl loss), over methods and targets\n")
    L.append("Mean of the per-(method, target) mean gains where the original data's loss is resolved; "
             "in brackets the number of (method, target) cells that entered.\n")
    L.append("| setting | " + " | ".join(source_label(x) for x in sources if x != "original") + " |")
    L.append("|---|" + "---|" * (len(sources) - 1))
    averages = {}
    for s in settings:
        lab = s.split(":")[0]
        cells = []
        for src in sources:
            if src == "original":
                continue
            g = [r["ppl_gain"][0] for r in agg if r["setting"] == lab and r["source"] == src and r["ppl_gain"][0] is not None]
            averages[(lab, src)] = (statistics.mean(g) if g else None, len(g))
            cells.append(f"{100 * statistics.mean(g):+.0f}% ({len(g)})" if g else "–")
        L.append(f"| {lab} | " + " | ".join(cells) + " |")
    L.append("")

    for k in ("top1", "reasoning"):
        L.append(f"## {METRICS[k]}: mean ± sd over seeds\n")
        metric_tables(L, agg, settings, targets, methods, sources, k, 2 if k == "top1" else 1, " calibration")
    if any(r["loss"].get("reasoning") is not None for r in runs):
        n = next(r for r in runs)["eval"]["reasoning"]["total"]
        L.append(f"The reasoning subset has {n} problems, so one problem is {100 / n:.2f} points.\n")

    if cov and cov["sets"]:
        L.append("## Coverage of inference-time activation ranges\n")
        L.append(f"For {cov['target']} (seed {seeds[0]}), per block and linear input: the mean over input channels of "
                 "min(1, max |x| over the calibration set / max |x| over evaluation text), from "
                 "`famq-rt act-stats` (fp32 model, masked tokens excluded; evaluation text: "
                 f"{cov['eval_tokens']} tokens of the test splits' text domains). 1.0 means every channel's "
                 "evaluation-time range was reached.\n")
        L.append(f"![coverage by layer]({rel}/coverage_by_layer.svg)\n")
        slots = list(next(iter(cov["sets"].values()))["coverage"])
        L.append("Mean over blocks of the coverage, and in brackets the share of channels whose calibration "
                 "range is *wider* than the evaluation text's (what a min-max range estimator then spends its "
                 "int8 steps on):\n")
        L.append("| setting | source | tokens | " + " | ".join(slots) + " |")
        L.append("|---|---|---|" + "---|" * len(slots))
        order = {src: i for i, src in enumerate(sources)}
        keys = sorted(cov["sets"], key=lambda k: (k.split("-")[0], order.get(k.split("-", 1)[1], 99)))
        for key in keys:
            v = cov["sets"][key]
            lab, src = key.split("-", 1)
            L.append(f"| {lab} | {source_label(src)} | {v['tokens']} | " +
                     " | ".join(f"{statistics.mean(v['coverage'][x]):.3f} ({statistics.mean(v['wider'][x]):.2f})"
                                for x in slots) + " |")
        L.append("")

    L.append("## Reproduce, and wall time\n")
    L.append("    bash scripts/install-deps.sh            # once, as root")
    L.append(f"    bash scripts/experiment/run.sh scripts/experiment/{conf.get('name', 'full')}.conf\n")
    L.append(f"On this machine (2 cores, {conf.get('jobs', '2')} workers of one thread each): " +
             ", ".join(f"{k} {v // 60} min {v % 60} s" for k, v in timing.items()) + ". "
             f"{len(runs) + len(fps)} models evaluated (fp32 and quantized).\n")
    text = "\n".join(L) + "\n"
    tmp = dest + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, dest)

    flat = []
    for r in runs:
        e = r["eval"]
        flat.append({"target": r["target"], "setting": r["setting"], "seed": r["seed"], "source": r["source"],
                     "method": r["method"], "loss": r["loss"],
                     "ppl": {d: v["ppl"] for d, v in e["text"].items()},
                     "top1": {d: v["top1_accuracy"] for d, v in e["text"].items()},
                     "reasoning": e.get("reasoning", {}).get("accuracy"),
                     "finalize_seconds": r["finalize"]["seconds"] if r.get("finalize") else None,
                     "calib_tokens": r["finalize"]["calib_tokens"] if r.get("finalize") else None})
    doc = {"config": conf, "timing_s": timing,
           "fp32": {t: {"ppl": {d: v["ppl"] for d, v in fps[t]["eval"]["text"].items()},
                        "top1": {d: v["top1_accuracy"] for d, v in fps[t]["eval"]["text"].items()},
                        "reasoning": fps[t]["eval"].get("reasoning", {}).get("accuracy")} for t in fps},
           "runs": flat, "aggregate": agg,
           "average_gain": [{"setting": k[0], "source": k[1], "ppl_gain": v[0], "cells": v[1]}
                            for k, v in averages.items()],
           "coverage": cov, "tuning": tuning_doc, "statistics": st}
    tmp = os.path.join(rdir, "results.json.tmp")
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1)
    os.replace(tmp, os.path.join(rdir, "results.json"))
    print(f"report: {dest}, {rdir}/results.json and plots ({len(runs)} quantized runs)")


if __name__ == "__main__":
    main()
