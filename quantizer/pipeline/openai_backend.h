// Regeneration through an OpenAI-compatible completions server (vLLM,
// SGLang, llama.cpp server, `famq serve`): one request per group with n, seed,
// temperature, top_p, max_tokens and the prompt as token ids; timeouts,
// retries with exponential backoff, and errors that say what the server did.
#pragma once

#include <memory>
#include <string>

#include "pipeline/stages.h"
#include "tokenizer/tokenizer.h"

namespace famq {

struct OpenAIBackendOptions {
  std::string url;            // "http://host:port" (a trailing /v1 is accepted)
  std::string model;          // model id; "" = the first of GET /v1/models
  double timeout_s = 120.0;   // per request
  int retries = 3;            // after the first attempt, on connection errors, 429 and 5xx
  double backoff_s = 0.5;     // first retry delay, doubled each time
};

// `tokenizer` re-tokenizes choice text when a server returns no token ids
// (then the ids may differ from the sampled ones; a warning says so once).
Result<std::unique_ptr<GroupBackend>> MakeOpenAIBackend(const OpenAIBackendOptions& options,
                                                        const Tokenizer* tokenizer);

}  // namespace famq
