// Tokenizer unit tests: the byte-level alphabet, Unicode normalization, the
// pre-tokenizer patterns (expected pieces taken from JavaScript's RegExp, the
// reference's engine), BPE encode/decode on small hand-built tokenizers, and
// the loader's refusals. Exactness on the real Qwen3 tokenizer is the
// tokenizer_oracle test (tests/tokenizer/run_oracle_test.sh).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "core/file.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace famq {
namespace {

using Json = nlohmann::json;
using Ids = std::vector<int32_t>;

std::string Utf8(char32_t cp) {
  std::string s;
  unicode::AppendUtf8(cp, &s);
  return s;
}

// ------------------------------------------------------------ byte level --

TEST(ByteLevelTest, AllBytesRoundTrip) {
  std::set<char32_t> seen;
  std::string all;
  for (int b = 0; b < 256; ++b) {
    const char32_t c = byte_level::CharOfByte(static_cast<uint8_t>(b));
    EXPECT_TRUE(seen.insert(c).second) << "byte " << b << " shares its character";
    EXPECT_EQ(byte_level::ByteOfChar(c), b);
    all.push_back(static_cast<char>(b));
  }
  EXPECT_EQ(byte_level::CharOfByte('A'), U'A');
  EXPECT_EQ(byte_level::CharOfByte(' '), U'\u0120');  // Ġ
  EXPECT_EQ(byte_level::CharOfByte('\n'), U'\u010A');  // Ċ
  EXPECT_EQ(byte_level::ByteOfChar(U'\u0144'), -1);
  EXPECT_EQ(byte_level::ByteOfChar(U' '), -1);

  std::string encoded, decoded;
  byte_level::AppendEncoded(all, &encoded);
  EXPECT_TRUE(unicode::IsValidUtf8(encoded));
  ASSERT_TRUE(byte_level::AppendDecoded(encoded, &decoded));
  EXPECT_EQ(decoded, all);

  std::string out = "keep";
  EXPECT_FALSE(byte_level::AppendDecoded("ab c", &out));  // ' ' is not in the alphabet
  EXPECT_EQ(out, "keep");
}

// --------------------------------------------------------------- unicode --

std::string Nfc(std::string_view s) {
  std::string out;
  unicode::NormalizeNfc(s, &out);
  return out;
}
std::string Nfd(std::string_view s) {
  std::string out;
  unicode::NormalizeNfd(s, &out);
  return out;
}

TEST(UnicodeTest, NormalizationExamples) {
  EXPECT_EQ(Nfc("e\u0301"), "\u00e9");
  EXPECT_EQ(Nfd("\u00e9"), "e\u0301");
  EXPECT_EQ(Nfc("caf\u00e9"), "caf\u00e9");
  EXPECT_EQ(Nfc("\u1100\u1161\u11a8"), "\uac01");  // Hangul jamo L V T -> 각
  EXPECT_EQ(Nfd("\uac01"), "\u1100\u1161\u11a8");
  EXPECT_EQ(Nfc("\u212b"), "\u00c5");               // ANGSTROM SIGN: singleton
  EXPECT_EQ(Nfc("\u0958"), "\u0915\u093c");         // composition exclusion
  EXPECT_EQ(Nfc("q\u0307\u0323"), "q\u0323\u0307");  // canonical reordering, nothing composes
  EXPECT_EQ(Nfc("s\u0323\u0307"), "\u1e69");        // ṩ composes through two marks
  EXPECT_EQ(Nfd("\u1e69"), "s\u0323\u0307");
  EXPECT_EQ(Nfc("\u0301x"), "\u0301x");             // leading combining mark stays
  EXPECT_FALSE(unicode::MayChangeUnderNfc("plain ASCII"));
  EXPECT_TRUE(unicode::MayChangeUnderNfc("e\u0301"));
}

// The canonical ordering written the textbook way (an insertion sort of each
// run of non-starters), over the per-code-point decompositions: the reference
// for the n log n implementation.
std::string ReferenceNfd(std::string_view s) {
  std::vector<char32_t> cps;
  size_t pos = 0;
  while (pos < s.size()) {
    std::string one, d;
    unicode::AppendUtf8(unicode::DecodeUtf8(s, &pos), &one);
    unicode::NormalizeNfd(one, &d);  // one code point: nothing to reorder across
    size_t p = 0;
    while (p < d.size()) cps.push_back(unicode::DecodeUtf8(d, &p));
  }
  for (size_t i = 1; i < cps.size(); ++i) {
    const char32_t c = cps[i];
    const uint8_t cc = unicode::CombiningClass(c);
    if (cc == 0) continue;
    size_t j = i;
    while (j > 0 && unicode::CombiningClass(cps[j - 1]) > cc) {
      cps[j] = cps[j - 1];
      --j;
    }
    cps[j] = c;
  }
  std::string out;
  for (char32_t c : cps) unicode::AppendUtf8(c, &out);
  return out;
}

TEST(UnicodeTest, CanonicalOrderingMatchesReferenceOnRandomMarks) {
  // Starters, precomposed letters and marks of classes 1, 202, 216, 220, 230,
  // 232, 240 (several per class, to check stability).
  const char32_t kPool[] = {U'a', U'e', U's', U'q', 0x00E9, 0x1E69, 0x01FA, 0x0334, 0x0327, 0x031B, 0x0316,
                            0x0323, 0x0301, 0x0300, 0x0307, 0x0315, 0x0345, 0x05B0, 0x0E38, 0x1100, 0x1161};
  std::mt19937 rng(15);
  for (int round = 0; round < 2000; ++round) {
    std::string s;
    const int len = 1 + static_cast<int>(rng() % 24);
    for (int i = 0; i < len; ++i) unicode::AppendUtf8(kPool[rng() % std::size(kPool)], &s);
    const std::string want = ReferenceNfd(s);
    ASSERT_EQ(Nfd(s), want) << "round " << round;
    ASSERT_EQ(Nfc(s), Nfc(want)) << "round " << round;  // NFC(x) == NFC(NFD(x))
  }
}

TEST(UnicodeTest, LongRunsOfMarksNormalizeInLinearTime) {
  // Issue 15's trigger: "a" + K x U+0301 (ccc 230) + K x U+0316 (ccc 220) took
  // 6.9 s at 128 KB with an insertion sort (every U+0316 moves past every U+0301).
  const size_t k = 32 * 1024;  // 2-byte marks: 128 KB
  std::string s = "a";
  for (size_t i = 0; i < k; ++i) s += "\u0301";
  for (size_t i = 0; i < k; ++i) s += "\u0316";
  const auto t0 = std::chrono::steady_clock::now();
  const std::string nfc = Nfc(s);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // Sorted: a, K x U+0316, K x U+0301. U+0316 (class 220) does not block the
  // first U+0301 (230), so a + U+0301 composes to U+00E1 once.
  std::string expect = "\u00e1";
  for (size_t i = 0; i < k; ++i) expect += "\u0316";
  for (size_t i = 1; i < k; ++i) expect += "\u0301";
  EXPECT_EQ(nfc, expect);
  EXPECT_LT(seconds, 1.0) << "NFC of 128 KB of marks took " << seconds << " s";
}

TEST(UnicodeTest, Utf8ValidationAndRepair) {
  EXPECT_TRUE(unicode::IsValidUtf8("h\u00e9\u4e2d\U0001F600"));
  EXPECT_FALSE(unicode::IsValidUtf8("\xC3"));
  EXPECT_FALSE(unicode::IsValidUtf8("\xC0\xAF"));          // overlong
  EXPECT_FALSE(unicode::IsValidUtf8("\xED\xA0\x80"));      // surrogate
  EXPECT_FALSE(unicode::IsValidUtf8("\xF4\x90\x80\x80"));  // > U+10FFFF
  std::string out;
  unicode::AppendUtf8Lossy("a\xF0\x9F\x98" "b", &out);
  EXPECT_EQ(out, "a\uFFFD" "b");  // one maximal subpart -> one U+FFFD
  EXPECT_TRUE(unicode::IsJsWhitespace(0xFEFF));
  EXPECT_FALSE(unicode::IsJsWhitespace(0x85));
  EXPECT_TRUE(unicode::IsJsWhitespace(0xA0));
}

// ---------------------------------------------------------- pre-tokenizer --

std::vector<std::string> Split(SplitPattern p, std::string_view text) {
  SplitScratch scratch;
  std::vector<TextSpan> spans;
  SplitWithPattern(p, text, &scratch, &spans);
  std::vector<std::string> pieces;
  uint32_t expected_begin = 0;
  for (const TextSpan& s : spans) {
    EXPECT_EQ(s.begin, expected_begin) << "pieces must tile the text";
    expected_begin = s.end;
    pieces.emplace_back(text.substr(s.begin, s.end - s.begin));
  }
  EXPECT_EQ(expected_begin, text.size());
  return pieces;
}

using Pieces = std::vector<std::string>;

// Expected pieces: JavaScript `[...text.matchAll(/regex/gu)]` with the regexes
// transformers.js builds (node 20).
TEST(PreTokenizerTest, Gpt2) {
  EXPECT_EQ(Split(SplitPattern::kGpt2, "Hello world's 123  x\n\n y"),
            (Pieces{"Hello", " world", "'s", " 123", " ", " x", "\n\n", " y"}));
  EXPECT_EQ(Split(SplitPattern::kGpt2, "I'LL   go!! 12345\r\n\tok"),
            (Pieces{"I", "'", "LL", "  ", " go", "!!", " 12345", "\r\n", "\t", "ok"}));
  EXPECT_EQ(Split(SplitPattern::kGpt2, "don't\u00a0stop\u0085here \ufeffnow"),
            (Pieces{"don", "'t", "\u00a0", "stop", "\u0085", "here", " ", "\ufeff", "now"}));
  EXPECT_EQ(Split(SplitPattern::kGpt2, "  a+b=c;\n\n\n  end  "),
            (Pieces{" ", " a", "+", "b", "=", "c", ";", "\n\n\n ", " end", "  "}));
  EXPECT_TRUE(Split(SplitPattern::kGpt2, "").empty());
}

TEST(PreTokenizerTest, Qwen2) {
  EXPECT_EQ(Split(SplitPattern::kQwen2, "Hello world's 123  x\n\n y"),
            (Pieces{"Hello", " world", "'s", " ", "1", "2", "3", " ", " x", "\n\n", " y"}));
  EXPECT_EQ(Split(SplitPattern::kQwen2, "I'LL   go!! 12345\r\n\tok"),
            (Pieces{"I", "'LL", "  ", " go", "!!", " ", "1", "2", "3", "4", "5", "\r\n", "\tok"}));
  EXPECT_EQ(Split(SplitPattern::kQwen2, "don't\u00a0stop\u0085here \ufeffnow"),
            (Pieces{"don", "'t", "\u00a0stop", "\u0085here", " ", "\ufeffnow"}));
  EXPECT_EQ(Split(SplitPattern::kQwen2, "  a+b=c;\n\n\n  end  "),
            (Pieces{" ", " a", "+b", "=c", ";\n\n\n", " ", " end", "  "}));
  EXPECT_EQ(Split(SplitPattern::kQwen2, "\u65e5\u672c\u8a9e \u30c6\u30ad\u30b9\u30c8123 \u00e9"),
            (Pieces{"\u65e5\u672c\u8a9e", " \u30c6\u30ad\u30b9\u30c8", "1", "2", "3", " \u00e9"}));
}

TEST(PreTokenizerTest, Llama3) {
  EXPECT_EQ(Split(SplitPattern::kLlama3, "Hello world's 123  x\n\n y"),
            (Pieces{"Hello", " world", "'s", " ", "123", " ", " x", "\n\n", " y"}));
  EXPECT_EQ(Split(SplitPattern::kLlama3, "I'LL   go!! 12345\r\n\tok"),
            (Pieces{"I", "'LL", "  ", " go", "!!", " ", "123", "45", "\r\n", "\tok"}));
  EXPECT_EQ(Split(SplitPattern::kLlama3, "  a+b=c;\n\n\n  end  "),
            (Pieces{" ", " a", "+b", "=c", ";\n\n\n", " ", " end", "  "}));
}

TEST(PreTokenizerTest, RecognizesItsRegexes) {
  for (SplitPattern p : {SplitPattern::kGpt2, SplitPattern::kQwen2, SplitPattern::kLlama3}) {
    auto got = RecognizeSplitPattern(SplitPatternRegex(p));
    ASSERT_TRUE(got.has_value()) << SplitPatternName(p);
    EXPECT_EQ(*got, p);
  }
  EXPECT_FALSE(RecognizeSplitPattern("\\s+").has_value());
}

// -------------------------------------------------------------- tokenizer --

// A small byte-level BPE: byte b has id b; merges build "hello", "Ġw", "or".
Json SmallTokenizerJson() {
  Json vocab = Json::object();
  for (int b = 0; b < 256; ++b) vocab[Utf8(byte_level::CharOfByte(static_cast<uint8_t>(b)))] = b;
  const std::vector<std::pair<std::string, std::string>> merges = {
      {"h", "e"}, {"l", "l"}, {"he", "ll"}, {"hell", "o"}, {"\u0120", "w"}, {"o", "r"}};
  Json merge_list = Json::array();
  int id = 256;
  for (const auto& [a, b] : merges) {
    vocab[a + b] = id++;
    merge_list.push_back(a + " " + b);
  }
  vocab["xyz"] = 290;  // reachable only through ignore_merges
  auto added = [](int tid, const std::string& content, bool special) {
    return Json{{"id", tid},           {"content", content}, {"special", special}, {"single_word", false},
                {"lstrip", false},     {"rstrip", false},    {"normalized", false}};
  };
  Json added_tokens = Json::array({added(300, "<|end|>", true), added(301, "<a>", false),
                                   added(302, "<a>b", false), added(303, "<m>", false)});
  added_tokens[3]["lstrip"] = true;
  added_tokens[3]["rstrip"] = true;
  const std::string regex(SplitPatternRegex(SplitPattern::kQwen2));
  return Json{
      {"version", "1.0"},
      {"added_tokens", added_tokens},
      {"normalizer", {{"type", "NFC"}}},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         Json::array({Json{{"type", "Split"}, {"pattern", {{"Regex", regex}}}, {"behavior", "Isolated"},
                           {"invert", false}},
                      Json{{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}})}}},
      {"post_processor", nullptr},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model",
       {{"type", "BPE"}, {"unk_token", nullptr}, {"byte_fallback", false}, {"ignore_merges", false},
        {"vocab", vocab}, {"merges", merge_list}}},
  };
}

