#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <array>
#include <functional>
#include <nlohmann/json.hpp>
#include <queue>
#include <unordered_map>

#include "core/digest.h"
#include "core/file.h"
#include "core/json_excerpt.h"
#include "core/json_parse.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/unicode.h"

namespace famq {
namespace {

using Json = nlohmann::json;

// Bounds on what a tokenizer.json may hold (the largest real vocabularies are
// ~260k tokens; tokens are a few dozen bytes).
constexpr size_t kMaxFileBytes = size_t{256} << 20;
constexpr int64_t kMaxId = int64_t{1} << 24;           // ids lie in [0, kMaxId]
constexpr size_t kMaxTokenBytes = size_t{1} << 16;     // one token's spelling or content
constexpr size_t kMaxAddedTokens = size_t{1} << 20;
constexpr size_t kMaxMerges = size_t{1} << 24;
constexpr int kMaxNesting = 8;                          // Sequence inside Sequence ...
constexpr int kMaxTokenizerJsonDepth = 64;              // real files nest 5 deep

constexpr uint8_t kPresent = 1;
constexpr uint8_t kAdded = 2;
constexpr uint8_t kSpecial = 4;

enum class NormForm : uint8_t { kNfc, kNfd };

struct PreStep {
  bool byte_level = false;  // else a Split
  SplitPattern pattern = SplitPattern::kGpt2;
  bool add_prefix_space = false;  // ByteLevel only
  bool use_regex = true;          // ByteLevel only
};

struct AddedToken {
  std::string content;  // as matched (normalized for normalized=true tokens)
  int32_t id = 0;
  bool special = false, single_word = false, lstrip = false, rstrip = false, normalized = false;
};

// A byte trie over added-token contents: leftmost match, longest at that position.
class AddedMatcher {
 public:
  void Add(const std::string& content, int32_t token_index) {
    int32_t node = 0;
    first_byte_[static_cast<uint8_t>(content[0])] = true;
    for (char ch : content) {
      const uint64_t key = (static_cast<uint64_t>(node) << 8) | static_cast<uint8_t>(ch);
      auto it = edges_.find(key);
      if (it == edges_.end()) {
        it = edges_.emplace(key, static_cast<int32_t>(terminal_.size())).first;
        terminal_.push_back(-1);
      }
      node = it->second;
    }
    terminal_[node] = token_index;
  }
  bool empty() const { return terminal_.size() == 1; }

  // The token index of the longest token starting at text[pos], its length in
  // *len; -1 if none.
  int32_t LongestAt(std::string_view text, size_t pos, size_t* len) const {
    if (!first_byte_[static_cast<uint8_t>(text[pos])]) return -1;
    int32_t node = 0, best = -1;
    for (size_t k = pos; k < text.size(); ++k) {
      const uint64_t key = (static_cast<uint64_t>(node) << 8) | static_cast<uint8_t>(text[k]);
      auto it = edges_.find(key);
      if (it == edges_.end()) break;
      node = it->second;
      if (terminal_[node] >= 0) {
        best = terminal_[node];
        *len = k + 1 - pos;
      }
    }
    return best;
  }

 private:
  std::unordered_map<uint64_t, int32_t> edges_;  // (node << 8 | byte) -> child
  std::vector<int32_t> terminal_{-1};           // node -> token index or -1
  std::array<bool, 256> first_byte_{};
};

// One piece of text after the added tokens are split off: text or a token id.
struct Segment {
  std::string_view text;
  int32_t id = -1;  // >= 0: an added token
};

struct TokenEntry {
  uint32_t text_off = 0, text_len = 0;    // spelling in Impl::text_blob
  uint32_t bytes_off = 0, bytes_len = 0;  // raw bytes in Impl::bytes_blob
  uint8_t flags = 0;
};

struct MergeTarget {
  uint32_t rank;
  int32_t id;
};

// The code point that ends just before text[end] (valid UTF-8), its start in *begin.
char32_t DecodeBefore(std::string_view text, size_t end, size_t* begin) {
  size_t b = end - 1;
  while (b > 0 && (static_cast<uint8_t>(text[b]) & 0xC0) == 0x80) --b;
  *begin = b;
  size_t pos = b;
  return unicode::DecodeUtf8(text, &pos);
}

bool IsWordChar(char32_t cp) {
  return cp == '_' || unicode::ClassOf(cp) != unicode::CharClass::kOther;
}

// Reads an optional boolean member; absent or null leaves *out unchanged.
Status OptBool(const Json& obj, const char* key, const std::string& where, bool* out) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return Status::Ok();
  if (!it->is_boolean()) return InvalidFormat(where + "." + key + " is not a boolean");
  *out = it->get<bool>();
  return Status::Ok();
}

// The "type" string of a component object.
Result<std::string> TypeOf(const Json& obj, const std::string& where) {
  if (!obj.is_object()) return InvalidFormat(where + " is not an object");
  auto it = obj.find("type");
  if (it == obj.end() || !it->is_string()) return InvalidFormat(where + ".type is missing or not a string");
  return it->get<std::string>();
}

}  // namespace

