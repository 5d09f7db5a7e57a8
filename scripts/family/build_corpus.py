#!/usr/bin/env python3
"""Builds the famq-tiny training corpus from Debian packages plus generated reasoning problems.

    /usr/bin/python3 scripts/family/build_corpus.py --out build/family/corpus [--seed 1234] \
        [--tokenizer build/family/tokenizer]

Deterministic: the same packages and seed give the same bytes. Sources (install them with
scripts/family/install-corpus-deps.sh): bible-kjv-text, dict-gcide, wordnet-base, dict-jargon,
dict-foldoc, fortunes, fortunes-min. Output: <out>/<domain>/{train,valid,test}.jsonl (one JSON
document per line, {"text": ...}; reasoning lines carry more fields) and <out>/manifest.json.
See docs/FAMILY_DATA.md.
"""
import argparse
import base64
import gzip
import hashlib
import json
import os
import random
import re
import struct
import subprocess
import sys
import time
import unicodedata

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reasoning as R  # noqa: E402
from famq_bpe import SPECIALS  # noqa: E402

PACKAGES = ["bible-kjv-text", "dict-gcide", "wordnet-base", "dict-jargon", "dict-foldoc", "fortunes", "fortunes-min"]
TEXT_DOMAINS = ["bible", "dictionary", "computing", "fortunes"]
SPLITS = ["train", "valid", "test"]
DICTD = "/usr/share/dictd"
WORDNET = "/usr/share/wordnet"
FORTUNES = "/usr/share/games/fortunes"
BIBLE = "/usr/lib/bible.data"

BOOKS = {
    "Ge": "Genesis", "Exo": "Exodus", "Lev": "Leviticus", "Num": "Numbers", "Deu": "Deuteronomy",
    "Josh": "Joshua", "Jdgs": "Judges", "Ruth": "Ruth", "1Sm": "1 Samuel", "2Sm": "2 Samuel",
    "1Ki": "1 Kings", "2Ki": "2 Kings", "1Chr": "1 Chronicles", "2Chr": "2 Chronicles", "Ezra": "Ezra",
    "Neh": "Nehemiah", "Est": "Esther", "Job": "Job", "Psa": "Psalms", "Prv": "Proverbs",
    "Eccl": "Ecclesiastes", "SSol": "Song of Solomon", "Isa": "Isaiah", "Jer": "Jeremiah",
    "Lam": "Lamentations", "Eze": "Ezekiel", "Dan": "Daniel", "Hos": "Hosea", "Joel": "Joel", "Amos": "Amos",
    "Obad": "Obadiah", "Jonah": "Jonah", "Mic": "Micah", "Nahum": "Nahum", "Hab": "Habakkuk",
    "Zep": "Zephaniah", "Hag": "Haggai", "Zec": "Zechariah", "Mal": "Malachi", "Mat": "Matthew",
    "Mark": "Mark", "Luke": "Luke", "John": "John", "Acts": "Acts", "Rom": "Romans", "1Cor": "1 Corinthians",
    "2Cor": "2 Corinthians", "Gal": "Galatians", "Eph": "Ephesians", "Phi": "Philippians", "Col": "Colossians",
    "1Th": "1 Thessalonians", "2Th": "2 Thessalonians", "1Tim": "1 Timothy", "2Tim": "2 Timothy",
    "Titus": "Titus", "Phmn": "Philemon", "Heb": "Hebrews", "Jas": "James", "1Pet": "1 Peter", "2Pet": "2 Peter",
    "1Jn": "1 John", "2Jn": "2 John", "3Jn": "3 John", "Jude": "Jude", "Rev": "Revelation",
}
POS_NAMES = {"n": "noun", "v": "verb", "a": "adjective", "s": "adjective", "r": "adverb"}

_CTRL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\ufeff\ufffd]")
_SPECIAL_RE = re.compile("|".join(re.escape(s) for s in SPECIALS))