Tokenizer Load(const Json& j) {
  auto t = Tokenizer::LoadJson(j.dump(), "test.json");
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  return t.ok() ? std::move(t).value() : Tokenizer();
}

Ids Encode(const Tokenizer& t, std::string_view text) {
  Ids ids;
  Status s = t.Encode(text, &ids);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return ids;
}

TEST(TokenizerTest, EncodesWithMergeRanks) {
  const Tokenizer t = Load(SmallTokenizerJson());
  EXPECT_EQ(Encode(t, "hello"), (Ids{259}));
  // " world": Ġw (rank 4) before or (rank 5); l, d stay bytes.
  EXPECT_EQ(Encode(t, "hello world"), (Ids{259, 260, 261, 'l', 'd'}));
  // Equal ranks merge leftmost first.
  EXPECT_EQ(Encode(t, "lll"), (Ids{257, 'l'}));
  EXPECT_EQ(Encode(t, "llll"), (Ids{257, 257}));
  EXPECT_EQ(Encode(t, "hel"), (Ids{256, 'l'}));
  EXPECT_EQ(Encode(t, "xyz"), (Ids{'x', 'y', 'z'}));  // no merges reach "xyz"
  EXPECT_TRUE(Encode(t, "").empty());
  // Encode appends.
  Ids ids{7};
  ASSERT_TRUE(t.Encode("he", &ids).ok());
  EXPECT_EQ(ids, (Ids{7, 256}));
}