struct Tokenizer::Impl {
  std::string origin;
  std::string hash;

  std::string text_blob, bytes_blob;
  std::vector<TokenEntry> entries;  // by id
  std::unordered_map<std::string_view, int32_t> vocab;        // spelling -> id (model vocab)
  std::unordered_map<std::string_view, int32_t> added_ids;    // content -> id
  std::unordered_map<uint64_t, MergeTarget> merges;           // (left << 32 | right) -> merge
  std::array<int32_t, 256> byte_token{};                      // byte -> id of its 1-char token, -1 if none
  std::optional<int32_t> unk_id;
  bool ignore_merges = false;

  std::vector<NormForm> normalizers;
  std::vector<PreStep> pre_steps;  // Split* then exactly one ByteLevel

  std::vector<AddedToken> added;
  AddedMatcher raw_matcher;         // normalized=false tokens, on the raw text
  AddedMatcher normalized_matcher;  // normalized=true tokens, on normalized text

  Status Fail(const std::string& detail) const { return InvalidFormat(origin + ": " + detail); }
  Status Refuse(const std::string& detail) const { return Unsupported(origin + ": " + detail); }

  Status Load(std::string_view json_text);
  Status LoadNormalizer(const Json& j, int depth);
  Status LoadPreTokenizer(const Json& j, int depth);
  Status LoadModel(const Json& model, const Json& added_tokens);
  Status LoadMerges(const Json& merges);

  void Normalize(std::string_view text, std::string* out) const;
  void SplitAdded(const AddedMatcher& matcher, std::string_view text, std::vector<Segment>* out) const;
  Status EncodeSegment(std::string_view text, std::vector<int32_t>* ids) const;
  Status EncodeSteps(std::string_view text, size_t step, SplitScratch* scratch, std::vector<int32_t>* ids) const;
  Status Bpe(std::string_view bytes, std::vector<int32_t>* ids) const;
};

// ---------------------------------------------------------------- loading --

Status Tokenizer::Impl::Load(std::string_view json_text) {
  if (json_text.size() > kMaxFileBytes) return Fail("larger than 256 MiB");
  // Depth-checked before the value exists: its dump() below and its
  // destruction recurse once per level.
  Json j;
  if (Status s = ParseJson(json_text, "tokenizer JSON", &j, kMaxTokenizerJsonDepth); !s.ok()) {
    return Fail(s.message());
  }
  if (!j.is_object()) return Fail("not a JSON object");
  try {
    // nlohmann's default object is a std::map: dump() sorts the keys.
    hash = Sha256Hex(j.dump(-1, ' ', false, Json::error_handler_t::replace));
  } catch (const std::exception& e) {
    return Fail(std::string("cannot serialize: ") + e.what());
  }

  static const Json kNull;
  auto member = [&](const char* key) -> const Json& {
    auto it = j.find(key);
    return it == j.end() ? kNull : *it;
  };
  const Json& model = member("model");
  if (!model.is_object()) return Fail("model is missing or not an object");
  FAMQ_RETURN_IF_ERROR(LoadNormalizer(member("normalizer"), 0));
  FAMQ_RETURN_IF_ERROR(LoadPreTokenizer(member("pre_tokenizer"), 0));
  if (pre_steps.empty() || !pre_steps.back().byte_level) {
    return Refuse("pre_tokenizer: only byte-level BPE is supported (Split* followed by ByteLevel)");
  }
  const Json& decoder = member("decoder");
  if (decoder.is_null()) return Refuse("decoder: null is not supported (ByteLevel expected)");
  FAMQ_ASSIGN_OR_RETURN(std::string decoder_type, TypeOf(decoder, origin + ": decoder"));
  if (decoder_type != "ByteLevel") return Refuse("decoder.type '" + decoder_type + "' is not supported");
  // post_processor only adds special tokens, which Encode never does;
  // truncation and padding concern batches.
  return LoadModel(model, member("added_tokens"));
}

