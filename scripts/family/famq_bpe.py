"""Byte-level BPE helpers shared by the famq-tiny data scripts.

Pre-tokenization follows the Qwen2 split regex exactly:

    (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*
    |\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+

Python's `re` has no \\p{L}/\\p{N}, so `pretokenize()` builds an equivalent
pattern whose classes list the exact letters/numbers/white space found in the
text being split (ASCII ranges plus every non-ASCII character present, classified
with `unicodedata`: L = Lu Ll Lt Lm Lo, N = Nd Nl No, \\s = Unicode White_Space).
On that text the two patterns accept the same matches, so the pieces are those
Hugging Face tokenizers / famq's C++ tokenizer produce (up to differences in the
Unicode version of the character tables).
"""
import functools
import re
import unicodedata

QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                 r"|\s*[\r\n]+|\s+(?!\S)|\s+")
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]
SPECIAL_FLAGS = {"<|endoftext|>": True, "<|im_start|>": True, "<|im_end|>": True,
                 "<think>": False, "</think>": False}

# Unicode White_Space property (what \s means in Oniguruma / Rust regex).
WHITE_SPACE = set(chr(c) for c in [0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680,
                                   *range(0x2000, 0x200B), 0x2028, 0x2029, 0x202F, 0x205F, 0x3000])


def bytes_to_unicode():
    """GPT-2's reversible byte -> printable character map used by byte-level BPE."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + \
        list(range(ord("\xae"), ord("\xff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


B2U = bytes_to_unicode()
BYTE_TABLE = [B2U[b] for b in range(256)]


def _cls_escape(chars):
    return "".join("\\" + c if c in "\\]^-[" else c for c in sorted(chars))


@functools.lru_cache(maxsize=64)
def _pattern_for(extra):
    """Compile the Qwen2 pattern for ASCII plus the non-ASCII characters in `extra`."""
    letters, numbers, spaces = set(), set(), set()
    for ch in extra:
        cat = unicodedata.category(ch)
        if ch in WHITE_SPACE:
            spaces.add(ch)
        elif cat[0] == "L":
            letters.add(ch)
        elif cat[0] == "N":
            numbers.add(ch)
    L = "A-Za-z" + _cls_escape(letters)
    N = "0-9" + _cls_escape(numbers)
    S = "\\t\\n\\x0b\\x0c\\r " + _cls_escape(spaces)
    pat = (rf"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n{L}{N}]?[{L}]+|[{N}]| ?[^{S}{L}{N}]+[\r\n]*"
           rf"|[{S}]*[\r\n]+|[{S}]+(?![^{S}])|[{S}]+")
    return re.compile(pat)


def pretokenize(text):
    """Split text (already NFC-normalized, no special tokens) into Qwen2 pre-tokens."""
    extra = "".join(sorted(set(c for c in text if c >= "\x80"))) if not text.isascii() else ""
    return _pattern_for(extra).findall(text)


def to_byte_symbols(piece):
    return "".join(BYTE_TABLE[b] for b in piece.encode("utf-8"))


_SPECIAL_RE = re.compile("|".join(re.escape(s) for s in sorted(SPECIALS, key=len, reverse=True)))


def split_specials(text):
    """Yield (is_special, chunk) in order; special tokens are matched on the raw text."""
    pos = 0
    for m in _SPECIAL_RE.finditer(text):
        if m.start() > pos:
            yield False, text[pos:m.start()]
        yield True, m.group(0)
        pos = m.end()
    if pos < len(text):
        yield False, text[pos:]


class Encoder:
    """Reference encoder for a tokenizer.json written by train_tokenizer.py."""

    def __init__(self, tok_json):
        model = tok_json["model"]
        self.vocab = model["vocab"]
        self.ranks = {}
        for i, m in enumerate(model["merges"]):
            a, b = m.split(" ") if isinstance(m, str) else m
            self.ranks[(a, b)] = i
        self.added = {t["content"]: t["id"] for t in tok_json.get("added_tokens", [])}
        self.cache = {}

    def bpe(self, sym):
        cached = self.cache.get(sym)
        if cached is not None:
            return cached
        word = list(sym)
        ranks = self.ranks
        while len(word) > 1:
            best, best_i = None, -1
            for i in range(len(word) - 1):
                r = ranks.get((word[i], word[i + 1]))
                if r is not None and (best is None or r < best):
                    best, best_i = r, i
            if best is None:
                break
            a, b = word[best_i], word[best_i + 1]
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and word[i] == a and word[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            word = out
        ids = [self.vocab[w] for w in word]
        if len(self.cache) < 500000:
            self.cache[sym] = ids
        return ids

    def encode(self, text):
        ids = []
        for special, chunk in split_specials(text):
            if special:
                ids.append(self.added[chunk])
                continue
            chunk = unicodedata.normalize("NFC", chunk)
            for piece in pretokenize(chunk):
                ids.extend(self.bpe(to_byte_symbols(piece)))
        return ids

    def count(self, text):
        n = 0
        for special, chunk in split_specials(text):
            if special:
                n += 1
                continue
            chunk = unicodedata.normalize("NFC", chunk)
            for piece in pretokenize(chunk):
                n += len(self.bpe(to_byte_symbols(piece)))
        return n