TEST(TokenizerTest, AddedTokensSplitFirst) {
  const Tokenizer t = Load(SmallTokenizerJson());
  EXPECT_EQ(Encode(t, "hello<|end|>hello"), (Ids{259, 300, 259}));
  EXPECT_EQ(Encode(t, "<|en"), (Ids{'<', '|', 'e', 'n'}));  // partial: plain bytes (one piece "<|")
  EXPECT_EQ(Encode(t, "<a>bc"), (Ids{302, 'c'}));            // longest token at the leftmost position
  EXPECT_EQ(Encode(t, "<a>c"), (Ids{301, 'c'}));
  EXPECT_EQ(Encode(t, "x  <m>\n y"), (Ids{'x', 303, 'y'}));  // lstrip/rstrip drop the spaces
  EXPECT_EQ(Encode(t, "<|end|><|end|>"), (Ids{300, 300}));
}

TEST(TokenizerTest, NormalizesWithNfc) {
  const Tokenizer t = Load(SmallTokenizerJson());
  EXPECT_EQ(Encode(t, "e\u0301"), (Ids{0xC3, 0xA9}));  // é precomposed
  Json j = SmallTokenizerJson();
  j["normalizer"] = nullptr;
  const Tokenizer raw = Load(j);
  EXPECT_EQ(Encode(raw, "e\u0301"), (Ids{'e', 0xCC, 0x81}));
  j["normalizer"] = Json{{"type", "Sequence"}, {"normalizers", Json::array({Json{{"type", "NFD"}}})}};
  EXPECT_EQ(Encode(Load(j), "\u00e9"), (Ids{'e', 0xCC, 0x81}));
}

