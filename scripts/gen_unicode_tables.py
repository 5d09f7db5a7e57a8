#!/usr/bin/env python3
"""Generates runtime/tokenizer/unicode_tables.inc from the Unicode Character Database.

Reads Debian's `unicode-data` package (Unicode 15.0):
  /usr/share/unicode/UnicodeData.txt
  /usr/share/unicode/CompositionExclusions.txt
and writes the range-compressed tables the tokenizer needs for \\p{L}, \\p{N},
ECMAScript \\s and NFC/NFD. Hangul syllables are handled algorithmically in C++
and are not in the tables. Output is deterministic (sorted, no timestamps).

Usage: scripts/gen_unicode_tables.py [--ucd DIR] [--out FILE]
"""
import argparse
import os
import re
import sys

HANGUL_S_BASE, HANGUL_S_COUNT = 0xAC00, 11172


def parse_unicode_data(path):
    """Returns {cp: (category, ccc, decomposition_field)} with First/Last ranges expanded."""
    chars = {}
    range_start = None
    with open(path, encoding="utf-8") as f:
        for line in f:
            fields = line.rstrip("\n").split(";")
            if len(fields) < 6:
                continue
            cp = int(fields[0], 16)
            name, cat, ccc, decomp = fields[1], fields[2], int(fields[3]), fields[5]
            if name.endswith(", First>"):
                range_start = cp
                continue
            if name.endswith(", Last>"):
                for c in range(range_start, cp + 1):
                    chars[c] = (cat, ccc, "")
                range_start = None
                continue
            chars[cp] = (cat, ccc, decomp)
    return chars


def parse_exclusions(path):
    out = set()
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                out.add(int(line, 16))
    return out


def read_version(ucd_dir):
    readme = os.path.join(ucd_dir, "ReadMe.txt")
    try:
        with open(readme, encoding="utf-8") as f:
            for line in f:
                m = re.search(r"Version (\d+\.\d+\.\d+) of the Unicode Standard", line)
                if m:
                    return "Unicode " + m.group(1)
    except OSError:
        pass
    return "unknown version"


def ranges_of(cps, value_of):
    """Groups sorted code points into (first, last, value) runs of equal value."""
    out = []
    for cp in sorted(cps):
        v = value_of(cp)
        if out and out[-1][1] == cp - 1 and out[-1][2] == v:
            out[-1][1] = cp
        else:
            out.append([cp, cp, v])
    return out