Status Tokenizer::Impl::LoadNormalizer(const Json& j, int depth) {
  if (j.is_null()) return Status::Ok();
  if (depth > kMaxNesting) return Fail("normalizer: nested too deeply");
  FAMQ_ASSIGN_OR_RETURN(std::string type, TypeOf(j, origin + ": normalizer"));
  if (type == "NFC") {
    normalizers.push_back(NormForm::kNfc);
  } else if (type == "NFD") {
    normalizers.push_back(NormForm::kNfd);
  } else if (type == "Sequence") {
    auto it = j.find("normalizers");
    if (it == j.end() || !it->is_array()) return Fail("normalizer.normalizers is not an array");
    for (const Json& n : *it) FAMQ_RETURN_IF_ERROR(LoadNormalizer(n, depth + 1));
  } else {
    return Refuse("normalizer.type '" + type + "' is not supported (NFC, NFD, Sequence)");
  }
  if (normalizers.size() > 16) return Fail("normalizer: too many steps");
  return Status::Ok();
}

Status Tokenizer::Impl::LoadPreTokenizer(const Json& j, int depth) {
  if (j.is_null()) return Refuse("pre_tokenizer: null is not supported (ByteLevel expected)");
  if (depth > kMaxNesting) return Fail("pre_tokenizer: nested too deeply");
  FAMQ_ASSIGN_OR_RETURN(std::string type, TypeOf(j, origin + ": pre_tokenizer"));
  if (!pre_steps.empty() && pre_steps.back().byte_level) {
    return Refuse("pre_tokenizer: a step after ByteLevel is not supported");
  }
  if (type == "Sequence") {
    auto it = j.find("pretokenizers");
    if (it == j.end() || !it->is_array()) return Fail("pre_tokenizer.pretokenizers is not an array");
    for (const Json& p : *it) FAMQ_RETURN_IF_ERROR(LoadPreTokenizer(p, depth + 1));
    return Status::Ok();
  }
  if (pre_steps.size() >= 16) return Fail("pre_tokenizer: too many steps");
  PreStep step;
  if (type == "ByteLevel") {
    step.byte_level = true;
    step.add_prefix_space = true;  // the Hugging Face defaults
    step.use_regex = true;
    FAMQ_RETURN_IF_ERROR(OptBool(j, "add_prefix_space", origin + ": pre_tokenizer", &step.add_prefix_space));
    FAMQ_RETURN_IF_ERROR(OptBool(j, "use_regex", origin + ": pre_tokenizer", &step.use_regex));
    pre_steps.push_back(step);
    return Status::Ok();
  }
  if (type != "Split") {
    return Refuse("pre_tokenizer.type '" + type + "' is not supported (ByteLevel, Split, Sequence)");
  }
  auto pattern = j.find("pattern");
  if (pattern == j.end() || !pattern->is_object()) return Fail("pre_tokenizer Split.pattern is not an object");
  auto regex = pattern->find("Regex");
  if (regex == pattern->end()) return Refuse("pre_tokenizer Split.pattern: only Regex patterns are supported");
  if (!regex->is_string()) return Fail("pre_tokenizer Split.pattern.Regex is not a string");
  const std::string& source = regex->get_ref<const std::string&>();
  std::optional<SplitPattern> known = RecognizeSplitPattern(source);
  if (!known) {
    return Refuse("pre_tokenizer Split.pattern.Regex is not a known pattern (GPT-2, Qwen2, Llama-3): " +
                  source.substr(0, 200));
  }
  auto behavior = j.find("behavior");
  if (behavior == j.end() || !behavior->is_string() || behavior->get<std::string>() != "Isolated") {
    return Refuse("pre_tokenizer Split.behavior: only \"Isolated\" is supported");
  }
  bool invert = false;
  FAMQ_RETURN_IF_ERROR(OptBool(j, "invert", origin + ": pre_tokenizer Split", &invert));
  if (invert) return Refuse("pre_tokenizer Split.invert: true is not supported");
  step.pattern = *known;
  pre_steps.push_back(step);
  return Status::Ok();
}

