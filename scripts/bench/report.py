#!/usr/bin/env python3
"""Markdown tables from scripts/bench/against-llama-cpp.sh's results (one JSON
object per line). Every figure is the median over the runs; tokens/s rows
also give the range. Standard library only.

    python3 scripts/bench/report.py RESULTS.jsonl
"""
import json
import statistics
import sys

MIB = 1024 * 1024


def load(path):
    rows = [json.loads(line) for line in open(path, encoding="utf-8") if line.strip()]
    if not rows:
        sys.exit(f"{path}: no results")
    return rows


def med(values):
    return statistics.median(values) if values else float("nan")


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: report.py RESULTS.jsonl")
    rows = load(sys.argv[1])
    meta = next(r for r in rows if r["kind"] == "meta")
    runs = sorted({r["run"] for r in rows if "run" in r})

    def pick(kind, scheme=None, part=None):
        return [r for r in rows if r["kind"] == kind and (scheme is None or r.get("scheme") == scheme)
                and (part is None or r.get("part") == part)]

    bw = [r["median_gb_per_s"] for r in pick("membw")]
    bare = med([r["peak_rss_mib"] for r in pick("bare")])
    fig = {}  # (side, scheme) -> name -> [values per run]
    for scheme in ("w4", "w8"):
        f = {}
        short = pick("famq", scheme, "short")
        long_ = pick("famq", scheme, "long")
        f["decode"] = [r["decode_tokens_per_s"] for r in short]
        f["prefill"] = [r["prefill_tokens_per_s"] for r in short]
        f["prefill2"] = [r["prefill_tokens_per_s"] for r in long_]
        f["open"] = [r["open_to_first_token_ms"] for r in short]
        # Its parts (famq-rt bench since 96ce2ee): reading + verifying the file, building the engine.
        f["open_read"] = [r["open_ms"] for r in short if "open_ms" in r]
        f["open_engine"] = [r["engine_build_ms"] for r in short if "engine_build_ms" in r]
        by_run = {}
        for r in short + long_:
            by_run[r["run"]] = max(by_run.get(r["run"], 0.0), r["peak_rss_mib"])
        f["rss"] = list(by_run.values())
        f["file"] = [r["file_bytes"] / MIB for r in short]
        f["bpt"] = [r["decode_bytes_per_token"] / MIB for r in short]
        f["gbs"] = [r["decode_gb_per_s"] for r in short]
        f["parts"] = short
        fig[("famq", scheme)] = f
        g = {}
        ll = pick("llama", scheme)
        g["decode"] = [r["decode_tokens_per_s"] for r in ll]
        g["prefill"] = [r["prefill_tokens_per_s"] for r in ll]
        g["prefill2"] = [r["prefill2_tokens_per_s"] for r in ll]
        g["open"] = [r["open_to_first_token_ms"] for r in ll]
        g["rss"] = [r["peak_rss_mib"] - bare for r in ll]
        g["file"] = [r["file_bytes"] / MIB for r in ll]
        fig[("llama", scheme)] = g

    p, n, p2, ctx = meta["prompt_tokens"], meta["gen_tokens"], meta["prompt2_tokens"], meta["ctx"]
    out = []
    out.append(f"Same weights, {meta['threads']} threads, context {ctx} on both sides; medians of {len(runs)} runs, "
               f"famq and llama.cpp interleaved (range in brackets). llama.cpp: node-llama-cpp "
               f"{meta['node_llama_cpp']} prebuilt CPU binaries. famq: {meta['famq_rt']}.")
    if meta.get("finalize_flags") or meta.get("bench_flags"):
        out.append(f"Extra finalize flags: `{meta.get('finalize_flags', '')}`; extra bench flags: "
                   f"`{meta.get('bench_flags', '')}`.")
    out.append("")
    out.append("| figure | llama.cpp Q4_0 | famq W4 g32 | famq / llama.cpp | llama.cpp Q8_0 | famq W8 g32 | "
               "famq / llama.cpp |")
    out.append("|---|---|---|---|---|---|---|")

    def cell(vals, fmt, spread):
        if not vals:
            return "—"
        s = fmt.format(med(vals))
        if spread and len(vals) > 1:
            s += " (" + fmt.format(min(vals)) + "-" + fmt.format(max(vals)) + ")"
        return s

    def row(label, key, fmt, spread=False, famq_only=False):
        cells = [label]
        for scheme in ("w4", "w8"):
            l, f = fig[("llama", scheme)].get(key, []), fig[("famq", scheme)].get(key, [])
            cells.append("—" if famq_only else cell(l, fmt, spread))
            cells.append(cell(f, fmt, spread))
            cells.append("" if famq_only or not l or not f else f"{med(f) / med(l):.2f}x")
        out.append("| " + " | ".join(cells) + " |")

    row(f"decode tok/s ({n} after a {p}-token prompt)", "decode", "{:.1f}", True)
    row(f"prefill tok/s ({p}-token prompt)", "prefill", "{:.1f}", True)
    row(f"prefill tok/s ({p2}-token prompt)", "prefill2", "{:.1f}", True)
    row(f"open to first token, ms ({p}-token prompt)", "open", "{:.0f}")
    row("of which famq opens the file (read, verify), ms", "open_read", "{:.0f}", True, famq_only=True)
    row("of which famq builds the engine (packing), ms", "open_engine", "{:.0f}", True, famq_only=True)
    row(f"peak RSS, MiB (llama.cpp: net of a bare Node process, {bare:.0f} MiB)", "rss", "{:.0f}")
    row("model file, MiB", "file", "{:.1f}")
    row("bytes one decode step reads, MiB (famq's engine)", "bpt", "{:.1f}", famq_only=True)
    row("achieved read bandwidth of decode, GB/s", "gbs", "{:.1f}", famq_only=True)
    out.append("")
    bwm = med(bw)
    out.append(f"Machine read bandwidth in the same run (`membw`, {meta['threads']} threads, 1 GiB buffer): "
               f"median {bwm:.1f} GB/s (per-run medians {', '.join(f'{x:.1f}' for x in bw)}).")
    out.append("")
    out.append("famq's memory parts (MiB, medians; `famq-rt bench` on the short workload):")
    out.append("")
    out.append("| model | file | RSS before open | + open (anon / file-backed) | + engine | engine weights | KV cache | "
               "scratch | peak RSS |")
    out.append("|---|---|---|---|---|---|---|---|---|")
    for scheme, name in (("w4", "famq W4 g32"), ("w8", "famq W8 g32")):
        rs = fig[("famq", scheme)]["parts"]
        if not rs:
            continue
        def m(fn):
            return med([fn(r) for r in rs])
        out.append("| " + " | ".join([
            name, f"{m(lambda r: r['file_bytes'] / MIB):.1f}", f"{m(lambda r: r['rss']['before_open']['rss_mib']):.1f}",
            f"{m(lambda r: r['rss']['opened']['rss_mib'] - r['rss']['before_open']['rss_mib']):.1f} "
            f"({m(lambda r: r['rss']['opened']['anon_mib'] - r['rss']['before_open']['anon_mib']):.1f} / "
            f"{m(lambda r: r['rss']['opened']['file_mib'] - r['rss']['before_open']['file_mib']):.1f})",
            f"{m(lambda r: r['rss']['engine_built']['rss_mib'] - r['rss']['opened']['rss_mib']):.1f}",
            f"{m(lambda r: r['weight_bytes'] / MIB):.1f}", f"{m(lambda r: r['kv_cache_bytes'] / MIB):.1f}",
            f"{m(lambda r: r['scratch_bytes'] / MIB):.1f}", f"{m(lambda r: r['peak_rss_mib']):.0f}"]) + " |")
    out.append("")

    def ratio(side_a, side_b, scheme, key):
        a, b = fig[(side_a, scheme)][key], fig[(side_b, scheme)][key]
        return med(a) / med(b) if a and b else float("nan")

    w4_gbs = med(fig[("famq", "w4")]["gbs"])
    checks = [
        ("W4 decode >= 1.3x llama.cpp Q4_0", ratio("famq", "llama", "w4", "decode"), 1.3, "x", True),
        ("W4 decode >= 80 % of the read bandwidth", 100 * w4_gbs / bwm if bwm else float("nan"), 80, " %", True),
        (f"W4 prefill ({p2} tokens) >= 1.5x llama.cpp", ratio("famq", "llama", "w4", "prefill2"), 1.5, "x", True),
        ("W4 peak RSS <= llama.cpp's", ratio("famq", "llama", "w4", "rss"), 1.0, "x", False),
        ("W4 file <= 358 MiB", med(fig[("famq", "w4")]["file"]), 358, " MiB", False),
        ("W4 open to first token <= 0.5 s", med(fig[("famq", "w4")]["open"]) / 1000, 0.5, " s", False),
        ("W8 decode >= 1.2x llama.cpp Q8_0", ratio("famq", "llama", "w8", "decode"), 1.2, "x", True),
    ]
    out.append("| issue 14 target | measured | met |")
    out.append("|---|---|---|")
    for label, value, bound, unit, at_least in checks:
        met = value >= bound if at_least else value <= bound
        out.append(f"| {label} | {value:.2f}{unit} | {'yes' if met else 'no'} |")
    print("\n".join(out))


if __name__ == "__main__":
    main()
