// famq::Tokenizer: Hugging Face byte-level BPE from tokenizer.json, encoding
// exactly as the reference (transformers.js / Hugging Face tokenizers) does on
// the tokenizers famq supports (Qwen2/Qwen3, Llama-3, GPT-2 style).
//
// Pipeline of Encode:
//   added tokens split off (leftmost match, longest at that position)
//   -> normalizer (none | NFC | NFD) on each remaining segment
//   -> added tokens with normalized=true split off the normalized text
//   -> pre-tokenizer: Split(regex, Isolated)* then ByteLevel
//   -> BPE with merge ranks -> ids.
// Special tokens are never added (no BOS/EOS); callers add them explicitly.
//
// What tokenizer.json may contain is listed in docs/TOKENIZER.md; anything
// else is refused with kUnsupported naming the field. The file is treated as
// hostile: every size and id is bounded before use.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace famq {

class Tokenizer {
 public:
  // An empty tokenizer (no tokens); Encode of non-empty text fails.
  // Movable, not copyable; a moved-from Tokenizer may only be assigned to or
  // destroyed. All const methods are safe to call from several threads.
  Tokenizer();
  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Reads and parses `path` (a tokenizer.json of at most 256 MiB).
  // kIoError/kNotFound: unreadable; kInvalidFormat: malformed or inconsistent
  // (bad JSON, ids out of range, merge parts not in the vocabulary, ...);
  // kUnsupported: a model, normalizer, pre-tokenizer or decoder famq lacks.
  static Result<Tokenizer> LoadFile(const std::string& path);

  // As LoadFile on the text `json`; `origin` (usually the path) prefixes
  // every error message.
  static Result<Tokenizer> LoadJson(std::string_view json, const std::string& origin);

  // Appends the ids of `text` to *ids; no special tokens are added.
  // kInvalidArgument: `text` is not valid UTF-8, or a byte has no token and
  // the model has no unk_token (nothing is appended then).
  Status Encode(std::string_view text, std::vector<int32_t>* ids) const;

  // The concatenated TokenBytes of `ids`, with ill-formed UTF-8 replaced by
  // U+FFFD (maximal subparts). Out-of-range ids are skipped.
  std::string Decode(const std::vector<int32_t>& ids) const;

  // The raw bytes token `id` stands for (added tokens: their content);
  // "" if `id` names no token.
  std::string TokenBytes(int32_t id) const;

  // One past the largest id of the vocabulary and the added tokens.
  int32_t vocab_size() const;

  // The id of an added token's content or of a vocabulary spelling
  // (byte-level, as written in tokenizer.json).
  std::optional<int32_t> TokenId(std::string_view token) const;

  // The token as written in tokenizer.json ("" if `id` names no token).
  std::string_view TokenText(int32_t id) const;

  // True for added tokens marked "special".
  bool IsSpecial(int32_t id) const;

  // Lowercase hex SHA-256 of the canonical JSON (keys sorted, no spaces) of
  // the tokenizer.json this was loaded from: the tokenizer's identity.
  std::string ContentHash() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace famq