Status Tokenizer::Impl::LoadModel(const Json& model, const Json& added_json) {
  auto type = model.find("type");
  if (type != model.end() && !(type->is_string() && type->get<std::string>() == "BPE")) {
    return Refuse("model.type " + JsonExcerpt(*type, 100) + " is not supported (BPE)");
  }
  auto expect_empty = [&](const char* key) -> Status {
    auto it = model.find(key);
    if (it == model.end() || it->is_null() || (it->is_string() && it->get_ref<const std::string&>().empty())) {
      return Status::Ok();
    }
    return Refuse(std::string("model.") + key + " " + JsonExcerpt(*it, 100) + " is not supported");
  };
  FAMQ_RETURN_IF_ERROR(expect_empty("dropout"));
  FAMQ_RETURN_IF_ERROR(expect_empty("continuing_subword_prefix"));
  FAMQ_RETURN_IF_ERROR(expect_empty("end_of_word_suffix"));
  bool byte_fallback = false;
  FAMQ_RETURN_IF_ERROR(OptBool(model, "byte_fallback", origin + ": model", &byte_fallback));
  if (byte_fallback) return Refuse("model.byte_fallback: true is not supported");
  FAMQ_RETURN_IF_ERROR(OptBool(model, "ignore_merges", origin + ": model", &ignore_merges));

  // Vocabulary: spelling -> id.
  auto vocab_it = model.find("vocab");
  if (vocab_it == model.end() || !vocab_it->is_object()) return Fail("model.vocab is missing or not an object");
  std::vector<std::pair<const std::string*, int32_t>> vocab_items;
  vocab_items.reserve(vocab_it->size());
  int64_t max_id = -1;
  for (auto it = vocab_it->begin(); it != vocab_it->end(); ++it) {
    const std::string& spelling = it.key();
    if (spelling.empty() || spelling.size() > kMaxTokenBytes) {
      return Fail("model.vocab: a token spelling is empty or longer than 64 KiB");
    }
    if (!it->is_number_integer() || it->get<int64_t>() < 0 || it->get<int64_t>() > kMaxId) {
      return Fail("model.vocab['" + spelling.substr(0, 100) + "']: id " + JsonExcerpt(*it) +
                  " is not an integer in [0, 2^24]");
    }
    const int64_t id = it->get<int64_t>();
    vocab_items.emplace_back(&spelling, static_cast<int32_t>(id));
    max_id = std::max(max_id, id);
  }

  // Added tokens.
  if (!added_json.is_null() && !added_json.is_array()) return Fail("added_tokens is not an array");
  const size_t num_added = added_json.is_array() ? added_json.size() : 0;
  if (num_added > kMaxAddedTokens) return Fail("added_tokens: more than 2^20 tokens");
  std::vector<AddedToken> added_items;
  added_items.reserve(num_added);
  for (size_t i = 0; i < num_added; ++i) {
    const Json& a = added_json[i];
    const std::string where = origin + ": added_tokens[" + std::to_string(i) + "]";
    if (!a.is_object()) return InvalidFormat(where + " is not an object");
    auto id = a.find("id");
    auto content = a.find("content");
    if (id == a.end() || !id->is_number_integer() || id->get<int64_t>() < 0 || id->get<int64_t>() > kMaxId) {
      return InvalidFormat(where + ".id is missing or not an integer in [0, 2^24]");
    }
    if (content == a.end() || !content->is_string() || content->get_ref<const std::string&>().empty() ||
        content->get_ref<const std::string&>().size() > kMaxTokenBytes) {
      return InvalidFormat(where + ".content is missing, empty or longer than 64 KiB");
    }
    AddedToken t;
    t.id = static_cast<int32_t>(id->get<int64_t>());
    t.content = content->get<std::string>();
    FAMQ_RETURN_IF_ERROR(OptBool(a, "special", where, &t.special));
    t.normalized = !t.special;  // the Hugging Face default
    FAMQ_RETURN_IF_ERROR(OptBool(a, "normalized", where, &t.normalized));
    FAMQ_RETURN_IF_ERROR(OptBool(a, "single_word", where, &t.single_word));
    FAMQ_RETURN_IF_ERROR(OptBool(a, "lstrip", where, &t.lstrip));
    FAMQ_RETURN_IF_ERROR(OptBool(a, "rstrip", where, &t.rstrip));
    max_id = std::max<int64_t>(max_id, t.id);
    added_items.push_back(std::move(t));
  }

  // Ids need not be contiguous, but a few tokens with huge ids must not make
  // us allocate for 2^24 of them.
  const size_t count = vocab_items.size() + added_items.size();
  if (max_id >= 0 && static_cast<uint64_t>(max_id) > 4 * count + 65536) {
    return Fail("token ids are too sparse: largest id " + std::to_string(max_id) + " for " +
                std::to_string(count) + " tokens");
  }
  entries.assign(static_cast<size_t>(max_id + 1), TokenEntry{});
  size_t text_bytes = 0;
  for (const auto& v : vocab_items) text_bytes += v.first->size();
  for (const auto& a : added_items) text_bytes += a.content.size();
  if (text_bytes > (size_t{1} << 31)) return Fail("token texts are larger than 2 GiB");
  text_blob.reserve(text_bytes);

  for (const auto& [spelling, id] : vocab_items) {
    TokenEntry& e = entries[id];
    if (e.flags & kPresent) {
      return Fail("model.vocab: id " + std::to_string(id) + " is used by '" +
                  text_blob.substr(e.text_off, std::min<size_t>(e.text_len, 100)) + "' and '" +
                  spelling->substr(0, 100) + "'");
    }
    e.flags = kPresent;
    e.text_off = static_cast<uint32_t>(text_blob.size());
    e.text_len = static_cast<uint32_t>(spelling->size());
    text_blob += *spelling;
  }
  for (AddedToken& t : added_items) {
    TokenEntry& e = entries[t.id];
    const std::string_view existing(text_blob.data() + e.text_off, e.text_len);
    if (e.flags & kAdded) {
      if (existing != t.content) {
        return Fail("added_tokens: id " + std::to_string(t.id) + " is given to two different tokens");
      }
      continue;  // a repeated entry
    }
    if (e.flags & kPresent) {
      // GPT-2 lists <|endoftext|> both in the vocabulary and as an added token.
      if (existing != t.content) {
        return Fail("added_tokens: id " + std::to_string(t.id) + " ('" + t.content.substr(0, 100) +
                    "') is the vocabulary token '" + std::string(existing.substr(0, 100)) + "'");
      }
    } else {
      e.text_off = static_cast<uint32_t>(text_blob.size());
      e.text_len = static_cast<uint32_t>(t.content.size());
      text_blob += t.content;
    }
    e.flags |= kPresent | kAdded | (t.special ? kSpecial : 0);
    added.push_back(std::move(t));
  }

  // Maps and raw bytes, now that text_blob no longer moves.
  vocab.reserve(vocab_items.size());
  for (const auto& [spelling, id] : vocab_items) {
    const TokenEntry& e = entries[id];
    vocab.emplace(std::string_view(text_blob.data() + e.text_off, e.text_len), id);
  }
  for (const AddedToken& t : added) {
    const TokenEntry& e = entries[t.id];
    if (!added_ids.emplace(std::string_view(text_blob.data() + e.text_off, e.text_len), t.id).second) {
      return Fail("added_tokens: '" + t.content.substr(0, 100) + "' is listed with two ids");
    }
  }
  bytes_blob.reserve(text_blob.size());
  for (TokenEntry& e : entries) {
    if (!(e.flags & kPresent)) continue;
    const std::string_view text(text_blob.data() + e.text_off, e.text_len);
    e.bytes_off = static_cast<uint32_t>(bytes_blob.size());
    // Added tokens stand for their content; a vocabulary spelling outside
    // the byte-level alphabet decodes to itself (as the ByteLevel decoder does).
    if ((e.flags & kAdded) || !byte_level::AppendDecoded(text, &bytes_blob)) bytes_blob.append(text);
    e.bytes_len = static_cast<uint32_t>(bytes_blob.size() - e.bytes_off);
  }
  for (int b = 0; b < 256; ++b) {
    std::string s;
    unicode::AppendUtf8(byte_level::CharOfByte(static_cast<uint8_t>(b)), &s);
    auto it = vocab.find(s);
    byte_token[b] = it == vocab.end() ? -1 : it->second;
  }

  // Added-token matchers: normalized=true tokens are matched on normalized text.
  for (size_t i = 0; i < added.size(); ++i) {
    AddedToken& t = added[i];
    if (t.normalized) {
      std::string n;
      Normalize(t.content, &n);
      if (n.empty()) continue;
      t.content = std::move(n);
      normalized_matcher.Add(t.content, static_cast<int32_t>(i));
    } else {
      raw_matcher.Add(t.content, static_cast<int32_t>(i));
    }
  }

  auto unk = model.find("unk_token");
  if (unk != model.end() && !unk->is_null()) {
    if (!unk->is_string()) return Fail("model.unk_token is not a string");
    const std::string& name = unk->get_ref<const std::string&>();
    auto v = vocab.find(name);
    auto a = added_ids.find(name);
    if (v != vocab.end()) {
      unk_id = v->second;
    } else if (a != added_ids.end()) {
      unk_id = a->second;
    } else {
      return Fail("model.unk_token '" + name.substr(0, 100) + "' is not a token");
    }
  }

  auto merges_it = model.find("merges");
  if (merges_it == model.end() || !merges_it->is_array()) return Fail("model.merges is missing or not an array");
  return LoadMerges(*merges_it);
}

