// An OpenAI-compatible inference server (vLLM, SGLang, llama.cpp server,
// distributed-llama, `famq serve`) as the regenerator and the expert:
// timeouts, retries with exponential backoff, and errors that say what the
// server did.
//
// Regeneration: one POST /v1/completions per group with n, seed,
// temperature, top_p, max_tokens and the prompt as token ids. A server
// without /v1/completions (it answers a probe at connect with 404/405), or
// `chat` set, regenerates through POST /v1/chat/completions instead: one
// request per candidate (n = 1, seed CandidateSeed(group seed, j)), the
// original as the user turn, rendered by the server's chat template. A
// server that refuses the probe's n = 2 with 400 but answers n = 1 (some
// llama-server builds) gets one completions request per candidate (n = 1,
// seed CandidateSeed(group seed, j)); Describe() then adds
// " (n = 1 per candidate)".
//
// Token ids: each candidate's sampled ids come from, in this order,
// choices[].token_ids (famq serve; vLLM >= 0.10.2, asked with
// return_token_ids), logprobs.content[].id (llama-server, asked with
// logprobs 1 / top_logprobs 1), logprobs "token_id:N" strings (older vLLM,
// asked with return_tokens_as_token_ids), and only then the choice's text
// re-tokenized (a warning once). GeneratedCandidate::ids_from names the
// source ("token_ids", "logprobs.content.id", "logprobs.content.token",
// "logprobs.tokens", "retokenized"); the stage file keeps it per candidate.
// Ids outside the vocabulary, non-integer ids, token_ids and logprobs ids
// that disagree, and more ids than usage.completion_tokens counts (+2 per
// choice) are InvalidFormat errors.
//
// Scoring: fidelity through POST /v1/completions {prompt: ids, max_tokens: 0,
// echo: true, logprobs: 0}, the pooled state through POST /v1/embeddings
// with famq's `pool_from` extension; the numbers equal the in-process
// expert's when the server is `famq serve` with the same model.
#pragma once

#include <memory>
#include <string>

#include "pipeline/scoring.h"
#include "pipeline/stages.h"
#include "tokenizer/tokenizer.h"

namespace famq {

struct OpenAIBackendOptions {
  std::string url;            // "http://host:port" (a trailing /v1 is accepted)
  std::string model;          // model id; "" = the first of GET /v1/models
  double timeout_s = 120.0;   // per request
  int retries = 3;            // after the first attempt, on connection errors, 429 and 5xx
  double backoff_s = 0.5;     // first retry delay, doubled each time
  bool chat = false;          // regenerate through /v1/chat/completions without probing (openai-chat:URL)
  // Sent as "Authorization: Bearer KEY" with every request ("": none). Never
  // printed: error messages and retry lines have it replaced by "***".
  std::string api_key;
};

// Connects (GET /v1/models) and probes /v1/completions. `tokenizer`
// re-tokenizes choice text when a server returns no token ids (then the ids
// may differ from the sampled ones; a warning says so once). Describe():
// "openai:URL" or "openai-chat:URL".
// Errors: InvalidArgument (a URL that is not http(s)://; HTTP 401/403: the
// server wants another API key), IoError (the server cannot be reached),
// InvalidFormat (no model id).
Result<std::unique_ptr<GroupBackend>> MakeOpenAIBackend(const OpenAIBackendOptions& options,
                                                        const Tokenizer* tokenizer);

// The outcome of probing a server for scoring.
struct OpenAIScorerProbe {
  std::unique_ptr<ScoringBackend> scorer;  // null: the server cannot score
  std::string missing;                     // then why: "URL has no /v1/embeddings with pool_from"
  std::string detail;                      // and what the server answered
};

// Connects and probes echo logprobs and embeddings with pool_from on two
// tokens. max_seq_len() is the server's max_model_len, else
// `default_max_seq_len`. Errors: InvalidArgument (bad URL, HTTP 401/403),
// IoError (the server cannot be reached), InvalidFormat (no model id); a
// server that answers without the features is not an error (see `missing`).
Result<OpenAIScorerProbe> ProbeOpenAIScorer(const OpenAIBackendOptions& options, int default_max_seq_len);

}  // namespace famq
