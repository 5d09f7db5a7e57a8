#include "bundle/bundle_contents.h"

#include <cmath>

#include "bundle/bundle.h"
#include "schema/bundle_payload_generated.h"

namespace famq {
namespace {

flatbuffers::Offset<fb::ModelId> Model(flatbuffers::FlatBufferBuilder& fbb, const ModelIdentity& m) {
  return fb::CreateModelId(fbb, fbb.CreateString(m.name), fbb.CreateString(m.config_sha256), m.parameters);
}

}  // namespace

Result<std::vector<uint8_t>> SerializeBundlePayload(const BundleContents& c) {
  if (c.samples.empty()) return InvalidArgument("bundle: no samples to pack");
  if (c.family.tokenizer_sha256.size() != 64) return InvalidArgument("bundle: tokenizer SHA-256 missing");
  double weight_sum = 0.0;
  uint64_t total_tokens = 0;
  uint32_t kept = 0;
  for (size_t i = 0; i < c.samples.size(); ++i) {
    const auto& s = c.samples[i];
    if (s.tokens.empty() || s.token_mask.size() != s.tokens.size()) {
      return InvalidArgument("bundle: sample " + std::to_string(i) + " has no tokens or a mask of another length");
    }
    if (!std::isfinite(s.weight) || s.weight < 0.0f) {
      return InvalidArgument("bundle: sample " + std::to_string(i) + " has weight " + std::to_string(s.weight));
    }
    weight_sum += s.weight;
    total_tokens += s.tokens.size();
    kept += s.regenerated ? 1u : 0u;
  }
  if (std::fabs(weight_sum - 1.0) > 1e-4) {
    return InvalidArgument("bundle: sample weights sum to " + std::to_string(weight_sum) + ", not 1");
  }

  flatbuffers::FlatBufferBuilder fbb(1024 + total_tokens * 5 + c.samples.size() * 128);
  fbb.ForceDefaults(true);
  std::vector<flatbuffers::Offset<fb::Sample>> samples;
  samples.reserve(c.samples.size());
  for (const auto& s : c.samples) {
    auto tokens = fbb.CreateVector(s.tokens);
    auto mask = fbb.CreateVector(s.token_mask);
    flatbuffers::Offset<fb::Scores> scores;
    if (s.scores) {
      const auto& t = *s.scores;
      scores = fb::CreateScores(fbb, t.fidelity, t.consistency, t.diversity, t.penalty, t.total, t.distinct2,
                                t.generated_tokens, t.finished);
    }
    auto text = fbb.CreateString(s.text);
    fb::SampleBuilder sb(fbb);
    sb.add_tokens(tokens);
    sb.add_token_mask(mask);
    sb.add_weight(s.weight);
    sb.add_group(s.group);
    sb.add_kind(s.regenerated ? fb::SampleKind::Regenerated : fb::SampleKind::Original);
    if (s.scores) sb.add_scores(scores);
    sb.add_candidate(s.candidate);
    sb.add_text(text);
    samples.push_back(sb.Finish());
  }
  auto samples_vec = fbb.CreateVector(samples);
  const auto& f = c.family;
  auto family = fb::CreateFamily(fbb, fbb.CreateString(f.tokenizer_sha256), Model(fbb, f.target),
                                 Model(fbb, f.regenerator), Model(fbb, f.expert), f.foreign_allowed);
  const auto& r = c.recipe;
  auto cue = fbb.CreateString(r.reasoning_cue);
  auto recipe = fb::CreateRecipe(
      fbb, r.seq_len, r.group_size, r.keep, r.temperature, r.top_p, r.max_new_tokens,
      r.chat_template ? fb::PromptTemplate::Chat : fb::PromptTemplate::Base, cue, r.weight_fidelity,
      r.weight_consistency, r.weight_diversity, r.tau, r.original_mix, r.self_calibration, r.no_cot, r.no_compete,
      r.no_renorm, r.originals_only, r.min_new_tokens, r.min_distinct2);
  const auto& p = c.provenance;
  auto prov = fb::CreateProvenance(fbb, fbb.CreateString(p.tool), p.seed, fbb.CreateString(p.backend),
                                   fbb.CreateString(p.scoring_backend), fbb.CreateString(p.calib_sha256),
                                   fbb.CreateString(p.calib_source));
  auto root = fb::CreatePayload(fbb, kBundleFormatVersion, family, recipe, samples_vec, prov, c.num_originals,
                                c.num_candidates, kept, total_tokens);
  fb::FinishPayloadBuffer(fbb, root);
  return std::vector<uint8_t>(fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize());
}

}  // namespace famq
