#!/usr/bin/env python3
"""Writes tests/data/tokenizer_corpus.jsonl: the texts of the tokenizer oracle test.

One JSON string per line (ASCII-escaped, so every line is plain ASCII). The
texts probe what byte-level BPE tokenizers get wrong: the pre-tokenizer regex
(contractions in every case, digit runs, whitespace runs before letters and
newlines), NFC normalization (decomposed accents and Hangul jamo), added
tokens inside text (complete and partial), scripts without spaces, emoji
sequences, and the characters where regex engines disagree on \\s (U+0085,
U+FEFF, U+00A0, U+2028).

Deterministic (fixed seed), no network:
    /usr/bin/python3 tests/tokenizer/make_corpus.py [--out PATH] [--seed 1234]
"""
import argparse
import json
import os
import random
import unicodedata

PROSE = [
    "The quick brown fox jumps over the lazy dog.",
    "It was the best of times, it was the worst of times.",
    "Quantization maps 32-bit floats onto a small grid of integers.",
    "She said, \"I'll be there at 5 p.m.\" -- and she was.",
    "Don't panic: the answer is 42 (probably).",
    "A family of models shares one tokenizer; the large member teaches the small ones.",
    "In 1969, Apollo 11 landed on the Moon; 600 million people watched.",
    "E-mail me at first.last+tag@example.com or visit https://example.org/a?b=c&d=e#frag.",
    "Well... that's odd!? Isn't it?!",
    "Mr. O'Neil's dog's bone wasn't where they'd left it; we've looked, we'll look again.",
    "Prices rose 3.5% year-over-year, from $1,299.99 to $1,345.46.",
    "Hello world's 123  x\n\n y",
    "    indented line\n\tTabbed line\n  \t mixed",
    "CamelCaseIdentifiers and snake_case_names and SCREAMING_CASE too.",
    "#hashtag @mention ~tilde ^caret |pipe \\backslash `backtick`",
]

CODE = [
    "def main(argv):\n    for i in range(10):\n        print(f\"{i:03d}\")\n    return 0\n",
    "int main(int argc, char** argv) {\n  std::vector<int> v{1, 2, 3};\n  return v.size() > 2 ? 0 : 1;\n}\n",
    "{\"name\": \"famq\", \"version\": \"0.1.0\", \"deps\": [\"xnnpack\", \"cpuinfo\"], \"ok\": true, \"n\": null}",
    "#!/bin/sh\nset -eu\nfor f in *.txt; do\n  wc -l \"$f\" | awk '{print $1}'\ndone\n",
    "SELECT id, name FROM users WHERE age >= 18 AND name LIKE 'A%' ORDER BY id DESC;",
    "class Foo:\n\tdef __init__(self):\n\t\tself.x = [1, 2, 3]\n\t\tself.y = {'a': 1}\n",
    "template <typename T>\nstruct Box { T value; };  // a box\n/* block\n   comment */\n",
    "    if (x != nullptr && *x == '\\n') { ++count; }\r\n    else { return -1; }\r\n",
    "<html><body><p class=\"x\">Hi &amp; bye</p></body></html>",
    "fn main() { let s: &str = \"hi\"; println!(\"{s:?}\"); }",
    "x = 1_000_000\ny = 0xDEADBEEF\nz = 3.14159e-10\nw = -0.5",
    "git commit -m 'fix: handle \\r\\n' && git push origin main --force-with-lease",
    "    \n        \n            deeply    indented   \n",
    "arr[i][j] += (a*b)/c - d%e << 2 >> 1 & 0xFF | ~mask ^ flag;",
]

WORDS_EN = ("time person year way day thing man world life hand part child eye woman place work week case point "
            "government company number group problem fact be have do say get make go know take see come think "
            "look want give use find tell ask seem feel try leave call good new first last long great little own "
            "other old right big high different small large next early young important few public bad same able "
            "tokenizer quantization inference kernel matrix vector gradient").split()

CONTRACTIONS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'VE", "'M", "'LL", "'D",
                "'Re", "'rE", "'Ve", "'Ll", "'lL", "'x", "'", "''", "'ſ", "'K"]

