#include "finalize/calibration_set.h"

#include <algorithm>
#include <cmath>

namespace famq {

double CalibrationSet::TotalWeight() const {
  double s = 0.0;
  for (const CalibSample& c : samples) {
    for (float w : c.token_weights) s += w;
  }
  return s;
}

uint64_t CalibrationSet::CountedTokens() const {
  uint64_t n = 0;
  for (const CalibSample& c : samples) {
    n += static_cast<uint64_t>(std::count_if(c.token_weights.begin(), c.token_weights.end(), [](float w) { return w > 0; }));
  }
  return n;
}

Result<CalibrationSet> CalibrationFromBundle(const Bundle& bundle, const std::string& origin,
                                             const std::string& tokenizer_sha256, bool allow_foreign_family) {
  const fb::Payload& p = bundle.payload();
  const std::string family = p.family() && p.family()->tokenizer_sha256() ? p.family()->tokenizer_sha256()->str() : "";
  if (family != tokenizer_sha256 && !allow_foreign_family) {
    return InvalidArgument(origin + ": the bundle is for another family: its tokenizer hash " + family.substr(0, 16) +
                           "... differs from the model's " + tokenizer_sha256.substr(0, 16) +
                           "... (--allow-foreign-family to use it anyway)");
  }
  CalibrationSet set;
  set.kind = "bundle";
  set.source = origin;
  set.bundle_payload_sha256 = bundle.verification().payload_sha256;
  set.bundle_key_id = bundle.verification().key_id;
  if (p.samples() == nullptr || p.samples()->size() == 0) return InvalidFormat(origin + ": the bundle has no samples");
  for (const fb::Sample* s : *p.samples()) {
    CalibSample c;
    c.tokens.assign(s->tokens()->begin(), s->tokens()->end());
    double counted = 0.0;
    for (uint8_t m : *s->token_mask()) counted += m != 0 ? 1.0 : 0.0;
    c.token_weights.resize(c.tokens.size(), 0.0f);
    if (counted > 0.0) {
      for (size_t t = 0; t < c.tokens.size(); ++t) {
        if (s->token_mask()->Get(static_cast<uint32_t>(t)) != 0) {
          c.token_weights[t] = static_cast<float>(static_cast<double>(s->weight()) / counted);
        }
      }
    }
    set.seq_len = std::max(set.seq_len, static_cast<int>(c.tokens.size()));
    set.samples.push_back(std::move(c));
  }
  return set;
}

Result<CalibrationSet> CalibrationFromText(const Tokenizer& tokenizer, const std::string& text, int seq_len,
                                           const std::string& origin) {
  if (seq_len < 2) return InvalidArgument("calibration length " + std::to_string(seq_len) + " is below 2 tokens");
  std::vector<int32_t> ids;
  FAMQ_RETURN_IF_ERROR(tokenizer.Encode(text, &ids));
  if (ids.size() < 2) return InvalidArgument(origin + ": fewer than 2 tokens of calibration text");
  CalibrationSet set;
  set.kind = "text";
  set.source = origin;
  for (size_t start = 0; start + 2 <= ids.size(); start += static_cast<size_t>(seq_len)) {
    const size_t len = std::min(static_cast<size_t>(seq_len), ids.size() - start);
    CalibSample c;
    c.tokens.assign(ids.begin() + static_cast<std::ptrdiff_t>(start), ids.begin() + static_cast<std::ptrdiff_t>(start + len));
    c.token_weights.assign(len, 1.0f);
    c.token_weights[0] = 0.0f;
    set.seq_len = std::max(set.seq_len, static_cast<int>(len));
    set.samples.push_back(std::move(c));
  }
  const double n = static_cast<double>(set.samples.size());
  for (CalibSample& c : set.samples) {
    const double counted = static_cast<double>(c.tokens.size() - 1);
    for (float& w : c.token_weights) w = static_cast<float>(w / (n * counted));
  }
  return set;
}

Status MixPrivate(CalibrationSet* set, CalibrationSet private_set, float mass) {
  if (!(mass > 0.0f && mass < 1.0f)) {
    return InvalidArgument("--private-weight " + std::to_string(mass) + " must be in (0, 1)");
  }
  for (CalibSample& c : set->samples) {
    for (float& w : c.token_weights) w *= 1.0f - mass;
  }
  for (CalibSample& c : private_set.samples) {
    for (float& w : c.token_weights) w *= mass;
    set->seq_len = std::max(set->seq_len, static_cast<int>(c.tokens.size()));
    set->samples.push_back(std::move(c));
  }
  set->private_mix = mass;
  return Status::Ok();
}

}  // namespace famq
