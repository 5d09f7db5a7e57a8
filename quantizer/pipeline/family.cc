#include "pipeline/family.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/digest.h"
#include "core/file.h"

namespace famq {
namespace {

uint64_t Elements(const TensorView& t) {
  uint64_t n = 1;
  for (int64_t d : t.shape) n *= static_cast<uint64_t>(d);
  return n;
}

uint64_t CountParameters(const Checkpoint& c) {
  uint64_t n = Elements(c.embed_tokens()) + Elements(c.final_norm());
  if (!c.tied()) n += Elements(c.lm_head());
  for (const LayerTensors& l : c.layers()) {
    for (const TensorView* t : {&l.input_norm, &l.q_proj, &l.k_proj, &l.v_proj, &l.o_proj, &l.post_attention_norm,
                                &l.gate_proj, &l.up_proj, &l.down_proj}) {
      n += Elements(*t);
    }
    for (const auto* t : {&l.q_bias, &l.k_bias, &l.v_bias, &l.q_norm, &l.k_norm}) {
      if (t->has_value()) n += Elements(**t);
    }
  }
  return n;
}

}  // namespace

Result<FamilyMember> DescribeMember(const ModelDir& model, const std::string& dir) {
  FamilyMember m;
  m.dir = dir;
  m.name = std::filesystem::path(dir).lexically_normal().filename().string();
  if (m.name.empty()) m.name = std::filesystem::path(dir).lexically_normal().parent_path().filename().string();
  m.tokenizer_sha256 = model.tokenizer.ContentHash();
  auto cfg = ReadFile(JoinPath(dir, "config.json"), size_t{16} << 20);
  if (!cfg.ok()) return cfg.status();
  auto j = nlohmann::json::parse(*cfg, nullptr, false);
  if (j.is_discarded()) return InvalidFormat(JoinPath(dir, "config.json") + ": not valid JSON");
  m.config_sha256 = Sha256Hex(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  m.parameters = CountParameters(model.checkpoint);
  return m;
}

Status CheckSameFamily(const FamilyMember& target, const FamilyMember& other, const std::string& role,
                       bool allow_foreign) {
  if (target.tokenizer_sha256 == other.tokenizer_sha256 || allow_foreign) return Status::Ok();
  return InvalidArgument("the " + role + " " + other.dir + " is not of the target's family: its tokenizer.json (" +
                         other.tokenizer_sha256.substr(0, 16) + "...) differs from the target " + target.dir +
                         "'s (" + target.tokenizer_sha256.substr(0, 16) +
                         "...); FAQ needs a model of the same family (pass --allow-foreign-family to override)");
}

}  // namespace famq
