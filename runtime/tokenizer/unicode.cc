#include "tokenizer/unicode.h"

#include <algorithm>
#include <array>
#include <utility>

namespace famq::unicode {
namespace {

struct CodeRange {
  char32_t first, last;
};
struct ClassRange {
  char32_t first, last;
  uint8_t cls;
};
struct CccRange {
  char32_t first, last;
  uint8_t ccc;
};
struct Decomposition {
  char32_t cp, first, second;  // second == 0: singleton
};

#include "tokenizer/unicode_tables.inc"

// Hangul syllable arithmetic (Unicode 15.0, section 3.12).
constexpr char32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr char32_t kLCount = 19, kVCount = 21, kTCount = 28;
constexpr char32_t kNCount = kVCount * kTCount, kSCount = kLCount * kNCount;

template <typename Range, size_t N>
const Range* FindRange(const Range (&ranges)[N], char32_t cp) {
  // First range whose `last` is >= cp; it holds cp if its `first` is <= cp.
  const Range* it = std::lower_bound(std::begin(ranges), std::end(ranges), cp,
                                     [](const Range& r, char32_t c) { return r.last < c; });
  return (it != std::end(ranges) && it->first <= cp) ? it : nullptr;
}

const Decomposition* FindDecomposition(char32_t cp) {
  const Decomposition* it =
      std::lower_bound(std::begin(kDecompositions), std::end(kDecompositions), cp,
                       [](const Decomposition& d, char32_t c) { return d.cp < c; });
  return (it != std::end(kDecompositions) && it->cp == cp) ? it : nullptr;
}

// Primary composites, keyed by (first << 21 | second), sorted; built once.
const std::vector<std::pair<uint64_t, char32_t>>& CompositionTable() {
  static const std::vector<std::pair<uint64_t, char32_t>> table = [] {
    std::vector<std::pair<uint64_t, char32_t>> t;
    for (const Decomposition& d : kDecompositions) {
      if (d.second == 0) continue;  // singletons never recompose
      if (std::binary_search(std::begin(kCompositionExclusions), std::end(kCompositionExclusions), d.cp)) {
        continue;
      }
      if (CombiningClass(d.cp) != 0 || CombiningClass(d.first) != 0) continue;  // non-starter
      t.emplace_back((uint64_t{d.first} << 21) | d.second, d.cp);
    }
    std::sort(t.begin(), t.end());
    return t;
  }();
  return table;
}

// The primary composite of (a, b), or 0 if there is none.
char32_t Compose(char32_t a, char32_t b) {
  if (a >= kLBase && a < kLBase + kLCount && b >= kVBase && b < kVBase + kVCount) {
    return kSBase + ((a - kLBase) * kVCount + (b - kVBase)) * kTCount;
  }
  if (a >= kSBase && a < kSBase + kSCount && (a - kSBase) % kTCount == 0 && b > kTBase &&
      b < kTBase + kTCount) {
    return a + (b - kTBase);
  }
  const auto& table = CompositionTable();
  const uint64_t key = (uint64_t{a} << 21) | b;
  auto it = std::lower_bound(table.begin(), table.end(), key,
                             [](const std::pair<uint64_t, char32_t>& e, uint64_t k) { return e.first < k; });
  return (it != table.end() && it->first == key) ? it->second : 0;
}

void DecomposeInto(char32_t cp, std::vector<char32_t>* out) {
  if (cp >= kSBase && cp < kSBase + kSCount) {
    const char32_t s = cp - kSBase;
    out->push_back(kLBase + s / kNCount);
    out->push_back(kVBase + (s % kNCount) / kTCount);
    if (s % kTCount != 0) out->push_back(kTBase + s % kTCount);
    return;
  }
  const Decomposition* d = FindDecomposition(cp);
  if (d == nullptr) {
    out->push_back(cp);
    return;
  }
  DecomposeInto(d->first, out);  // depth is bounded by the UCD (at most 4)
  if (d->second != 0) DecomposeInto(d->second, out);
}

// Canonical decomposition followed by the canonical ordering algorithm.
void Decompose(std::string_view text, std::vector<char32_t>* cps) {
  cps->clear();
  size_t pos = 0;
  while (pos < text.size()) DecomposeInto(DecodeUtf8(text, &pos), cps);
  // Canonical ordering: stable-sort each maximal run of non-starters by
  // combining class. O(n log n) in the longest run: a hostile run of
  // thousands of marks (which no real text has) costs no more than sorting it
  // (an insertion sort was quadratic: 6.9 s for 128 KB of alternating marks).
  std::vector<std::pair<uint8_t, char32_t>> run;
  const size_t n = cps->size();
  for (size_t i = 0; i < n;) {
    uint8_t cc = CombiningClass((*cps)[i]);
    if (cc == 0) {
      ++i;
      continue;
    }
    const size_t begin = i;
    run.clear();
    bool sorted = true;
    while (i < n && (cc = CombiningClass((*cps)[i])) != 0) {
      if (!run.empty() && run.back().first > cc) sorted = false;
      run.emplace_back(cc, (*cps)[i]);
      ++i;
    }
    if (sorted) continue;
    std::stable_sort(run.begin(), run.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    for (size_t k = 0; k < run.size(); ++k) (*cps)[begin + k] = run[k].second;
  }
}

void ComposeInPlace(std::vector<char32_t>* cps) {
  std::vector<char32_t>& buf = *cps;
  if (buf.empty()) return;
  size_t starter_pos = 0;
  char32_t starter = buf[0];
  // A leading non-starter blocks every later composition with it.
  int last_class = CombiningClass(starter) == 0 ? 0 : 256;
  size_t out = 1;
  for (size_t i = 1; i < buf.size(); ++i) {
    const char32_t ch = buf[i];
    const int ch_class = CombiningClass(ch);
    const char32_t composite = Compose(starter, ch);
    if (composite != 0 && (last_class < ch_class || last_class == 0)) {
      buf[starter_pos] = composite;
      starter = composite;
      continue;
    }
    if (ch_class == 0) {
      starter_pos = out;
      starter = ch;
    }
    last_class = ch_class;
    buf[out++] = ch;
  }
  buf.resize(out);
}

void Encode(const std::vector<char32_t>& cps, std::string* out) {
  out->clear();
  out->reserve(cps.size() * 3);
  for (char32_t c : cps) AppendUtf8(c, out);
}

}  // namespace

bool IsValidUtf8(std::string_view text) {
  size_t i = 0;
  const size_t n = text.size();
  while (i < n) {
    const auto b = static_cast<uint8_t>(text[i]);
    if (b < 0x80) {
      ++i;
      continue;
    }
    int need;
    uint8_t lo = 0x80, hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF) {
      need = 1;
    } else if (b >= 0xE0 && b <= 0xEF) {
      need = 2;
      if (b == 0xE0) lo = 0xA0;
      if (b == 0xED) hi = 0x9F;
    } else if (b >= 0xF0 && b <= 0xF4) {
      need = 3;
      if (b == 0xF0) lo = 0x90;
      if (b == 0xF4) hi = 0x8F;
    } else {
      return false;
    }
    if (n - i - 1 < static_cast<size_t>(need)) return false;
    for (int k = 1; k <= need; ++k) {
      const auto c = static_cast<uint8_t>(text[i + k]);
      if (c < (k == 1 ? lo : 0x80) || c > (k == 1 ? hi : 0xBF)) return false;
    }
    i += need + 1;
  }
  return true;
}

void AppendUtf8Lossy(std::string_view text, std::string* out) {
  size_t i = 0;
  const size_t n = text.size();
  while (i < n) {
    const auto b = static_cast<uint8_t>(text[i]);
    if (b < 0x80) {
      out->push_back(static_cast<char>(b));
      ++i;
      continue;
    }
    int need = 0;
    uint8_t lo = 0x80, hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF) {
      need = 1;
    } else if (b >= 0xE0 && b <= 0xEF) {
      need = 2;
      if (b == 0xE0) lo = 0xA0;
      if (b == 0xED) hi = 0x9F;
    } else if (b >= 0xF0 && b <= 0xF4) {
      need = 3;
      if (b == 0xF0) lo = 0x90;
      if (b == 0xF4) hi = 0x8F;
    }
    size_t j = i + 1;
    bool ok = need > 0;
    for (int k = 0; ok && k < need; ++k, ++j) {
      if (j >= n) {
        ok = false;
        break;
      }
      const auto c = static_cast<uint8_t>(text[j]);
      if (c < (k == 0 ? lo : 0x80) || c > (k == 0 ? hi : 0xBF)) {
        ok = false;
        break;
      }
    }
    if (ok) {
      out->append(text.substr(i, j - i));
    } else {
      AppendUtf8(kReplacementChar, out);  // the offending byte (at j) is not consumed
    }
    i = j;
  }
}

