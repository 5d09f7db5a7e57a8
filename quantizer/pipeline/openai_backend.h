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
// Scoring (docs/DESIGN.md §1.2): fidelity through POST /v1/completions
// {prompt: ids, max_tokens: 0, echo: true, logprobs: 0}, else vLLM's
// {prompt: ids, max_tokens: 1, prompt_logprobs: 0}; the pooled state through
// POST /v1/embeddings with famq's `pool_from` extension, else a standard
// /v1/embeddings of the text (the server's own pooling). The exact paths
// (echo or prompt_logprobs, pool_from) equal the in-process expert's numbers
// when the server is `famq serve` with the same model.
//
// Sampled-token logprobs: a choice's logprobs.content[].logprob
// (llama-server) or logprobs.token_logprobs (vLLM), one per id the server
// sent, become GeneratedCandidate::logprobs when every one is a number <= 0
// (else none are kept: the candidate then has no sampled logprobs).
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

// A scoring server and the paths it offers (docs/DESIGN.md §1.2). Run() (the
// ScoringBackend call) needs both exact paths; the per-quantity calls work
// with what the server has.
class ServerScorer : public ScoringBackend {
 public:
  // Fidelity: "echo" (echo + logprobs on /v1/completions: vLLM, famq serve),
  // "prompt_logprobs" (vLLM's prompt_logprobs field), "" (neither).
  virtual const std::string& fidelity_path() const = 0;
  // Pooled states: "pool_from" (famq's exact extension), "embeddings" (a
  // standard /v1/embeddings: the server's pooling of the input it is
  // given), "" (neither).
  virtual const std::string& pool_path() const = 0;
  // Mean log-probability of ids[score_from..n) given their prefix (the
  // clamps of RunExpertPass), through fidelity_path().
  virtual Status Fidelity(std::span<const int32_t> ids, int score_from, double* mean_logprob) = 0;
  // famq's pool_from path: the mean last hidden state over [pool_from, n).
  virtual Status PoolIds(std::span<const int32_t> ids, int pool_from, std::vector<float>* pooled) = 0;
  // The standard path: the server's own pooled vector of `text` (finite
  // numbers, at least one).
  virtual Status EmbedText(const std::string& text, std::vector<float>* pooled) = 0;
  // The model id the server serves.
  virtual const std::string& model() const = 0;
};

// The outcome of probing a server for scoring.
struct OpenAIScorerProbe {
  std::unique_ptr<ServerScorer> server;  // connected, whatever it offers
  // Why a path is missing ("" when the server has it): e.g. "URL has no
  // /v1/completions with echo logprobs or prompt_logprobs", and what it answered.
  std::string fidelity_missing, pool_missing, fidelity_detail, pool_detail;
  // Both exact paths: the server alone gives the in-process expert's numbers.
  bool exact() const { return server && !server->fidelity_path().empty() && server->pool_path() == "pool_from"; }
  // Kept for the callers that want both exact paths: why not ("" when exact()).
  std::string missing() const { return !fidelity_missing.empty() ? fidelity_missing : pool_missing; }
};

// Connects and probes, on two tokens: echo logprobs, then vLLM's
// prompt_logprobs (when `want_fidelity`); /v1/embeddings with pool_from,
// then a standard /v1/embeddings of a short text. max_seq_len() is the
// server's max_model_len, else `default_max_seq_len`. Errors:
// InvalidArgument (bad URL, HTTP 401/403), IoError (the server cannot be
// reached), InvalidFormat (no model id); a server that answers without a
// feature is not an error (see the *_missing fields).
Result<OpenAIScorerProbe> ProbeOpenAIScorer(const OpenAIBackendOptions& options, int default_max_seq_len,
                                            bool want_fidelity = true);

}  // namespace famq