def emit_rows(items, per_line):
    lines = []
    for i in range(0, len(items), per_line):
        lines.append("    " + " ".join(items[i:i + per_line]))
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ucd", default="/usr/share/unicode")
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "runtime", "tokenizer", "unicode_tables.inc"))
    args = ap.parse_args()

    chars = parse_unicode_data(os.path.join(args.ucd, "UnicodeData.txt"))
    exclusions = parse_exclusions(os.path.join(args.ucd, "CompositionExclusions.txt"))

    # --- \p{L} (class 1) and \p{N} (class 2) ---
    def cls(cp):
        cat = chars[cp][0]
        return 1 if cat.startswith("L") else 2 if cat.startswith("N") else 0
    ln = [cp for cp in chars if cls(cp) != 0]
    cat_ranges = ranges_of(ln, cls)

    # --- ECMAScript \s: WhiteSpace (TAB VT FF SP NBSP ZWNBSP + Zs) + LineTerminator (LF CR LS PS) ---
    ws = {0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0xFEFF, 0x2028, 0x2029}
    ws |= {cp for cp, v in chars.items() if v[0] == "Zs"}
    ws_ranges = ranges_of(ws, lambda cp: 0)

    # --- canonical combining class ---
    ccc_ranges = ranges_of([cp for cp, v in chars.items() if v[1] != 0], lambda cp: chars[cp][1])

    # --- canonical decompositions (fully expanded, Hangul excluded) ---
    canon = {}
    for cp, (_, _, d) in chars.items():
        if d and not d.startswith("<"):
            canon[cp] = [int(x, 16) for x in d.split()]

    def full_decomp(cp):
        if cp in canon:
            out = []
            for c in canon[cp]:
                out.extend(full_decomp(c))
            return out
        return [cp]

    decomp_cps = sorted(canon)
    for cp in decomp_cps:
        assert 1 <= len(canon[cp]) <= 2, hex(cp)

    # --- primary composites: canonical pairs minus Full_Composition_Exclusion ---
    def ccc(cp):
        return chars.get(cp, ("Cn", 0, ""))[1]
    compositions = []
    for cp in decomp_cps:
        d = canon[cp]
        if len(d) != 2 or cp in exclusions:
            continue  # singletons and script-specific/post-version exclusions
        if ccc(cp) != 0 or ccc(d[0]) != 0:
            continue  # non-starter decompositions
        compositions.append((d[0], d[1], cp))
    compositions.sort()

    # --- NFC quick-check "unsafe" set: any char that is not NFC_QC=Yes with ccc 0 ---
    unsafe = set(cp for cp, v in chars.items() if v[1] != 0)
    unsafe |= {second for _, second, _ in compositions}           # NFC_QC=Maybe
    unsafe |= {cp for cp in canon if cp not in {c for _, _, c in compositions}
               and full_decomp(cp) != [cp]}                        # NFC_QC=No
    unsafe |= set(range(0x1161, 0x1176)) | set(range(0x11A8, 0x11C3))  # Hangul V, T jamo
    unsafe_ranges = ranges_of(unsafe, lambda cp: 0)

    version = read_version(args.ucd)
    out = []
    out.append("// Generated by scripts/gen_unicode_tables.py from the Unicode Character Database")
    out.append(f"// of {version}. Do not edit; rerun the script instead.")
    out.append("// Included by unicode.cc only. Hangul syllables are composed/decomposed algorithmically.")
    out.append("")
    out.append("// \\p{L} (1) and \\p{N} (2): {first, last, class}, sorted, non-overlapping.")
    out.append(f"constexpr ClassRange kClassRanges[{len(cat_ranges)}] = {{")
    out.append(emit_rows([f"{{0x{a:X},0x{b:X},{v}}}," for a, b, v in cat_ranges], 6))
    out.append("};")
    out.append("")
    out.append("// ECMAScript \\s (WhiteSpace + LineTerminator): {first, last}.")
    out.append(f"constexpr CodeRange kJsWhitespaceRanges[{len(ws_ranges)}] = {{")
    out.append(emit_rows([f"{{0x{a:X},0x{b:X}}}," for a, b, _ in ws_ranges], 8))
    out.append("};")
    out.append("")
    out.append("// Canonical_Combining_Class != 0: {first, last, ccc}.")
    out.append(f"constexpr CccRange kCccRanges[{len(ccc_ranges)}] = {{")
    out.append(emit_rows([f"{{0x{a:X},0x{b:X},{v}}}," for a, b, v in ccc_ranges], 6))
    out.append("};")
    out.append("")
    out.append("// Code points that may change under NFC, alone or next to others")
    out.append("// (ccc != 0, NFC_QC = No or Maybe): {first, last}.")
    out.append(f"constexpr CodeRange kNfcUnsafeRanges[{len(unsafe_ranges)}] = {{")
    out.append(emit_rows([f"{{0x{a:X},0x{b:X}}}," for a, b, _ in unsafe_ranges], 8))
    out.append("};")
    out.append("")
    out.append("// Canonical decompositions, one level (the C++ side recurses):")
    out.append("// {code point, first, second}; second = 0 for singletons.")
    out.append(f"constexpr Decomposition kDecompositions[{len(decomp_cps)}] = {{")
    out.append(emit_rows([f"{{0x{cp:X},0x{canon[cp][0]:X},0x{(canon[cp] + [0])[1]:X}}},"
                          for cp in decomp_cps], 5))
    out.append("};")
    out.append("")
    out.append("// CompositionExclusions.txt: decompositions never recomposed (besides singletons")
    out.append("// and non-starter decompositions, which the C++ side derives).")
    out.append(f"constexpr char32_t kCompositionExclusions[{len(exclusions)}] = {{")
    out.append(emit_rows([f"0x{c:X}," for c in sorted(exclusions)], 12))
    out.append("};")
    text = "\n".join(out) + "\n"

    with open(args.out, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    print(f"wrote {args.out}: {len(cat_ranges)} class ranges, {len(ccc_ranges)} ccc ranges, "
          f"{len(decomp_cps)} decompositions, {len(compositions)} compositions, {len(text)} bytes",
          file=sys.stderr)


if __name__ == "__main__":
    main()