Status Tokenizer::Impl::LoadMerges(const Json& list) {
  if (list.size() > kMaxMerges) return Fail("model.merges: more than 2^24 merges");
  merges.reserve(list.size());
  std::string joined;
  for (size_t i = 0; i < list.size(); ++i) {
    const Json& m = list[i];
    std::string_view left, right;
    if (m.is_string()) {
      // "a b": byte-level spellings never contain a space.
      const std::string& s = m.get_ref<const std::string&>();
      const size_t space = s.find(' ');
      if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos) {
        return Fail("model.merges[" + std::to_string(i) + "] '" + s.substr(0, 100) + "' is not two tokens");
      }
      left = std::string_view(s).substr(0, space);
      right = std::string_view(s).substr(space + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      left = m[0].get_ref<const std::string&>();
      right = m[1].get_ref<const std::string&>();
    } else {
      return Fail("model.merges[" + std::to_string(i) + "] is neither \"a b\" nor [a, b]");
    }
    auto l = vocab.find(left);
    auto r = vocab.find(right);
    if (l == vocab.end() || r == vocab.end()) {
      return Fail("model.merges[" + std::to_string(i) + "]: '" +
                  std::string(l == vocab.end() ? left.substr(0, 100) : right.substr(0, 100)) +
                  "' is not in the vocabulary");
    }
    joined.assign(left);
    joined.append(right);
    auto merged = vocab.find(joined);
    if (merged == vocab.end()) {
      return Fail("model.merges[" + std::to_string(i) + "]: the merged token '" + joined.substr(0, 100) +
                  "' is not in the vocabulary");
    }
    const uint64_t key = (static_cast<uint64_t>(static_cast<uint32_t>(l->second)) << 32) |
                         static_cast<uint32_t>(r->second);
    // A repeated pair takes its last rank, as in Hugging Face and transformers.js.
    merges[key] = MergeTarget{static_cast<uint32_t>(i), merged->second};
  }
  return Status::Ok();
}

