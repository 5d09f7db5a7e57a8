#!/usr/bin/python3
"""Evaluates the exported family with famq eval, checks the family's quality
gates, samples outputs with famq-rt, and writes the model cards.

  /usr/bin/python3 scripts/family/model_cards.py [--models models] \
      [--famq build/host/quantizer/famq] [--famq-rt build/host/runtime/tools/famq-rt/famq-rt] \
      [--suite default] [--skip-eval]

For each member DIR = MODELS/famq-tiny-{s,m,l}:
  DIR/eval_results.json   famq eval --suite SUITE --json (test splits)
  DIR/samples.json        greedy and sampled continuations, one prompt per domain
  DIR/README.md           the model card (training.json + the two files above)
and MODELS/README.md, the family's overview with the gates. Exit status 1 when
a gate fails (the cards are written either way and say so).

Gates (issue 3): on every text domain perplexity L < M < S; reasoning exact
match L > M > S and L >= 60%.
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
MEMBERS = ["s", "m", "l"]
DOMAINS = ["bible", "dictionary", "computing", "fortunes"]
SAMPLE_PROMPTS = [
    ("bible", "plain", "Genesis 1:1 In the beginning"),
    ("dictionary", "plain", "Anachronize, v. t."),
    ("computing", "plain", "deprecated\nadj.\n\n"),
    ("fortunes", "plain", "A \"critic\" is a man who"),
    ("reasoning", "plain", "Question: What is 27 + 45?\nAnswer:"),
    ("reasoning", "chat", "How many minutes are in 3 hours?"),
]
SAMPLING = {"temp": 0.8, "top_p": 0.95, "seed": 7}
GATE_MIN_REASONING = 0.60


def run_json(cmd):
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)


def evaluate(famq, model, suite, eval_dir):
    t0 = time.time()
    r = run_json([famq, "eval", "--model", model, "--suite", suite, "--eval-dir", eval_dir, "--json", "-q"])
    r["wall_seconds"] = round(time.time() - t0, 1)
    r["model"] = os.path.basename(os.path.normpath(model))
    return r


def samples(famq_rt, model):
    out = []
    for domain, fmt, prompt in SAMPLE_PROMPTS:
        base = [famq_rt, "generate", "--model", model, "--prompt", prompt, "-n", "96", "--json", "-q"]
        if fmt == "chat":
            base.append("--chat")
        g = run_json(base)
        s = run_json(base + ["--temp", str(SAMPLING["temp"]), "--top-p", str(SAMPLING["top_p"]),
                             "--seed", str(SAMPLING["seed"])])
        out.append({"domain": domain, "format": fmt, "prompt": prompt, "greedy": g["text"], "sampled": s["text"]})
    return out


def gates(evals):
    s, m, l = (evals[k] for k in MEMBERS)
    rows = []
    for d in DOMAINS:
        p = [e["text"][d]["ppl"] for e in (l, m, s)]
        rows.append((f"perplexity {d}: L < M < S", f"{p[0]:.2f} < {p[1]:.2f} < {p[2]:.2f}", p[0] < p[1] < p[2]))
    a = [e["reasoning"]["accuracy"] for e in (l, m, s)]
    rows.append(("reasoning exact match: L > M > S", f"{a[0]:.1%} > {a[1]:.1%} > {a[2]:.1%}", a[0] > a[1] > a[2]))
    rows.append((f"reasoning exact match: L >= {GATE_MIN_REASONING:.0%}", f"{a[0]:.1%}", a[0] >= GATE_MIN_REASONING))
    return rows


def md_gates(rows):
    out = ["| gate | measured | |", "|---|---|---|"]
    out += [f"| {g} | {v} | {'pass' if ok else '**FAIL**'} |" for g, v, ok in rows]
    return "\n".join(out)


def md_metrics(e):
    out = ["| domain | perplexity | next-token top-1 | tokens |", "|---|---|---|---|"]
    for d in DOMAINS:
        t = e["text"][d]
        out.append(f"| {d} | {t['ppl']:.2f} | {t['top1_accuracy']:.1%} | {t['tokens']:,} |")
    r = e["reasoning"]
    out += ["", f"Reasoning exact match (greedy chain of thought, answer parsed from `The answer is N.`): "
            f"**{r['accuracy']:.1%}** ({r['correct']}/{r['total']}; {r['unparsed']} without an answer line).", "",
            "| difficulty | " + " | ".join(sorted(r["by_difficulty"])) + " |",
            "|---|" + "---|" * len(r["by_difficulty"]),
            "| exact match | " + " | ".join(f"{r['by_difficulty'][k]['accuracy']:.0%}"
                                          for k in sorted(r["by_difficulty"])) + " |", "",
            "| kind | " + " | ".join(sorted(r["by_kind"])) + " |",
            "|---|" + "---|" * len(r["by_kind"]),
            "| exact match | " + " | ".join(f"{r['by_kind'][k]['accuracy']:.0%}" for k in sorted(r["by_kind"])) + " |",
            "",
            "| format | " + " | ".join(sorted(r["by_format"])) + " |",
            "|---|" + "---|" * len(r["by_format"]),
            "| exact match | " + " | ".join(f"{r['by_format'][k]['accuracy']:.0%}"
                                          for k in sorted(r["by_format"])) + " |"]
    return "\n".join(out)


def train_command(t):
    a = t["args"]
    cmd = (f"/usr/bin/python3 scripts/family/train.py --size {a['size']} --tokens {a['tokens']} --out {a['out']}")
    if a.get("teacher"):
        cmd += f" --teacher {a['teacher']} --kd-alpha {a['kd_alpha']} --kd-temp {a['kd_temp']}"
    if a.get("max_steps"):
        cmd += f" --max-steps {a['max_steps']}"
    else:
        cmd += f" --time-budget-min {a['time_budget_min']:g}"
    if a.get("threads", 2) != 2:
        cmd += f" --threads {a['threads']}"
    cmd += f" --mix {a['mix']}"
    return cmd + " --resume"


def fence(text):
    return "```text\n" + text.replace("```", "` ` `") + "\n```"


def card(name, cfg, t, e, smp, gate_rows, suite):
    size_mb = os.path.getsize(os.path.join(os.path.dirname(t["_path"]), "model.safetensors")) / 1e6
    lines = [f"# {name}", "",
             f"famq's own test family member ({'distilled from ' + t['teacher'] if t['teacher'] else 'the family head'})"
             ": a Qwen3-architecture causal LM trained from scratch on CPU with the Debian-package corpus and "
             "generated reasoning problems described in [docs/FAMILY_DATA.md](../../docs/FAMILY_DATA.md). "
             "It exists so that famq's tests, quickstart and experiments run the same path a user with a real "
             "Qwen3 family takes. It is not a useful language model.", "",
             "## Model", "",
             "| | |", "|---|---|",
             f"| architecture | `Qwen3ForCausalLM` (QK-norm, GQA, RoPE θ={cfg['rope_theta']:g}, SwiGLU, tied embeddings) |",
             f"| parameters | {t['parameters']:,} |",
             f"| hidden / layers / heads / kv heads / head_dim / intermediate | {cfg['hidden_size']} / "
             f"{cfg['num_hidden_layers']} / {cfg['num_attention_heads']} / {cfg['num_key_value_heads']} / "
             f"{cfg['head_dim']} / {cfg['intermediate_size']} |",
             f"| vocabulary | {cfg['vocab_size']} (byte-level BPE 4096 + 5 specials, Qwen2 pre-tokenizer) |",
             f"| weights | `model.safetensors`, BF16, {size_mb:.1f} MB |",
             f"| context trained | {t['args']['seq_len']} tokens (config allows {cfg['max_position_embeddings']}) |",
             "",
             "## Training", "",
             f"- {t['steps']:,} steps, {t['tokens']:,} tokens, {t['train_seconds'] / 60:.1f} min of training "
             f"on 2 CPU cores (PyTorch 1.13 from Debian, OpenBLAS).",
             f"- Domain mix `{t['args']['mix']}`; reasoning problems follow an easy-first curriculum over the first "
             f"{t['args']['curriculum_frac']:.0%} of the run.",
             f"- AdamW, peak LR {t['args']['lr'] or {'s': 3e-3, 'm': 2e-3, 'l': 1.5e-3}[t['size']]:g}, warmup "
             f"{t['args']['warmup']}, cosine to {t['args']['min_lr_frac']:g}x, weight decay "
             f"{t['args']['weight_decay']:g}, batch {t['args']['batch_tokens']} tokens, seed {t['args']['seed']}.",
             ]
    if t["teacher"]:
        lines.append(f"- Distillation from {t['teacher']}: loss = {1 - t['args']['kd_alpha']:g}·CE + "
                     f"{t['args']['kd_alpha']:g}·KL(teacher ‖ student) at temperature {t['args']['kd_temp']:g}.")
    if t.get("final_val_loss"):
        lines.append("- Final validation loss (nats/token): " +
                     ", ".join(f"{k} {v:.3f}" for k, v in t["final_val_loss"].items()) + ".")
    lines += ["", "```sh", train_command(t),
              f"/usr/bin/python3 scripts/family/export_hf.py --run {t['args']['out']} "
              f"--tokenizer build/family/tokenizer --out models/{name}", "```", "",
              "The whole family (corpus, tokenizer, L, then M and S) is rebuilt by `scripts/family/rebuild.sh`; "
              "see [scripts/family/README.md](../../scripts/family/README.md).", "",
              f"## Evaluation (`famq eval --suite {suite}`, test splits)", "",
              f"```sh\nbuild/host/quantizer/famq eval --model models/{name} --suite {suite}\n```", "",
              md_metrics(e), "",
              f"({e['wall_seconds']:.0f} s wall for the whole suite, "
              + ("`--threads 1` while two trainings shared the machine.)" if e.get("threads") == 1 else "2 threads.)"),
              "",
              "## Family gates", "", md_gates(gate_rows), "",
              "## Samples", "",
              f"Written by famq-rt: greedy, and sampled with temperature {SAMPLING['temp']}, top-p "
              f"{SAMPLING['top_p']}, seed {SAMPLING['seed']}; 96 new tokens at most. Chat prompts go through the "
              "chat template with thinking on.", ""]
    for s in smp:
        lines += [f"**{s['domain']}** ({s['format']}) prompt:", fence(s["prompt"]), "greedy:", fence(s["greedy"]),
                  "sampled:", fence(s["sampled"]), ""]
    lines += ["## Files", "",
              "`config.json`, `model.safetensors`, `tokenizer.json`, `tokenizer_config.json` (chat template), "
              "`generation_config.json`, `training.json` (training arguments and counts), `eval_results.json` "
              "(the table above), `samples.json` (the samples above).", ""]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=os.path.join(REPO, "models"))
    ap.add_argument("--famq", default=os.path.join(REPO, "build/host/quantizer/famq"))
    ap.add_argument("--famq-rt", default=os.path.join(REPO, "build/host/runtime/tools/famq-rt/famq-rt"))
    ap.add_argument("--suite", default="default")
    ap.add_argument("--eval-dir", default=os.path.join(REPO, "models", "eval"), help="where suites are looked up")
    ap.add_argument("--skip-eval", action="store_true", help="reuse DIR/eval_results.json and DIR/samples.json")
    ap.add_argument("--reuse", action="store_true",
                    help="reuse a member's eval_results.json / samples.json when present (same suite)")
    a = ap.parse_args()
    eval_dir = a.eval_dir
    dirs = {k: os.path.join(a.models, f"famq-tiny-{k}") for k in MEMBERS}
    evals, smps = {}, {}
    for k, d in dirs.items():
        ep, sp = os.path.join(d, "eval_results.json"), os.path.join(d, "samples.json")
        if a.skip_eval:
            evals[k], smps[k] = json.load(open(ep)), json.load(open(sp))
            continue
        if a.reuse and os.path.exists(ep) and json.load(open(ep)).get("suite") == a.suite:
            evals[k] = json.load(open(ep))
        else:
            print(f"evaluating {d} ...", file=sys.stderr, flush=True)
            evals[k] = evaluate(a.famq, d, a.suite, eval_dir)
        smps[k] = json.load(open(sp)) if a.reuse and os.path.exists(sp) else samples(a.famq_rt, d)
        for path, obj in ((ep, evals[k]), (sp, smps[k])):
            with open(path + ".tmp", "w") as f:
                json.dump(obj, f, indent=1, ensure_ascii=False)
                f.write("\n")
            os.replace(path + ".tmp", path)
    rows = gates(evals)
    for k, d in dirs.items():
        tp = os.path.join(d, "training.json")
        t = json.load(open(tp))
        t["_path"] = tp
        cfg = json.load(open(os.path.join(d, "config.json")))
        with open(os.path.join(d, "README.md"), "w") as f:
            f.write(card(f"famq-tiny-{k}", cfg, t, evals[k], smps[k], rows, a.suite))
    # family overview
    lines = ["# famq-tiny: famq's test family", "",
             "Three Qwen3-architecture models sharing one tokenizer and one corpus; M and S are distilled from L. "
             "Each `famq-tiny-*/` directory is a Hugging Face model directory with its model card (data, sizes, "
             "training time and command, metrics, samples). Rebuilt by `bash scripts/family/rebuild.sh`; see "
             "[scripts/family/README.md](../scripts/family/README.md) and [docs/FAMILY_DATA.md](../docs/FAMILY_DATA.md).",
             "",
             "- `eval/test/<domain>.jsonl`, `eval/valid/<domain>.jsonl`: held-out bible, dictionary, computing, "
             "fortunes (`{\"text\": ...}` per line) and reasoning problems (`prompt_plain`, `prompt_chat`, `answer`, "
             "`kind`, `difficulty`), copied from the reproducible corpus by `scripts/family/export_eval_data.sh`;",
             "- suites for `famq eval --suite NAME`: `default` (test splits), `smoke` (a slice of them, for CI), "
             "`valid` (validation splits: the only ones to tune on). Reasoning decodes greedily for at most 768 new "
             "tokens in `default` and `valid` (the longest reference solution in the test split is 696 tokens), 320 in "
             "`smoke` (difficulty 1 only); `experiment` and `experiment-valid` (32 windows per text domain, every 4th / "
             "3rd reasoning problem: the FAQ experiment's test and tuning suites, docs/RESULTS.md);",
             "- `calib/NAME.jsonl`: calibration presets for `famq bundle --calib-preset NAME`, drawn from the "
             "*training* splits by `scripts/family/make_calib_presets.py`.", "",
             "| member | parameters | training tokens | training time | "
             + " | ".join(f"{d} ppl" for d in DOMAINS) + " | reasoning |",
             "|---|---|---|---|" + "---|" * (len(DOMAINS) + 1)]
    for k in reversed(MEMBERS):
        t = json.load(open(os.path.join(dirs[k], "training.json")))
        e = evals[k]
        lines.append(f"| [famq-tiny-{k}](famq-tiny-{k}/README.md) | {t['parameters']:,} | {t['tokens']:,} | "
                     f"{t['train_seconds'] / 60:.0f} min | "
                     + " | ".join(f"{e['text'][d]['ppl']:.2f}" for d in DOMAINS)
                     + f" | {e['reasoning']['accuracy']:.1%} |")
    lines += ["", f"Measured with `famq eval --suite {a.suite}` (test splits); written by "
              "`/usr/bin/python3 scripts/family/model_cards.py`.", "", "## Gates", "", md_gates(rows), ""]
    with open(os.path.join(a.models, "README.md"), "w") as f:
        f.write("\n".join(lines))
    ok = all(r[2] for r in rows)
    for g, v, good in rows:
        print(f"{'pass' if good else 'FAIL'}  {g}: {v}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
