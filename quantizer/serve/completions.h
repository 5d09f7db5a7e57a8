// The OpenAI-compatible API over famq's engine (`famq serve`): request
// validation and the responses, as functions of JSON in and out, so the HTTP
// layer is thin and the protocol is testable without sockets.
//
// POST /v1/completions fields: model, prompt (string, token-id array, or a
// one-element array of either), n, temperature, top_p, top_k (vLLM
// extension), seed, max_tokens, logprobs (0-20 or null), echo, stop (string
// or array of strings), stop_token_ids (vLLM extension). Choices carry the
// OpenAI fields (text, index, logprobs, finish_reason) plus token_ids.
// Candidate j of a request samples with CandidateSeed(seed, j): the same
// request gives the same choices as the in-process regenerator. With
// max_tokens 0, echo and logprobs, token_logprobs are computed in the
// expert's chunking, so their mean equals Expert::Run's fidelity bit for bit.
//
// POST /v1/chat/completions fields: model, messages ([{role, content}],
// content a string), n, temperature, top_p, top_k, seed, max_tokens or
// max_completion_tokens (default: the rest of the context, at most the
// limit), stop, stop_token_ids, chat_template_kwargs.enable_thinking (vLLM
// extension, default true). The messages are rendered with the model's chat
// template (add_generation_prompt) and sampled like /v1/completions. Choices:
// {index, message: {role: "assistant", content}, finish_reason, token_ids}.
//
// Streaming (`stream: true` on both completion endpoints, the HTTP layer's
// choice): PrepareStream checks the request like the calls above (and
// refuses echo and logprobs with stream), RunStream answers it as
// Server-Sent Events in OpenAI's chunk shapes ("text_completion" /
// "chat.completion.chunk" objects, chat's first delta the role), the choices
// of n > 1 interleaved by index as their tokens come, each choice's final
// chunk with its finish_reason, `stream_options.include_usage` adding a last
// chunk with empty choices and the usage (the others then carry "usage":
// null), and `data: [DONE]`. Text is held back while it could still be the
// start of a stop string or of a UTF-8 character, so a stop string never
// leaks and the deltas concatenate to exactly the non-streaming text.
//
// POST /v1/embeddings fields: model, input (like prompt), encoding_format
// ("float", or "base64": the little-endian float32 bytes, base64), pool_from (famq extension, int >= 0, default 0). The
// embedding is the mean of the final-normalized last hidden state over
// positions [pool_from, n) (pipeline/scoring.h RunExpertPass: the expert's
// pooled state bit for bit); the data item echoes the pool_from it used.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <optional>
#include <nlohmann/json.hpp>
#include <string>

#include "core/status.h"
#include "engine/engine.h"
#include "model/model_dir.h"
#include "pipeline/batch_decoder.h"
#include "pipeline/regenerate.h"
#include "pipeline/scoring.h"
#include "chat_template/chat_template.h"

namespace famq {

// Which routes a server offers. kChatOnly mimics servers such as
// distributed-llama's API server: GET /v1/models and POST
// /v1/chat/completions only, n = 1 only (a test aid for the clients'
// fallback paths). kStandard offers every route but only what llama.cpp's
// llama-server offers (tools/server/README.md): no token_ids in choices,
// echo refused with llama-server's "Only no echo is supported" (400),
// completion logprobs (logprobs >= 1) in llama-server's shape
// {content: [{id, token, bytes, logprob, top_logprobs}]} (the model's
// unscaled distribution, like llama-server without post_sampling_probs),
// and /v1/embeddings pooled over the whole input (mean, pool_from ignored
// and not echoed) and L2-normalized, like `llama-server --embeddings
// --pooling mean`. A test aid for the host stage's standard scoring paths.
enum class ServeApi { kFull, kChatOnly, kStandard };

// Per-request cost limits (docs/HOST_STAGE.md "famq serve": the limits and
// why). A request past one gets InvalidArgument (400) before any work.
struct ServeLimits {
  int max_n = 64;
  int max_tokens = 4096;
  ServeApi api = ServeApi::kFull;
  // Candidates decoded at a time in one batch, over every request in flight
  // (KV-cache slots; fewer when they would pass DecodeSlots' 1 GiB budget).
  int decode_slots = 16;
  int max_stop = 16;               // stop strings per request
  size_t max_stop_bytes = 256;     // bytes per stop string
  int max_stop_token_ids = 64;     // stop_token_ids per request (each in [0, vocab))
  // Bytes of prompt text (or of the rendered chat) accepted before tokenizing.
  // 0: the context rule, max_seq_len x the longest token's spelling in bytes
  // (a longer text cannot encode to a prompt that fits the context).
  size_t max_prompt_bytes = 0;
};

// What the caller of one request can stop it with; polled before the work
// and between decode steps.
struct RequestControl {
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  std::string deadline_what = "the request deadline";  // named in the error
  // True when the client has gone away (famq serve: the socket closed).
  std::function<bool()> client_gone;
  // Why the request was stopped, when it was (Cancelled errors).
  enum class Stop { kNone, kDeadline, kClientGone };
  mutable std::atomic<Stop> stopped{Stop::kNone};
  // Ok, or Cancelled (and `stopped` set) once the deadline has passed or the client is gone.
  Status Check() const;
};

class CompletionService {
 public:
  // The sampling fields of a request, validated.
  struct Sampling {
    int n = 1;
    float temperature = 1.0f, top_p = 1.0f;
    int top_k = 0;
    uint64_t seed = 0;
    int max_tokens = 16;
    std::vector<std::string> stop;      // stop strings
    std::vector<int32_t> stop_ids;      // the model's stop tokens + stop_token_ids
  };
  // A checked streaming request (PrepareStream).
  struct StreamRequest {
    bool chat = false;
    std::vector<int32_t> prompt;
    Sampling sampling;
    bool include_usage = false;
  };