// --------------------------------------------------------------- encoding --

void Tokenizer::Impl::Normalize(std::string_view text, std::string* out) const {
  out->assign(text);
  std::string tmp;
  for (NormForm form : normalizers) {
    if (form == NormForm::kNfc) {
      if (!unicode::MayChangeUnderNfc(*out)) continue;
      unicode::NormalizeNfc(*out, &tmp);
    } else {
      unicode::NormalizeNfd(*out, &tmp);
    }
    out->swap(tmp);
  }
}

// Splits `text` on the tokens of `matcher`, honouring lstrip/rstrip (the
// whitespace beside the token is dropped) and single_word (the token must not
// touch a word character). Text segments are never empty.
void Tokenizer::Impl::SplitAdded(const AddedMatcher& matcher, std::string_view text,
                                 std::vector<Segment>* out) const {
  if (matcher.empty()) {
    if (!text.empty()) out->push_back({text, -1});
    return;
  }
  size_t start = 0;  // of the pending text segment
  size_t pos = 0;
  while (pos < text.size()) {
    size_t len = 0;
    const int32_t index = matcher.LongestAt(text, pos, &len);
    if (index < 0) {
      ++pos;
      continue;
    }
    const AddedToken& t = added[index];
    if (t.single_word) {
      size_t before = 0, after = pos + len;
      const bool word_before = pos > 0 && IsWordChar(DecodeBefore(text, pos, &before));
      const bool word_after = after < text.size() && IsWordChar(unicode::DecodeUtf8(text, &after));
      if (word_before || word_after) {
        ++pos;
        continue;
      }
    }
    size_t gap_end = pos;
    if (t.lstrip) {
      size_t b = 0;
      while (gap_end > start && unicode::IsJsWhitespace(DecodeBefore(text, gap_end, &b))) gap_end = b;
    }
    if (gap_end > start) out->push_back({text.substr(start, gap_end - start), -1});
    out->push_back({{}, t.id});
    pos += len;
    if (t.rstrip) {
      while (pos < text.size()) {
        size_t next = pos;
        if (!unicode::IsJsWhitespace(unicode::DecodeUtf8(text, &next))) break;
        pos = next;
      }
    }
    start = pos;
  }
  if (start < text.size()) out->push_back({text.substr(start), -1});
}