ACCENTED = ["café", "naïve", "résumé", "jalapeño", "Ångström", "façade", "crème brûlée", "Zoë", "Škoda",
            "Łódź", "Dvořák", "São Paulo", "Straße", "Ærøskøbing", "İstanbul", "Tiếng Việt", "Nguyễn"]

CYRILLIC = ["Привет, мир!", "Съешь же ещё этих мягких французских булок, да выпей чаю.", "Ёлка и йогурт",
            "Україна — це Європа.", "Здравствуйте, как у вас дела?"]
GREEK = ["Γειά σου Κόσμε!", "Ξεσκεπάζω την ψυχοφθόρα βδελυγμία.", "ΑΒΓΔ αβγδ ά έ ή ί ό ύ ώ ΐ ΰ", "ς σ Σ"]
CHINESE = ["你好，世界！", "我爱北京天安门。", "量化模型在设备上运行得更快。", "这是一个测试，包含数字123和English。",
           "人工智能（AI）正在改变世界。", "《红楼梦》是中国古典小说。"]
JAPANESE = ["こんにちは世界", "カタカナとひらがなと漢字。", "東京都渋谷区１－２－３", "ｶﾀｶﾅ半角", "ゔ ぱぴぷぺぽ ー〜"]
KOREAN = ["안녕하세요, 세계!", "한국어 토크나이저 시험입니다.", "가나다라마바사", "대한민국 서울특별시"]
ARABIC = ["مرحبا بالعالم", "السلام عليكم ورحمة الله", "العربية: ١٢٣٤٥٦٧٨٩٠"]
HEBREW = ["שלום עולם", "עִבְרִית עם ניקוד", "אבגד 123"]
DEVANAGARI = ["नमस्ते दुनिया", "हिन्दी भाषा में परीक्षण", "क्षत्रिय ज्ञान", "०१२३४५६७८९"]
THAI = ["สวัสดีชาวโลก", "ภาษาไทยไม่มีช่องว่างระหว่างคำ", "๑๒๓"]
OTHER_SCRIPTS = ["ქართული ენა", "Հայերեն", "தமிழ் மொழி", "ᚠᚢᚦᚨᚱᚲ", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕄𝕒𝕥𝕙", "ⅠⅡⅢ ① ② ½ ¼ ²³",
                 "𐍈𐌰𐌿𐍃", "ꓘ ꙮ", "Ω Å K µ ﬁ ﬀ"]
EMOJI = ["😀", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇺🇸", "🇯🇵🇰🇷", "❤️", "❤", "☺︎", "🧑🏿‍💻", "👩‍❤️‍💋‍👨",
         "#️⃣", "1️⃣", "🤷‍♀️", "🫠", "✈️", "🏴󠁧󠁢󠁳󠁣󠁴󠁿", "👋🏻👋🏼👋🏽👋🏾👋🏿"]
SPECIALS = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<think>", "</think>", "<tool_call>", "</tool_call>",
            "<|vision_start|>", "<|image_pad|>", "<|fim_prefix|>", "<tool_response>", "<|box_end|>"]
PARTIAL_SPECIALS = ["<|im_sta", "<|im_end", "im_end|>", "<|endoftext", "<think", "think>", "</think", "<|",
                    "|>", "<|im_start|", "<<|im_start|>>", "<|IM_START|>", "< |im_end| >", "<tool_call",
                    "<|im_start|><|im_start|>", "<think></think>"]
ODD_SPACES = ["\u00a0", "\u2028", "\u2029", "\u0085", "\ufeff", "\u3000", "\u2003", "\u200b", "\u1680",
              "\u202f", "\u205f", "\u180e", "\u000b", "\u000c", "\r", "\n", "\t", " "]
CONTROLS = ["\u0000", "\u0001", "\u0007", "\u001b", "\u007f", "\u0080", "\u009f", "\u00ad", "\u200d", "\u200e",
            "\ufffd", "\uffff", "\U0010ffff", "\U000e0001", "\ue000"]
DECOMPOSED = ["e\u0301", "a\u0308", "o\u0302\u0301", "n\u0303", "A\u030a", "c\u0327", "\u1100\u1161",
              "\u1100\u1161\u11a8", "\u1112\u1161\u11ab\u1100\u116e\u11a8", "i\u0307", "\u0391\u0301",
              "q\u0307\u0323", "s\u0323\u0307", "\u0915\u093c", "Ω\u0345", "e\u0301\u0301", "\u0301start"]