  // `name` is the model id served (default: the directory's basename).
  static Result<std::unique_ptr<CompletionService>> Create(const std::string& model_dir, const std::string& name,
                                                           const EngineOptions& options, const ServeLimits& limits);

  // GET /v1/models
  nlohmann::ordered_json Models() const;
  // The request handlers take a parsed body (ParseRequest: depth-limited) and
  // never copy or echo its untrusted sub-values. `control` (may be null) can
  // stop the request: Cancelled, with control->stopped saying why.
  // POST /v1/completions. Errors: InvalidArgument (400), NotFound (404: unknown model).
  Result<nlohmann::ordered_json> Complete(const nlohmann::json& request, const RequestControl* control = nullptr);
  // POST /v1/chat/completions. Errors: InvalidArgument (400: bad request, n > 1
  // under ServeApi::kChatOnly, a model without a chat template), NotFound (404).
  Result<nlohmann::ordered_json> ChatComplete(const nlohmann::json& request, const RequestControl* control = nullptr);
  // POST /v1/embeddings. Errors: InvalidArgument (400), NotFound (404).
  Result<nlohmann::ordered_json> Embed(const nlohmann::json& request, const RequestControl* control = nullptr);

  // `stream: true` in a request (a non-boolean is InvalidArgument).
  static Result<bool> WantsStream(const nlohmann::json& request);
  // Checks a streaming request for /v1/completions (chat false) or
  // /v1/chat/completions. Errors: those of Complete / ChatComplete, and
  // InvalidArgument for echo or logprobs with stream.
  Result<StreamRequest> PrepareStream(const nlohmann::json& request, bool chat) const;
  // Generates on the decoder and writes the events through `write` (one
  // "data: ...\n\n" event per call, from the calling thread; false: the
  // client is gone, and generation stops). Ends with [DONE], or after an
  // error with an {"error": ...} event; returns the error (Cancelled with
  // control->stopped set, or the engine's), or Ok. *completion_tokens: the
  // usage's count.
  Status RunStream(const StreamRequest& request, const RequestControl* control,
                   const std::function<bool(const std::string&)>& write, long long* completion_tokens = nullptr);

  // A request body: JSON nested at most kMaxJsonDepth (ParseJson), else InvalidArgument.
  static Result<nlohmann::json> ParseRequest(std::string_view body);

  // The prompt-bytes limit in force (ServeLimits::max_prompt_bytes or the context rule).
  size_t max_prompt_bytes() const { return max_prompt_bytes_; }
  // The body size that can carry any prompt the context holds: 64 KiB for the
  // other fields + 6 x max_prompt_bytes (every byte escaped as \u00XX), at
  // most 16 MiB.
  size_t DefaultMaxBodyBytes() const;

  const std::string& name() const { return name_; }
  ServeApi api() const { return limits_.api; }

 private:
  Result<std::vector<int32_t>> ParseTokens(const nlohmann::json& request, const char* field) const;
  Status CheckPromptBytes(size_t bytes, const char* what) const;
  // default_max_tokens < 0: the rest of the context after `prompt_len`, at most limits.max_tokens.
  // `max_tokens_key`: "max_tokens", or chat's "max_completion_tokens" when the request sets it.
  Result<Sampling> ParseSampling(const nlohmann::json& request, int default_max_tokens, size_t prompt_len,
                                 const char* max_tokens_key = "max_tokens") const;
  Result<std::vector<GeneratedCandidate>> Sample(std::span<const int32_t> prompt, const Sampling& s,
                                                 const RequestControl* control,
                                                 std::function<Status()> extra_check = nullptr,
                                                 std::function<void(int, int32_t)> on_token = nullptr);
  // The text of a streamed candidate so far that can be sent: cut before a
  // stop string or what may begin one, and before an incomplete UTF-8 character.
  size_t Sendable(const Sampling& s, const std::string& text, bool* stopped) const;
  // The finish reason and text of a finished candidate, as the non-streaming answer has them.
  void FinalChoice(const Sampling& s, const GeneratedCandidate& c, std::vector<int32_t>* ids, std::string* text,
                   std::string* finish) const;
  // Cuts a candidate at its first stop string: its ids, text and finish reason.
  // O(log(tokens)) decodes and linear-time searches, whatever the stop strings.
  void ApplyStops(const Sampling& s, std::vector<int32_t>* ids, std::string* text, std::string* finish) const;
  Status CheckModel(const nlohmann::json& request) const;
  Result<std::vector<int32_t>> RenderChat(const nlohmann::json& request) const;

  std::string name_;
  std::unique_ptr<ModelDir> model_;
  std::unique_ptr<Engine> engine_;
  // The engine's only user: requests in flight decode together, and the
  // echo logprobs and embeddings run on it between steps.
  std::unique_ptr<BatchDecoder> decoder_;
  std::optional<ChatTemplate> chat_template_;  // absent: the model has none
  ExpertBuffers expert_buffers_;               // used on the decoder's thread only
  ServeLimits limits_;
  size_t max_prompt_bytes_ = 0;
  std::atomic<uint64_t> next_id_{0};
};

}  // namespace famq