def clean(text):
    """NFC, no control characters (tab -> spaces), no special-token strings, no trailing spaces."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = re.sub(r"[^\n]\x08", "", text)  # overstrike sequences (x\bx, _\bx)
    text = "\n".join(line.expandtabs(8).rstrip() for line in text.split("\n"))
    text = _CTRL.sub("", text)
    text = _SPECIAL_RE.sub("", text)
    text = unicodedata.normalize("NFC", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip("\n")


def reflow(lines, sense_re=re.compile(r"^(\d+\.|\([a-z0-9]+\)|--|[-*o] )")):
    """Join wrapped lines: a line continues the previous one when both have the same indentation,
    neither is blank and it does not start a numbered sense, a quote attribution or a list item."""
    out, prev_indent, hanging = [], None, False
    for raw in lines:
        if not raw.strip():
            if out and out[-1] != "":
                out.append("")
            prev_indent = None
            continue
        indent = len(raw) - len(raw.lstrip(" "))
        s = raw.strip()
        cont = prev_indent is not None and (indent == prev_indent or (hanging and 0 < indent - prev_indent <= 4))
        if out and out[-1] != "" and cont and not sense_re.match(s):
            out[-1] += " " + s
            hanging = False
        else:
            out.append(s)
            hanging = bool(sense_re.match(s))
        prev_indent = indent
    while out and out[-1] == "":
        out.pop()
    return "\n".join(out)


# ---------------------------------------------------------------- sources

def read_bible():
    """bible-kjv-text's bible.data: a table of 64 KiB blocks, each a Unix-compress (LZW) stream
    sharing one 3-byte header; gzip decompresses them."""
    d = open(BIBLE, "rb").read()
    if not d.startswith(b"EC02Compressed Data File"):
        raise SystemExit(f"{BIBLE}: unexpected format")
    n = struct.unpack(">I", d[0x58:0x5C])[0]
    offs = struct.unpack(f">{n + 1}I", d[0x5C:0x5C + 4 * (n + 1)])
    header = d[offs[0] - 3:offs[0]]
    assert header[:2] == b"\x1f\x9d"
    out = []
    for i in range(n):
        r = subprocess.run(["gzip", "-dc"], input=header + d[offs[i]:offs[i + 1]], capture_output=True, check=True)
        out.append(r.stdout)
    text = b"".join(out).decode("latin-1")
    verse_re = re.compile(r"^([1-3]?[A-Za-z]+)(\d+):(\d+) (.*)$")
    verses = []
    for line in text.split("\n")[1:]:
        m = verse_re.match(line)
        if not m:
            continue
        verses.append((m.group(1), int(m.group(2)), int(m.group(3)), m.group(4).strip()))
    docs, group = [], []

    def flush():
        if group:
            b, c, v0 = group[0][0], group[0][1], group[0][2]
            body = "\n".join(f"{BOOKS[b]} {c}:{v} {t}" for b, c, v, t in group)
            docs.append((f"bible:{b}{c}:{v0}", body))
            group.clear()

    for v in verses:
        if group and (len(group) >= 5 or group[0][:2] != v[:2]):
            flush()
        group.append(v)
    flush()
    return docs, len(verses)


def dictd_entries(name):
    """(offset, text) of every distinct entry of a dictd database, in file order."""
    data = gzip.open(os.path.join(DICTD, name + ".dict.dz"), "rb").read()
    seen = set()

    def b64(s):
        n = 0
        for ch in s:
            n = n * 64 + "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".index(ch)
        return n

    spans = []
    for line in open(os.path.join(DICTD, name + ".index"), encoding="utf-8", errors="replace"):
        parts = line.rstrip("\n").split("\t")
        if len(parts) < 3 or parts[0].startswith("00-database") or parts[0].startswith("00database"):
            continue
        off, ln = b64(parts[1]), b64(parts[2])
        if (off, ln) not in seen:
            seen.add((off, ln))
            spans.append((off, ln))
    spans.sort()
    for off, ln in spans:
        yield off, data[off:off + ln].decode("utf-8", errors="replace")


_GCIDE_TAG = re.compile(r"\s*\[(?:1913 Webster|Webster 1913 Suppl\.|WordNet 1\.5|PJC|RDH|MW10|Century Dict\.|"
                        r"NetMW|Chambers 1881|Rees' Cyc\.|Webster 1828|AS|JC|NRCD|U\.S\. Census)[^\]\n]{0,20}\]")
_GCIDE_PRON = re.compile(r" \\[^\\\n]{1,80}\\,?[ ]*")
_GCIDE_ENT = re.compile(r"\[(?:[=^\"`'~]([A-Za-z]{1,2})|([A-Za-z]{1,2})[=^\"`'~])\]")


def clean_gcide(t):
    t = _GCIDE_TAG.sub("", t)
    t = _GCIDE_PRON.sub(", ", t)
    t = _GCIDE_ENT.sub(lambda m: m.group(1) or m.group(2), t)  # [=a] (a-macron) etc.: keep the base letter
    t = re.sub(r"\{([^{}]*)\}", r"\1", t)
    lines = []
    for line in t.split("\n"):  # an open [etymology bracket continues on the next line
        if lines and lines[-1].count("[") > lines[-1].count("]") and line.strip():
            lines[-1] = lines[-1].rstrip() + " " + line.strip()
        else:
            lines.append(line)
    return clean(re.sub(r" {2,}--", " --", reflow(lines)))


def clean_computing(t, foldoc):
    lines = []
    for line in t.split("\n"):
        if foldoc and re.fullmatch(r"\s*\(\d{4}-\d{2}-\d{2}\)\s*", line):
            continue
        lines.append(line)
    t = "\n".join(lines)
    t = re.sub(r"\{([^{}]*)\}", r"\1", t)
    return clean(reflow(t.split("\n")))


def read_dictionary():
    docs, group, group_off, size = [], [], None, 0
    n_gcide = 0
    for off, raw in dictd_entries("gcide"):
        t = clean_gcide(raw)
        if len(t) < 8:
            continue
        n_gcide += 1
        if not group:
            group_off = off
        group.append(t)
        size += len(t)
        if size >= 1500:
            docs.append((f"gcide:{group_off}", "\n\n".join(group)))
            group, size = [], 0
    if group:
        docs.append((f"gcide:{group_off}", "\n\n".join(group)))
    n_wn = 0
    for pos in ["noun", "verb", "adj", "adv"]:
        group, first = [], None
        for line in open(os.path.join(WORDNET, "data." + pos), encoding="utf-8", errors="replace"):
            if line.startswith("  ") or " | " not in line:
                continue
            head, gloss = line.split(" | ", 1)
            f = head.split()
            w_cnt = int(f[3], 16)
            words = []
            for w in f[4:4 + 2 * w_cnt:2]:
                w = re.sub(r"\((a|p|ip)\)$", "", w).replace("_", " ")
                if w not in words:
                    words.append(w)
            entry = clean(f"{', '.join(words)} ({POS_NAMES[f[2]]}): {gloss.strip()}")
            n_wn += 1
            if not group:
                first = f[0]
            group.append(entry)
            if len(group) == 12:
                docs.append((f"wordnet:{pos}:{first}", "\n".join(group)))
                group = []
        if group:
            docs.append((f"wordnet:{pos}:{first}", "\n".join(group)))
    return docs, {"gcide_entries": n_gcide, "wordnet_synsets": n_wn}


def read_computing():
    docs = []
    counts = {}
    for name in ["jargon", "foldoc"]:
        n = 0
        for off, raw in dictd_entries(name):
            t = clean_computing(raw, name == "foldoc")
            if len(t) < 20:
                continue
            docs.append((f"{name}:{off}", t))
            n += 1
        counts[name + "_entries"] = n
    return docs, counts


def read_fortunes():
    docs = []
    files = sorted(f for f in os.listdir(FORTUNES)
                   if os.path.isfile(os.path.join(FORTUNES, f)) and not os.path.islink(os.path.join(FORTUNES, f))
                   and not f.endswith(".dat") and f not in {"ascii-art"})
    for name in files:
        raw = open(os.path.join(FORTUNES, name), "rb").read().decode("utf-8", errors="replace")
        for i, chunk in enumerate(re.split(r"(?m)^%\s*$", raw)):
            t = clean(chunk)
            if len(t) >= 10:
                docs.append((f"fortunes:{name}:{i}", t))
    return docs, {"files": files}


# ---------------------------------------------------------------- splits

def doc_u(domain, doc_id, seed):
    h = hashlib.sha256(f"{seed}|{domain}|{doc_id}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2.0 ** 64


def split_text_domain(domain, docs, seed, test_tokens, bytes_per_token):
    # exact duplicates (same text) are kept once, so no text is in two splits
    seen, uniq = set(), []
    for did, t in docs:
        h = hashlib.sha256(t.encode()).digest()
        if h not in seen:
            seen.add(h)
            uniq.append((did, t))
    total = sum(len(t.encode()) for _, t in uniq)
    frac = min(0.1, test_tokens * bytes_per_token / total)
    out = {s: [] for s in SPLITS}
    for did, t in uniq:
        u = doc_u(domain, did, seed)
        s = "test" if u < frac else "valid" if u < 2 * frac else "train"
        out[s].append({"text": t})
    return out, frac, len(docs) - len(uniq)


def build_reasoning(seed, n_train, n_valid, n_test, heldout=0.2):
    """Held-out keys (hash < heldout) feed valid/test; train never contains them."""
    cells = [(d, k) for d in R.LEVELS for k in R.KINDS]

    def fill(n, want, rng_seed):
        rng = random.Random(rng_seed)
        per_cell = {c: [] for c in cells}
        keys = set()
        quota = {c: n // len(cells) + (1 if i < n % len(cells) else 0) for i, c in enumerate(cells)}
        for c in cells:
            d, k = c
            tries = 0
            while len(per_cell[c]) < quota[c] and tries < 20000:
                tries += 1
                p = R.GENERATORS[k](rng, d)
                u = R.key_hash(seed, p.key)
                if not want(u) or p.key in keys:
                    continue
                keys.add(p.key)
                per_cell[c].append(p)
        out = []
        for c in cells:
            out.extend(per_cell[c])
        return out, keys

    test, test_keys = fill(n_test, lambda u: u < heldout / 2, seed * 1000 + 1)
    valid, valid_keys = fill(n_valid, lambda u: heldout / 2 <= u < heldout, seed * 1000 + 2)
    rng = random.Random(seed * 1000 + 3)
    kinds = list(R.TRAIN_WEIGHTS)
    weights = [R.TRAIN_WEIGHTS[k] for k in kinds]
    train, train_keys = [], set()
    while len(train) < n_train:
        k = rng.choices(kinds, weights)[0]
        d = rng.choice(R.LEVELS)
        p = R.GENERATORS[k](rng, d)
        if R.key_hash(seed, p.key) < heldout:
            continue
        train.append(p)
        train_keys.add(p.key)
    assert not (train_keys & test_keys) and not (train_keys & valid_keys) and not (test_keys & valid_keys)
    fmt_rng = random.Random(seed * 1000 + 4)
    out = {}
    for name, probs in [("train", train), ("valid", valid), ("test", test)]:
        out[name] = [R.render(p, "chat" if fmt_rng.random() < 0.5 else "plain") for p in probs]
    return out


# ---------------------------------------------------------------- main

def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_jsonl(path, recs):
    with open(path, "w", encoding="utf-8") as f:
        for r in recs:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def package_versions():
    r = subprocess.run(["dpkg-query", "-W", "-f", "${Package}\t${Version}\n"] + PACKAGES,
                       capture_output=True, text=True)
    vers = dict(line.split("\t") for line in r.stdout.splitlines() if "\t" in line)
    missing = [p for p in PACKAGES if not vers.get(p)]
    if missing:
        raise SystemExit(f"missing packages {missing}: run scripts/family/install-corpus-deps.sh as root")
    return vers


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--tokenizer", help="tokenizer directory (tokenizer.json): adds token counts to the manifest")
    ap.add_argument("--test-tokens", type=int, default=65000,
                    help="target size of each text domain's test (and valid) split in tokens")
    ap.add_argument("--bytes-per-token", type=float, default=3.5, help="estimate used to size the splits")
    ap.add_argument("--reasoning-train", type=int, default=200000)
    ap.add_argument("--reasoning-valid", type=int, default=500)
    ap.add_argument("--reasoning-test", type=int, default=700)
    a = ap.parse_args()
    t0 = time.time()
    versions = package_versions()
    os.makedirs(a.out, exist_ok=True)
    manifest = {"seed": a.seed, "packages": versions, "test_tokens_target": a.test_tokens,
                "bytes_per_token_estimate": a.bytes_per_token, "domains": {}}
    readers = {"bible": read_bible, "dictionary": read_dictionary, "computing": read_computing,
               "fortunes": read_fortunes}
    splits_by_domain = {}
    for dom in TEXT_DOMAINS:
        t1 = time.time()
        docs, info = readers[dom]()
        splits, frac, dups = split_text_domain(dom, docs, a.seed, a.test_tokens, a.bytes_per_token)
        splits_by_domain[dom] = splits
        manifest["domains"][dom] = {"source_info": info, "test_fraction": frac, "duplicates_dropped": dups,
                                    "splits": {}}
        print(f"[build_corpus] {dom}: {len(docs)} documents ({time.time() - t1:.1f}s)", file=sys.stderr)
    t1 = time.time()
    splits_by_domain["reasoning"] = build_reasoning(a.seed, a.reasoning_train, a.reasoning_valid, a.reasoning_test)
    manifest["domains"]["reasoning"] = {"splits": {}}
    print(f"[build_corpus] reasoning: generated ({time.time() - t1:.1f}s)", file=sys.stderr)

    enc = None
    if a.tokenizer:
        from famq_bpe import Encoder
        enc = Encoder(json.load(open(os.path.join(a.tokenizer, "tokenizer.json"), encoding="utf-8")))
        manifest["tokenizer"] = {"path": a.tokenizer,
                                 "sha256": sha256_file(os.path.join(a.tokenizer, "tokenizer.json"))}
    for dom, splits in splits_by_domain.items():
        os.makedirs(os.path.join(a.out, dom), exist_ok=True)
        for s in SPLITS:
            path = os.path.join(a.out, dom, s + ".jsonl")
            recs = splits[s]
            write_jsonl(path, recs)
            st = {"documents": len(recs), "text_bytes": sum(len(r["text"].encode()) for r in recs),
                  "file_bytes": os.path.getsize(path), "sha256": sha256_file(path)}
            if enc is not None:
                st["tokens"] = sum(enc.count(r["text"]) for r in recs)
            if dom == "reasoning":
                st["by_difficulty"] = {str(d): sum(1 for r in recs if r["difficulty"] == d) for d in R.LEVELS}
                st["by_kind"] = {k: sum(1 for r in recs if r["kind"] == k) for k in R.KINDS}
                st["by_format"] = {f: sum(1 for r in recs if r["format"] == f) for f in ("plain", "chat")}
            manifest["domains"][dom]["splits"][s] = st
            print(f"[build_corpus] {dom}/{s}: {st['documents']} docs, {st['text_bytes']} bytes"
                  + (f", {st['tokens']} tokens" if "tokens" in st else ""), file=sys.stderr)
    with open(os.path.join(a.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
        f.write("\n")
    print(f"[build_corpus] done in {time.time() - t0:.1f}s -> {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