def nfd(s):
    return unicodedata.normalize("NFD", s)


def random_words(rng, n):
    return " ".join(rng.choice(WORDS_EN) for _ in range(n))


def random_number(rng):
    kind = rng.randrange(8)
    if kind == 0:
        return str(rng.randrange(10 ** rng.randrange(1, 25)))
    if kind == 1:
        return f"{rng.uniform(-1e6, 1e6):.{rng.randrange(0, 8)}f}"
    if kind == 2:
        return f"{rng.randrange(10**9):,}"
    if kind == 3:
        return f"{rng.randrange(1900, 2100)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}"
    if kind == 4:
        return f"{rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}"
    if kind == 5:
        return f"{rng.uniform(0, 1):.3e}"
    if kind == 6:
        return "+" + "".join(rng.choice("0123456789 -()") for _ in range(rng.randrange(5, 16)))
    return "v" + ".".join(str(rng.randrange(100)) for _ in range(rng.randrange(2, 5)))


def random_whitespace(rng):
    return "".join(rng.choice([" ", " ", "  ", "\t", "\n", "\r\n", "\n\n\n", "\r", " \n", "\u00a0", "\u3000"])
                   for _ in range(rng.randrange(1, 5)))


ALL_SNIPPETS = (PROSE + CODE + ACCENTED + CYRILLIC + GREEK + CHINESE + JAPANESE + KOREAN + ARABIC + HEBREW +
                DEVANAGARI + THAI + OTHER_SCRIPTS + EMOJI + SPECIALS + PARTIAL_SPECIALS + DECOMPOSED)


def random_unicode_char(rng):
    """A random assigned-looking code point from a spread of blocks (no surrogates)."""
    blocks = [(0x20, 0x7E), (0xA0, 0x24F), (0x300, 0x36F), (0x370, 0x3FF), (0x400, 0x4FF), (0x590, 0x6FF),
              (0x900, 0x97F), (0xE00, 0xE7F), (0x1100, 0x11FF), (0x2000, 0x206F), (0x20A0, 0x20CF),
              (0x2190, 0x22FF), (0x3000, 0x30FF), (0x4E00, 0x9FFF), (0xAC00, 0xD7A3), (0xFE00, 0xFE0F),
              (0xFF00, 0xFFEF), (0x1F300, 0x1FAFF), (0x1D400, 0x1D7FF), (0x20000, 0x2A6DF), (0xE0000, 0xE007F)]
    lo, hi = rng.choice(blocks)
    return chr(rng.randrange(lo, hi + 1))