Status Tokenizer::Impl::EncodeSegment(std::string_view text, std::vector<int32_t>* ids) const {
  SplitScratch scratch;
  if (normalizers.empty() && normalized_matcher.empty()) return EncodeSteps(text, 0, &scratch, ids);
  std::string normalized;
  Normalize(text, &normalized);
  std::vector<Segment> segments;
  SplitAdded(normalized_matcher, normalized, &segments);
  for (const Segment& s : segments) {
    if (s.id >= 0) {
      ids->push_back(s.id);
    } else {
      FAMQ_RETURN_IF_ERROR(EncodeSteps(s.text, 0, &scratch, ids));
    }
  }
  return Status::Ok();
}

// Runs pre-tokenizer step `step` (and those after it) on `text`, then BPE.
Status Tokenizer::Impl::EncodeSteps(std::string_view text, size_t step, SplitScratch* scratch,
                                    std::vector<int32_t>* ids) const {
  if (text.empty()) return Status::Ok();
  const PreStep& p = pre_steps[step];
  std::vector<TextSpan> pieces;
  if (!p.byte_level) {
    SplitWithPattern(p.pattern, text, scratch, &pieces);
    for (const TextSpan& s : pieces) {
      FAMQ_RETURN_IF_ERROR(EncodeSteps(text.substr(s.begin, s.end - s.begin), step + 1, scratch, ids));
    }
    return Status::Ok();
  }
  std::string prefixed;
  if (p.add_prefix_space && text[0] != ' ') {
    prefixed.reserve(text.size() + 1);
    prefixed.push_back(' ');
    prefixed.append(text);
    text = prefixed;
  }
  if (!p.use_regex) return Bpe(text, ids);
  SplitWithPattern(SplitPattern::kGpt2, text, scratch, &pieces);
  for (const TextSpan& s : pieces) FAMQ_RETURN_IF_ERROR(Bpe(text.substr(s.begin, s.end - s.begin), ids));
  return Status::Ok();
}

// Byte-pair encoding of one pre-token (raw bytes): repeatedly merges the
// adjacent pair of lowest rank, the leftmost among equals, as Hugging Face's
// word merge and transformers.js's priority queue do.
Status Tokenizer::Impl::Bpe(std::string_view bytes, std::vector<int32_t>* ids) const {
  if (bytes.empty()) return Status::Ok();
  if (ignore_merges) {
    std::string spelling;
    byte_level::AppendEncoded(bytes, &spelling);
    auto it = vocab.find(spelling);
    if (it != vocab.end()) {
      ids->push_back(it->second);
      return Status::Ok();
    }
  }
  struct Symbol {
    int32_t id;
    int32_t prev, next;  // indices into symbols (start byte offsets), -1 at the ends
  };
  const auto n = static_cast<int32_t>(bytes.size());
  std::vector<Symbol> symbols(bytes.size());
  for (int32_t i = 0; i < n; ++i) {
    symbols[i] = {byte_token[static_cast<uint8_t>(bytes[i])], i - 1, i + 1 < n ? i + 1 : -1};
  }
  struct Candidate {
    uint32_t rank;
    int32_t pos, right;       // the pair (symbols[pos], symbols[right])
    int32_t left_id, right_id;
    int32_t merged_id;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> queue;
  auto consider = [&](int32_t pos) {
    if (pos < 0) return;
    const int32_t right = symbols[pos].next;
    if (right < 0 || symbols[pos].id < 0 || symbols[right].id < 0) return;
    const uint64_t key = (static_cast<uint64_t>(static_cast<uint32_t>(symbols[pos].id)) << 32) |
                         static_cast<uint32_t>(symbols[right].id);
    auto it = merges.find(key);
    if (it == merges.end()) return;
    queue.push({it->second.rank, pos, right, symbols[pos].id, symbols[right].id, it->second.id});
  };
  for (int32_t i = 0; i + 1 < n; ++i) consider(i);
  while (!queue.empty()) {
    const Candidate c = queue.top();
    queue.pop();
    Symbol& left = symbols[c.pos];
    // Stale if either side has merged since (merged-away symbols get id -2).
    if (left.id != c.left_id || left.next != c.right || symbols[c.right].id != c.right_id) continue;
    Symbol& right = symbols[c.right];
    left.id = c.merged_id;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = c.pos;
    right.id = -2;
    right.next = -1;
    consider(left.prev);
    consider(c.pos);
  }
  for (int32_t i = 0; i >= 0; i = symbols[i].next) {
    int32_t id = symbols[i].id;
    if (id < 0) {
      if (!unk_id) {
        return InvalidArgument(origin + ": byte 0x" + HexEncode(reinterpret_cast<const uint8_t*>(&bytes[i]), 1) +
                               " has no token and the model has no unk_token");
      }
      id = *unk_id;
    }
    ids->push_back(id);
  }
  return Status::Ok();
}

}  // namespace famq

