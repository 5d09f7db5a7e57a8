#include "tools/famq-rt/cli_util.h"

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "core/file.h"
#include "core/json_excerpt.h"
#include "core/json_parse.h"

namespace famq::cli {

int Fail(const Status& status) {
  std::fprintf(stderr, "famq-rt: %s\n", status.ToString().c_str());
  return 1;
}


Result<std::string> ReadTextArg(const std::string& path) { return ReadFile(path, size_t{1} << 31); }

Result<std::vector<int32_t>> ParsePromptIds(const std::string& json_text, int vocab_size) {
  nlohmann::json j;
  if (!ParseJson(json_text, "--prompt-ids", &j).ok() || !j.is_array()) {
    return InvalidArgument("--prompt-ids: expected a JSON array of token ids");
  }
  std::vector<int32_t> ids;
  ids.reserve(j.size());
  for (size_t i = 0; i < j.size(); ++i) {
    const auto& v = j[i];
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= vocab_size) {
      return InvalidArgument("--prompt-ids: item " + std::to_string(i) + " (" + JsonExcerpt(v) +
                             ") is not a token id below the vocabulary size " + std::to_string(vocab_size));
    }
    ids.push_back(static_cast<int32_t>(v.get<int64_t>()));
  }
  return ids;
}

}  // namespace famq::cli