def build(rng):
    out = []
    add = out.append

    # Fixed edge cases.
    for s in ["", " ", "  ", "\n", "\n\n", "\r\n", "\t", "a", "'", "''", "'s", " 's", "1", "12", "123", "1234",
              "Hello", " Hello", "Hello ", "  Hello", "Hello  ", "Hello\n", "\nHello", "Hello\n\n\nworld",
              "Hello \n world", "Hello\u00a0world", "Hello\u2028world", "Hello\u0085world", "\ufeffHello",
              "Hello\ufeff world", "x \u0085 y", "a\u00a0\u00a0b", "\u3000\u3000x", " \n \n ", "\r\r\n\n",
              "end with spaces   ", "   ", "\t\t\tx", "x\t\t\t", "a  b   c    d", "...", "!!!", "?!?!",
              "a.b.c", "a,b,c", "--", "—", "–", "…", "\"quoted\"", "«guillemets»", "„German“", "‘curly’ “quotes”"]:
        add(s)
    for s in ALL_SNIPPETS:
        add(s)
        add(" " + s)
        add(s + "\n")
    for s in ACCENTED + GREEK + KOREAN + DEVANAGARI + CYRILLIC:
        add(nfd(s))
        add("The word " + nfd(s) + " is decomposed.")
    for s in SPECIALS + PARTIAL_SPECIALS:
        add("Hello " + s + " world")
        add(s + "user\nWhat is 2+2?" + s)
        add("x" + s + "y")
        add("\n" + s + "\n")
    add("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n"
        "<|im_start|>assistant\n<think>\n\n</think>\n\nHello! How can I help?<|im_end|>")
    add("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>")
    for w in ["it", "IT", "We", "they", "you", "YOU", "She", "John", "o", "rock", "the cat"]:
        for c in CONTRACTIONS:
            add(w + c)
            add(w + c + " " + w + c.upper() + "!")
    for ch in ODD_SPACES + CONTROLS:
        add("a" + ch + "b")
        add(ch)
        add(ch * 3 + "x")
        add("x" + ch + " y")
        add("1" + ch + "2")
        add(" " + ch + "\n")
    for d in ["0", "7", "123", "1234567890", "3.14159", "1,000,000", "2024-01-31", "12:34:56", "1e10", "0x1F",
              "١٢٣", "０１２", "²", "½", "Ⅻ", "٣.١٤"]:
        add(d)
        add("x" + d + "y")
        add(" " + d + " ")
        add("abc" + d)
        add("$" + d)

    # Seeded random mixtures.
    while len(out) < 1500:
        kind = rng.randrange(10)
        if kind == 0:
            s = random_words(rng, rng.randrange(1, 30)).capitalize() + rng.choice([".", "!", "?", "", "\n"])
        elif kind == 1:
            s = " ".join(random_number(rng) for _ in range(rng.randrange(1, 6)))
        elif kind == 2:
            s = "".join(rng.choice(WORDS_EN) + random_whitespace(rng) for _ in range(rng.randrange(1, 8)))
        elif kind == 3:
            w = rng.choice(WORDS_EN)
            s = rng.choice([w, w.upper(), w.capitalize()]) + rng.choice(CONTRACTIONS) + " " + random_words(rng, 3)
        elif kind == 4:
            s = "".join(rng.choice(ALL_SNIPPETS) + rng.choice(["", " ", "\n", "  "]) for _ in range(rng.randrange(2, 5)))
        elif kind == 5:
            s = "".join(random_unicode_char(rng) for _ in range(rng.randrange(1, 30)))
        elif kind == 6:
            s = rng.choice(CODE)
            lines = s.split("\n")
            s = "\n".join(rng.choice(["", "  ", "\t", "    "]) + ln + rng.choice(["", " ", "  "]) for ln in lines)
        elif kind == 7:
            s = random_words(rng, 4) + " " + rng.choice(SPECIALS + PARTIAL_SPECIALS) + random_words(rng, 3)
        elif kind == 8:
            s = "".join(rng.choice(EMOJI) + rng.choice(["", " ", "\ufe0f", "\u200d"]) for _ in range(rng.randrange(1, 6)))
        else:
            s = nfd(rng.choice(ACCENTED + KOREAN + GREEK)) + random_whitespace(rng) + rng.choice(DECOMPOSED)
        add(s)
    # Random character soup from a small alphabet that stresses the regex.
    alphabet = list("aZ9 \t\n\r'.,!-_") + ["\u00a0", "\u0085", "\ufeff", "\u2028", "é", "e\u0301", "中", "😀", "١"]
    while len(out) < 2300:
        add("".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 40))))

    # A few long texts (~5k characters).
    add(" ".join(rng.choice(WORDS_EN) for _ in range(900))[:5000])
    add("".join(rng.choice(CHINESE + JAPANESE) for _ in range(300))[:5000])
    add("".join(str(rng.randrange(10)) for _ in range(5000)))
    add(" " * 3000 + "x" + "\n" * 1000 + " y")
    add("".join(rng.choice(ALL_SNIPPETS) + random_whitespace(rng) for _ in range(200))[:6000])
    add("a" * 5000)
    add("😀" * 1200)
    return out


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(here, "..", "data", "tokenizer_corpus.jsonl"))
    ap.add_argument("--seed", type=int, default=1234)
    a = ap.parse_args()
    texts = build(random.Random(a.seed))
    with open(a.out, "w", encoding="ascii", newline="\n") as f:
        for t in texts:
            f.write(json.dumps(t, ensure_ascii=True) + "\n")
    print(f"wrote {len(texts)} texts to {os.path.normpath(a.out)}")


if __name__ == "__main__":
    main()