namespace famq {

Tokenizer::Tokenizer() : impl_(std::make_unique<Impl>()) {}
Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;

Result<Tokenizer> Tokenizer::LoadFile(const std::string& path) {
  FAMQ_ASSIGN_OR_RETURN(std::string text, ReadFile(path, kMaxFileBytes));
  return LoadJson(text, path);
}

Result<Tokenizer> Tokenizer::LoadJson(std::string_view json, const std::string& origin) {
  Tokenizer t;
  t.impl_->origin = origin;
  try {
    FAMQ_RETURN_IF_ERROR(t.impl_->Load(json));
  } catch (const std::exception& e) {  // nlohmann type errors on hostile input: a bug, but never escape
    return InvalidFormat(origin + ": " + e.what());
  }
  return t;
}

Status Tokenizer::Encode(std::string_view text, std::vector<int32_t>* ids) const {
  // Spans are 32-bit and normalization may grow the text.
  if (text.size() > (size_t{1} << 30)) return InvalidArgument(impl_->origin + ": text to encode is over 1 GiB");
  if (!unicode::IsValidUtf8(text)) return InvalidArgument(impl_->origin + ": text to encode is not valid UTF-8");
  const size_t mark = ids->size();
  std::vector<Segment> segments;
  impl_->SplitAdded(impl_->raw_matcher, text, &segments);
  if (!segments.empty() && impl_->pre_steps.empty()) {
    return InvalidArgument("the tokenizer is empty (not loaded)");
  }
  for (const Segment& s : segments) {
    if (s.id >= 0) {
      ids->push_back(s.id);
      continue;
    }
    Status st = impl_->EncodeSegment(s.text, ids);
    if (!st.ok()) {
      ids->resize(mark);
      return st;
    }
  }
  return Status::Ok();
}

std::string Tokenizer::Decode(const std::vector<int32_t>& ids) const {
  std::string bytes;
  for (int32_t id : ids) {
    if (id < 0 || static_cast<size_t>(id) >= impl_->entries.size()) continue;
    const TokenEntry& e = impl_->entries[id];
    bytes.append(impl_->bytes_blob, e.bytes_off, e.bytes_len);
  }
  std::string out;
  out.reserve(bytes.size());
  unicode::AppendUtf8Lossy(bytes, &out);
  return out;
}

std::string Tokenizer::TokenBytes(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= impl_->entries.size()) return {};
  const TokenEntry& e = impl_->entries[id];
  return impl_->bytes_blob.substr(e.bytes_off, e.bytes_len);
}

int32_t Tokenizer::vocab_size() const { return static_cast<int32_t>(impl_->entries.size()); }

std::optional<int32_t> Tokenizer::TokenId(std::string_view token) const {
  if (auto it = impl_->added_ids.find(token); it != impl_->added_ids.end()) return it->second;
  if (auto it = impl_->vocab.find(token); it != impl_->vocab.end()) return it->second;
  return std::nullopt;
}

std::string_view Tokenizer::TokenText(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= impl_->entries.size()) return {};
  const TokenEntry& e = impl_->entries[id];
  return std::string_view(impl_->text_blob.data() + e.text_off, e.text_len);
}

bool Tokenizer::IsSpecial(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= impl_->entries.size()) return false;
  return (impl_->entries[id].flags & kSpecial) != 0;
}

std::string Tokenizer::ContentHash() const { return impl_->hash; }

}  // namespace famq
