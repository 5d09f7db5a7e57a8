// Family identity: a model directory's tokenizer hash (the normalized
// tokenizer.json), config hash and size, and the check that a regenerator or
// expert belongs to the target's family (docs/DESIGN.md §1.1).
#pragma once

#include <cstdint>
#include <string>

#include "core/status.h"
#include "model/model_dir.h"

namespace famq {

struct FamilyMember {
  std::string dir;
  std::string name;              // directory basename
  std::string tokenizer_sha256;  // Tokenizer::ContentHash()
  std::string config_sha256;     // hex SHA-256 of config.json with keys sorted, no spaces
  uint64_t parameters = 0;       // elements of every weight tensor (tied head counted once)
};

// Describes an opened model directory.
Result<FamilyMember> DescribeMember(const ModelDir& model, const std::string& dir);

// OK when `other` (in `role`: "regenerator", "expert") has the target's
// tokenizer; otherwise InvalidArgument naming both hashes, unless
// allow_foreign (then OK).
Status CheckSameFamily(const FamilyMember& target, const FamilyMember& other, const std::string& role,
                       bool allow_foreign);

}  // namespace famq