TEST(TokenizerTest, IgnoreMergesEmitsWholeVocabWords) {
  Json j = SmallTokenizerJson();
  j["model"]["ignore_merges"] = true;
  const Tokenizer t = Load(j);
  EXPECT_EQ(Encode(t, "xyz"), (Ids{290}));
  EXPECT_EQ(Encode(t, "xyzz"), (Ids{'x', 'y', 'z', 'z'}));
}

TEST(TokenizerTest, ByteLevelPreTokenizerAlone) {
  Json j = SmallTokenizerJson();
  j["pre_tokenizer"] = Json{{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", true}};
  const Tokenizer t = Load(j);
  EXPECT_EQ(Encode(t, "hello"), (Ids{' ', 259}));  // prefix space, then the GPT-2 regex
  EXPECT_EQ(Encode(t, "hello world"), (Ids{' ', 259, 260, 261, 'l', 'd'}));
}

TEST(TokenizerTest, DecodeAndTokenViews) {
  const Tokenizer t = Load(SmallTokenizerJson());
  EXPECT_EQ(t.vocab_size(), 304);
  for (const std::string text : {"hello world", "caf\u00e9 \u4e2d\u6587 \U0001F600\u200d\U0001F4BB",
                                 "tabs\tand\r\nnewlines\n\n", "<|end|> and <a>b", "\u0985\u0995 123"}) {
    EXPECT_EQ(t.Decode(Encode(t, text)), text);
  }
  EXPECT_EQ(t.Decode({0xC3}), "\uFFFD");          // a lone lead byte
  EXPECT_EQ(t.Decode({'h', -1, 99999, 'i'}), "hi");  // out-of-range ids skipped
  EXPECT_EQ(t.TokenBytes(' '), " ");
  EXPECT_EQ(t.TokenText(' '), "\u0120");
  EXPECT_EQ(t.TokenBytes(300), "<|end|>");
  EXPECT_EQ(t.TokenBytes(259), "hello");
  EXPECT_EQ(t.TokenBytes(295), "");  // a hole between ids
  EXPECT_EQ(t.TokenBytes(-3), "");
  EXPECT_EQ(t.TokenId("\u0120w"), 260);
  EXPECT_EQ(t.TokenId("<|end|>"), 300);
  EXPECT_FALSE(t.TokenId("nope").has_value());
  EXPECT_TRUE(t.IsSpecial(300));
  EXPECT_FALSE(t.IsSpecial(301));
  EXPECT_FALSE(t.IsSpecial(259));
  EXPECT_FALSE(t.IsSpecial(100000));
}

TEST(TokenizerTest, ContentHashIsCanonical) {
  const Json j = SmallTokenizerJson();
  const Tokenizer a = Load(j);
  const std::string h = a.ContentHash();
  ASSERT_EQ(h.size(), 64u);
  EXPECT_EQ(h.find_first_not_of("0123456789abcdef"), std::string::npos);
  // Same content, other spacing: same hash.
  auto pretty = Tokenizer::LoadJson(j.dump(2), "pretty.json");
  ASSERT_TRUE(pretty.ok());
  EXPECT_EQ(pretty->ContentHash(), h);
  Json changed = j;
  changed["model"]["vocab"]["xyz"] = 291;
  EXPECT_NE(Load(changed).ContentHash(), h);
  // Same content, keys in another order: same hash.
  nlohmann::ordered_json reordered;
  for (auto it = j.rbegin(); it != j.rend(); ++it) reordered[it.key()] = *it;
  ASSERT_NE(reordered.dump(), j.dump());
  auto other_order = Tokenizer::LoadJson(reordered.dump(), "reordered.json");
  ASSERT_TRUE(other_order.ok());
  EXPECT_EQ(other_order->ContentHash(), h);
}

TEST(TokenizerTest, MovesKeepWorking) {
  Tokenizer a = Load(SmallTokenizerJson());
  Tokenizer b(std::move(a));
  EXPECT_EQ(Encode(b, "hello"), (Ids{259}));
  Tokenizer c;
  c = std::move(b);
  EXPECT_EQ(Encode(c, "hello<|end|>"), (Ids{259, 300}));
  EXPECT_EQ(c.TokenText(259), "hello");
}

TEST(TokenizerTest, UnknownBytes) {
  Json j = SmallTokenizerJson();
  j["model"]["vocab"] = Json{{"a", 0}, {"b", 1}};
  j["model"]["merges"] = Json::array({Json::array({"a", "b"})});
  j["model"]["vocab"]["ab"] = 2;
  j["added_tokens"] = Json::array();
  const Tokenizer t = Load(j);
  EXPECT_EQ(Encode(t, "abab"), (Ids{2, 2}));  // [a, b] pair-format merges
  Ids ids{5};
  Status s = t.Encode("abc", &ids);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ids, (Ids{5})) << "nothing appended on failure";
  j["model"]["unk_token"] = "a";
  EXPECT_EQ(Encode(Load(j), "abc"), (Ids{2, 0}));
}

TEST(TokenizerTest, InvalidUtf8IsRefused) {
  const Tokenizer t = Load(SmallTokenizerJson());
  Ids ids;
  EXPECT_EQ(t.Encode("ab\xFF", &ids).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(t.Encode("\xE2\x82", &ids).code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(ids.empty());
}

StatusCode LoadCode(const Json& j) { return Tokenizer::LoadJson(j.dump(), "bad.json").status().code(); }

TEST(TokenizerTest, LoadErrors) {
  EXPECT_EQ(Tokenizer::LoadJson("{\"model\": ", "x.json").status().code(), StatusCode::kInvalidFormat);
  EXPECT_EQ(Tokenizer::LoadJson("[1,2]", "x.json").status().code(), StatusCode::kInvalidFormat);
  EXPECT_EQ(Tokenizer::LoadJson("", "x.json").status().code(), StatusCode::kInvalidFormat);
  const std::string deep = "{\"x\":" + std::string(1000000, '[') + std::string(1000000, ']') + "}";
  EXPECT_EQ(Tokenizer::LoadJson(deep, "deep.json").status().code(), StatusCode::kInvalidFormat);
  auto err = Tokenizer::LoadJson("{", "some/where.json");
  EXPECT_NE(err.status().message().find("some/where.json"), std::string::npos) << "errors name the origin";

  Json j = SmallTokenizerJson();
  j["model"]["type"] = "WordPiece";
  EXPECT_EQ(LoadCode(j), StatusCode::kUnsupported);

  j = SmallTokenizerJson();
  j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "\\s+|\\w+";
  EXPECT_EQ(LoadCode(j), StatusCode::kUnsupported);
  j = SmallTokenizerJson();
  j["pre_tokenizer"]["pretokenizers"][0]["behavior"] = "Removed";
  EXPECT_EQ(LoadCode(j), StatusCode::kUnsupported);
  j = SmallTokenizerJson();
  j["pre_tokenizer"] = Json{{"type", "Whitespace"}};
  EXPECT_EQ(LoadCode(j), StatusCode::kUnsupported);
  j = SmallTokenizerJson();
  j["normalizer"] = Json{{"type", "Lowercase"}};
  EXPECT_EQ(LoadCode(j), StatusCode::kUnsupported);
  j = SmallTokenizerJson();
  j["decoder"] = Json{{"type", "Metaspace"}};
  EXPECT_EQ(LoadCode(j), StatusCode::kUnsupported);
  j = SmallTokenizerJson();
  j["model"]["byte_fallback"] = true;
  EXPECT_EQ(LoadCode(j), StatusCode::kUnsupported);

  j = SmallTokenizerJson();
  j["model"]["merges"].push_back("q \u0120zz");  // right part not in the vocabulary
  EXPECT_EQ(LoadCode(j), StatusCode::kInvalidFormat);
  j = SmallTokenizerJson();
  j["model"]["merges"].push_back("x y");  // "xy" is not in the vocabulary
  EXPECT_EQ(LoadCode(j), StatusCode::kInvalidFormat);
  j = SmallTokenizerJson();
  j["model"]["merges"].push_back("onlyone");
  EXPECT_EQ(LoadCode(j), StatusCode::kInvalidFormat);
  j = SmallTokenizerJson();
  j["model"]["vocab"][std::string(100, '[') + "\"\\{"] = 295;  // brackets in strings do not nest
  ASSERT_EQ(LoadCode(j), StatusCode::kOk);
  j["model"]["merges"].push_back("a b c");
  EXPECT_EQ(LoadCode(j), StatusCode::kInvalidFormat);

  j = SmallTokenizerJson();
  j["model"]["vocab"]["far"] = (1 << 24) + 1;  // out of range
  EXPECT_EQ(LoadCode(j), StatusCode::kInvalidFormat);
  j = SmallTokenizerJson();
  j["model"]["vocab"]["far"] = 1 << 24;  // in range, but far too sparse
  EXPECT_EQ(LoadCode(j), StatusCode::kInvalidFormat);
  j = SmallTokenizerJson();
  j["model"]["vocab"]["neg"] = -1;
  EXPECT_EQ(LoadCode(j), StatusCode::kInvalidFormat);
  j = SmallTokenizerJson();
  j["model"]["vocab"]["dup"] = 5;  // id 5 is already a byte
  EXPECT_EQ(LoadCode(j), StatusCode::kInvalidFormat);
  j = SmallTokenizerJson();
  j["added_tokens"][1]["id"] = 5;  // an added token on a vocabulary id, other content
  EXPECT_EQ(LoadCode(j), StatusCode::kInvalidFormat);
  j = SmallTokenizerJson();
  j["added_tokens"][1]["content"] = "";
  EXPECT_EQ(LoadCode(j), StatusCode::kInvalidFormat);
  j = SmallTokenizerJson();
  j["model"]["vocab"] = Json::array();
  EXPECT_EQ(LoadCode(j), StatusCode::kInvalidFormat);
  j = SmallTokenizerJson();
  j["added_tokens"][0]["special"] = "yes";
  EXPECT_EQ(LoadCode(j), StatusCode::kInvalidFormat);

  // GPT-2 style: an added token that is also the same vocabulary token is fine.
  j = SmallTokenizerJson();
  j["added_tokens"][1]["id"] = 'A';
  j["added_tokens"][1]["content"] = "A";
  auto ok = Tokenizer::LoadJson(j.dump(), "ok.json");
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->TokenId("A"), 'A');
}

TEST(TokenizerTest, LoadsTheTestFamilyTokenizer) {
  const std::string path = std::string(FAMQ_SOURCE_DIR) + "/tests/data/tiny-random-qwen3/tokenizer.json";
  if (!FileExists(path)) GTEST_SKIP() << path << " is not there";
  auto t = Tokenizer::LoadFile(path);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_GT(t->vocab_size(), 256);
  const std::string text = "Hello world, 12 + 34 = 46.\n<|im_start|>user";
  Ids ids;
  ASSERT_TRUE(t->Encode(text, &ids).ok());
  EXPECT_LT(ids.size(), text.size()) << "merges apply";
  EXPECT_EQ(t->Decode(ids), text);
  const auto im_start = t->TokenId("<|im_start|>");
  ASSERT_TRUE(im_start.has_value());
  EXPECT_TRUE(t->IsSpecial(*im_start));
  EXPECT_NE(std::find(ids.begin(), ids.end(), *im_start), ids.end()) << "the special token is matched in text";
}

TEST(TokenizerTest, LoadFileErrors) {
  auto t = Tokenizer::LoadFile("/nonexistent/famq/tokenizer.json");
  EXPECT_FALSE(t.ok());
}

}  // namespace
}  // namespace famq
