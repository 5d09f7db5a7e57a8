#include "pipeline/family.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/digest.h"
#include "core/file.h"

namespace famq {

Result<FamilyMember> DescribeMember(const ModelDir& model, const std::string& dir) {
  FamilyMember m;
  m.dir = dir;
  m.name = std::filesystem::path(dir).lexically_normal().filename().string();
  if (m.name.empty()) m.name = std::filesystem::path(dir).lexically_normal().parent_path().filename().string();
  m.tokenizer_sha256 = model.tokenizer.ContentHash();
  auto cfg = ReadFile(JoinPath(dir, "config.json"), size_t{16} << 20);
  if (!cfg.ok()) return cfg.status();
  m.config_sha256 = ConfigSha256(*cfg);
  if (m.config_sha256.empty()) return InvalidFormat(JoinPath(dir, "config.json") + ": not valid JSON");
  m.parameters = static_cast<uint64_t>(model.checkpoint.config().NumParameters());  // shapes checked on open
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
