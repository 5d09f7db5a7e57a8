// The OpenAI-compatible completions API over famq's engine (`famq serve`):
// request validation and the response, as a function of JSON in and out, so
// the HTTP layer is thin and the protocol is testable without sockets.
//
// POST /v1/completions fields: model, prompt (string, token-id array, or a
// one-element array of either), n, temperature, top_p, top_k (vLLM
// extension), seed, max_tokens, logprobs (0-20 or null), echo, stop (string
// or array of strings), stop_token_ids (vLLM extension). Choices carry the
// OpenAI fields (text, index, logprobs, finish_reason) plus token_ids.
// Candidate j of a request samples with CandidateSeed(seed, j): the same
// request gives the same choices as the in-process regenerator.
#pragma once

#include <mutex>
#include <nlohmann/json.hpp>
#include <string>

#include "core/status.h"
#include "engine/engine.h"
#include "model/model_dir.h"

namespace famq {

struct ServeLimits {
  int max_n = 64;
  int max_tokens = 4096;
};

class CompletionService {
 public:
  // `name` is the model id served (default: the directory's basename).
  static Result<std::unique_ptr<CompletionService>> Create(const std::string& model_dir, const std::string& name,
                                                           const EngineOptions& options, const ServeLimits& limits);

  // GET /v1/models
  nlohmann::ordered_json Models() const;
  // POST /v1/completions. Errors: InvalidArgument (400), NotFound (404: unknown model).
  Result<nlohmann::ordered_json> Complete(const nlohmann::json& request);

  const std::string& name() const { return name_; }

 private:
  std::string name_;
  std::unique_ptr<ModelDir> model_;
  std::unique_ptr<Engine> engine_;
  ServeLimits limits_;
  std::mutex mu_;  // one request at a time on the engine
  uint64_t next_id_ = 0;
};

}  // namespace famq