char32_t DecodeUtf8(std::string_view text, size_t* pos) {
  const size_t i = *pos;
  const auto b0 = static_cast<uint8_t>(text[i]);
  auto cont = [&](size_t k) -> char32_t {
    return i + k < text.size() ? static_cast<uint8_t>(text[i + k]) & 0x3F : 0;
  };
  if (b0 < 0x80) {
    *pos = i + 1;
    return b0;
  }
  if (b0 < 0xE0) {
    *pos = std::min(text.size(), i + 2);
    return (char32_t{b0 & 0x1Fu} << 6) | cont(1);
  }
  if (b0 < 0xF0) {
    *pos = std::min(text.size(), i + 3);
    return (char32_t{b0 & 0x0Fu} << 12) | (cont(1) << 6) | cont(2);
  }
  *pos = std::min(text.size(), i + 4);
  return (char32_t{b0 & 0x07u} << 18) | (cont(1) << 12) | (cont(2) << 6) | cont(3);
}

void AppendUtf8(char32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

CharClass ClassOf(char32_t cp) {
  if (cp < 0x80) {
    if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z') return CharClass::kLetter;
    if (cp >= '0' && cp <= '9') return CharClass::kNumber;
    return CharClass::kOther;
  }
  const ClassRange* r = FindRange(kClassRanges, cp);
  return r == nullptr ? CharClass::kOther : static_cast<CharClass>(r->cls);
}

bool IsJsWhitespace(char32_t cp) {
  if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0D);
  return FindRange(kJsWhitespaceRanges, cp) != nullptr;
}

uint8_t CombiningClass(char32_t cp) {
  if (cp < 0x300) return 0;
  const CccRange* r = FindRange(kCccRanges, cp);
  return r == nullptr ? 0 : r->ccc;
}

bool MayChangeUnderNfc(std::string_view text) {
  size_t pos = 0;
  while (pos < text.size()) {
    if (static_cast<uint8_t>(text[pos]) < 0x80) {
      ++pos;
      continue;
    }
    const char32_t cp = DecodeUtf8(text, &pos);
    if (FindRange(kNfcUnsafeRanges, cp) != nullptr) return true;
  }
  return false;
}

void NormalizeNfd(std::string_view text, std::string* out) {
  std::vector<char32_t> cps;
  Decompose(text, &cps);
  Encode(cps, out);
}

void NormalizeNfc(std::string_view text, std::string* out) {
  std::vector<char32_t> cps;
  Decompose(text, &cps);
  ComposeInPlace(&cps);
  Encode(cps, out);
}

}  // namespace famq::unicode
