// The inspectable JSONL records between the stages: `famq regenerate` writes
// one GroupRecord per original (prompt and candidates), `famq select` adds the
// scores and the kept candidates, `famq pack` turns them into a bundle.
// Each file starts with a header line {"famq_stage": ..., ...} that records
// the options, so a resumed run can refuse a file made with other settings.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "bundle/bundle_contents.h"
#include "core/status.h"

namespace famq {

struct CandidateRecord {
  std::vector<int32_t> ids;       // generated tokens
  bool finished = false;
  std::string text;               // decoded ids (inspection)
  std::string ids_from;           // an HTTP regenerator's source of the ids ("" = the engine; not written)
  // The log-probabilities an HTTP regenerator reported for the sampled tokens
  // (GeneratedCandidate::logprobs; empty = none, not written).
  std::vector<double> logprobs;
  std::optional<ScoreTerms> scores;
  std::vector<float> embedding;   // expert's pooled hidden state; kept candidates only (diversity on resume)
};

struct GroupRecord {
  uint32_t group = 0;
  int line = 0;                        // the original's line in the calibration file
  std::string original_text;
  std::vector<int32_t> original_ids;   // the original's tokens (cut to the pack length cap)
  std::vector<int32_t> prompt_ids;
  std::vector<uint8_t> template_mask;  // per prompt id: 1 = template/cue
  std::vector<CandidateRecord> candidates;
  std::vector<uint32_t> kept;          // select: kept candidates, best first
  bool selected = false;               // select ran on this group
};

nlohmann::ordered_json GroupToJson(const GroupRecord& g);
// `where` ("file:line") names the record in errors.
Result<GroupRecord> GroupFromJson(const nlohmann::json& j, const std::string& where);

// A stage file: its header and its group records in order.
struct StageFile {
  nlohmann::ordered_json header;
  std::vector<GroupRecord> groups;
  size_t valid_bytes = 0;  // bytes of complete lines (a killed writer may leave a partial last line)
};

// Reads a stage file. A final line without '\n' is ignored (and reported by
// valid_bytes); any other bad line fails with its line number.
Result<StageFile> ReadStageFile(const std::string& path, const std::string& expected_stage);

// Appends lines durably: write, flush, fsync. Opened for a new file (header
// written) or to continue an existing one cut to `valid_bytes`.
class StageWriter {
 public:
  ~StageWriter();
  static Result<std::unique_ptr<StageWriter>> Create(const std::string& path, const nlohmann::ordered_json& header);
  static Result<std::unique_ptr<StageWriter>> Continue(const std::string& path, size_t valid_bytes);
  Status Append(const nlohmann::ordered_json& line);

 private:
  StageWriter() = default;
  int fd_ = -1;
  std::string path_;
};

}  // namespace famq
