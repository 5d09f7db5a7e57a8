// famq eval: the family's evaluation suite. Per text domain, perplexity and
// next-token top-1 accuracy over non-overlapping windows; for reasoning,
// exact match of the answer parsed from greedy chain-of-thought decoding
// (the final "The answer is N." line).
//
// A suite is a JSON file:
//   {"name": "default",
//    "text": [{"domain": "bible", "file": "bible.test.jsonl"}, ...],   // {"text": ...} per line
//    "reasoning": {"file": "reasoning.test.jsonl", "limit": 0, "stride": 1},         // prompt_plain/prompt_chat/answer/format/difficulty
//    "ctx": 256, "max_windows": 0, "max_new_tokens": 320}
// Files are relative to the suite file. Documents of a domain are tokenized
// without special tokens and joined by the end-of-text token.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "engine/engine.h"
#include "model/model_dir.h"
#include "qmodel/qmodel_engine.h"

namespace famq {

struct TextDomainSpec {
  std::string domain;
  std::string file;  // absolute or relative to the suite file
};

struct ReasoningProblem {
  std::string prompt;  // what the model sees, in the problem's format
  int64_t answer = 0;
  std::string format;  // "plain" | "chat"
  std::string kind;
  int difficulty = 0;
};

struct EvalSuite {
  std::string name;
  std::string path;  // the suite file
  std::vector<TextDomainSpec> text;
  std::string reasoning_file;  // "" if the suite has no reasoning part
  int reasoning_limit = 0;     // 0: all problems
  int reasoning_stride = 1;    // every stride-th problem from the first (a subset over all difficulties)
  int ctx = 256;
  int max_windows = 0;
  int max_new_tokens = 320;
};

// Loads a suite from `name_or_path`: a path to a .json file, or NAME found as
// `eval_dir`/NAME.json.
Result<EvalSuite> LoadEvalSuite(const std::string& name_or_path, const std::string& eval_dir);

// Reads reasoning problems (one JSON object per line): every stride-th
// problem from the first, at most `limit` (0: no limit); bad lines are
// errors naming the file and line number.
Result<std::vector<ReasoningProblem>> LoadReasoningProblems(const std::string& path, int limit, int stride = 1);

// The integer N of the first "The answer is N." in `text`, if any.
std::optional<int64_t> ParseFinalAnswer(std::string_view text);

struct TextDomainResult {
  double ppl = 0, nll = 0, top1_accuracy = 0;
  int64_t tokens = 0;
  int windows = 0;
  std::vector<double> window_nll;      // per window: summed NLL (statistics over windows)
  std::vector<int64_t> window_tokens;  // per window: predicted tokens
};

struct ReasoningTally {
  int correct = 0, total = 0;
  double accuracy() const { return total ? static_cast<double>(correct) / total : 0.0; }
};

struct ReasoningResult {
  ReasoningTally all;
  std::map<int, ReasoningTally> by_difficulty;
  std::map<std::string, ReasoningTally> by_format;
  std::map<std::string, ReasoningTally> by_kind;
  std::vector<uint8_t> correct_by_problem;  // 1: problem i (in suite order) answered right
  int unparsed = 0;  // answers without a final "The answer is N." line
  int64_t generated_tokens = 0;
};

struct EvalResult {
  std::map<std::string, TextDomainResult> text;  // by domain
  std::optional<ReasoningResult> reasoning;
  double seconds = 0;
};

// Progress: (stage, done, total), e.g. ("bible", 3, 20) or ("reasoning", 40, 500).
using EvalProgress = std::function<void(std::string_view stage, int done, int total)>;

// Runs `suite` on an fp32 engine over `model`.
Result<EvalResult> RunEvalSuite(const EvalSuite& suite, const RunnableModel& model, const EngineOptions& engine_options,
                                const EvalProgress& progress);

}  // namespace famq
