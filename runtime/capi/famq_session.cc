// The C API's chat sessions and tokenizer functions (famq.h, "Tokens" and
// "Chat sessions"). A session owns its conversation and a KV cache of the
// engine's size; a turn swaps that cache into the model's engine, prefills
// only what the cache does not already hold, decodes, and swaps it back.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "capi/capi_internal.h"
#include "engine/sampler.h"
#include "famq/famq.h"
#include "tokenizer/unicode.h"

struct famq_session {
  famq_model* model = nullptr;
  famq_session_params params{};             // pointers cleared: the copies are below
  std::vector<std::string> stop_strings;
  std::vector<int32_t> stop_tokens;          // the model's eos ids + params.stop_tokens
  std::vector<famq::ChatMessage> messages;
  famq::KvCache kv;                          // swapped into the engine during a turn
  std::vector<int32_t> cached;               // the tokens whose keys/values kv holds, positions [0, n)
  std::vector<int32_t> prompt;               // scratch: the rendered conversation
  std::vector<float> logits;                 // [vocab]
  std::vector<uint8_t> seen;                 // [vocab] repetition-penalty marks, all 0 between uses
  std::optional<famq::Sampler> sampler;
  std::string reply;                         // the reply being generated
  famq_session_stats stats{};
  std::mutex busy;
};

namespace {

using famq::InvalidArgument;
using famq::Status;
using namespace famq::capi;

constexpr size_t kMaxStopStringBytes = 256;

// --- tokens ------------------------------------------------------------------

Status EncodeText(const famq_model* m, const char* text, int add_special, std::vector<int32_t>* ids) {
  const famq::RunnableModel& rm = m->model;
  if (add_special != 0 && rm.add_bos && rm.bos_token) ids->push_back(*rm.bos_token);
  return rm.tokenizer.Encode(text, ids);
}

// --- sessions ----------------------------------------------------------------

Status ReadSessionParams(const famq_model& m, const famq_session_params* in, famq_session_params* p,
                         std::vector<std::string>* stop_strings, std::vector<int32_t>* stop_tokens, const char* fn) {
  famq_session_default_params(p);
  FAMQ_RETURN_IF_ERROR(ReadOptions(in, p, fn, "famq_session_default_params"));
  const std::string f = fn;
  if (p->max_new_tokens < 1) {
    return InvalidArgument(f + ": max_new_tokens " + std::to_string(p->max_new_tokens) + " is below 1");
  }
  famq::SamplingParams sp;
  sp.temperature = p->temperature;
  sp.top_k = p->top_k;
  sp.top_p = p->top_p;
  sp.seed = p->seed;
  if (Status st = famq::ValidateSamplingParams(sp); !st.ok()) return Status(st.code(), f + ": " + st.message());
  if (!(p->repetition_penalty >= 1.0f && p->repetition_penalty <= 100.0f)) {
    return InvalidArgument(f + ": repetition_penalty " + std::to_string(p->repetition_penalty) +
                           " is not in [1, 100] (1: off)");
  }
  if (p->n_stop_strings > FAMQ_MAX_STOPS || p->n_stop_tokens > FAMQ_MAX_STOPS) {
    return InvalidArgument(f + ": " + std::to_string(p->n_stop_strings) + " stop strings and " +
                           std::to_string(p->n_stop_tokens) + " stop tokens: at most " +
                           std::to_string(FAMQ_MAX_STOPS) + " of each");
  }
  if (p->n_stop_strings > 0 && p->stop_strings == nullptr) return InvalidArgument(f + ": stop_strings is NULL");
  if (p->n_stop_tokens > 0 && p->stop_tokens == nullptr) return InvalidArgument(f + ": stop_tokens is NULL");
  std::vector<std::string> strings;
  for (size_t i = 0; i < p->n_stop_strings; ++i) {
    const char* s = p->stop_strings[i];
    if (s == nullptr) return InvalidArgument(f + ": stop_strings[" + std::to_string(i) + "] is NULL");
    const size_t n = strnlen(s, kMaxStopStringBytes + 1);
    if (n == 0 || n > kMaxStopStringBytes) {
      return InvalidArgument(f + ": stop_strings[" + std::to_string(i) + "] is empty or longer than " +
                             std::to_string(kMaxStopStringBytes) + " bytes");
    }
    strings.emplace_back(s, n);
  }
  std::vector<int32_t> tokens = m.model.stop_tokens;
  const int32_t vocab = m.engine->vocab_size();
  for (size_t i = 0; i < p->n_stop_tokens; ++i) {
    const int32_t t = p->stop_tokens[i];
    if (t < 0 || t >= vocab) {
      return InvalidArgument(f + ": stop_tokens[" + std::to_string(i) + "] = " + std::to_string(t) +
                             " is not in [0, " + std::to_string(vocab) + ")");
    }
    tokens.push_back(t);
  }
  p->stop_strings = nullptr;
  p->stop_tokens = nullptr;
  *stop_strings = std::move(strings);
  *stop_tokens = std::move(tokens);
  return Status::Ok();
}

const char* RoleName(famq_role r) {
  switch (r) {
    case FAMQ_ROLE_SYSTEM: return "system";
    case FAMQ_ROLE_USER: return "user";
    case FAMQ_ROLE_ASSISTANT: return "assistant";
    case FAMQ_ROLE_FORCE_32BIT: break;
  }
  return nullptr;
}

// Puts the session's cache into the engine for the life of the object.
class KvSwap {
 public:
  KvSwap(famq::Engine* e, famq::KvCache* kv) : e_(e), kv_(kv) { ok_ = e_->SwapKvCache(kv_).ok(); }
  ~KvSwap() {
    if (ok_) (void)e_->SwapKvCache(kv_);
  }
  bool ok() const { return ok_; }
  KvSwap(const KvSwap&) = delete;
  KvSwap& operator=(const KvSwap&) = delete;

 private:
  famq::Engine* e_;
  famq::KvCache* kv_;
  bool ok_ = false;
};

// Hugging Face's repetition penalty over the tokens in the context.
void ApplyRepetitionPenalty(famq_session* s, float penalty) {
  if (penalty == 1.0f) return;
  float* l = s->logits.data();
  for (const int32_t t : s->cached) {
    if (t < 0 || static_cast<size_t>(t) >= s->seen.size() || s->seen[static_cast<size_t>(t)] != 0) continue;
    s->seen[static_cast<size_t>(t)] = 1;
    l[t] = l[t] > 0.0f ? l[t] / penalty : l[t] * penalty;
  }
  for (const int32_t t : s->cached) {
    if (t >= 0 && static_cast<size_t>(t) < s->seen.size()) s->seen[static_cast<size_t>(t)] = 0;
  }
}

// The length of the longest suffix of `text` (starting at or after `from`)
// that is a proper prefix of a stop string: bytes that must be held back.
size_t HoldBack(std::string_view text, size_t from, const std::vector<std::string>& stops) {
  size_t hold = 0;
  for (const std::string& stop : stops) {
    const size_t max = std::min(stop.size() - 1, text.size() - from);
    for (size_t k = max; k > hold; --k) {
      if (text.compare(text.size() - k, k, stop, 0, k) == 0) {
        hold = k;
        break;
      }
    }
  }
  return hold;
}

// Where the first stop string begins in text (searching from `from`), or npos.
size_t FindStop(std::string_view text, size_t from, const std::vector<std::string>& stops) {
  size_t best = std::string_view::npos;
  for (const std::string& stop : stops) {
    const size_t at = text.find(stop, from);
    if (at < best) best = at;
  }
  return best;
}

struct Output {
  famq_token_callback on_piece = nullptr;
  void* user = nullptr;
  char* out = nullptr;
  size_t capacity = 0;
  size_t delivered = 0;  // bytes of the reply handed out so far

  // Hands out reply[delivered, end); false when on_piece asks to stop.
  bool Deliver(const std::string& reply, size_t end, int32_t token) {
    if (end <= delivered) return true;
    const char* piece = reply.data() + delivered;
    const size_t len = end - delivered;
    if (out != nullptr && delivered < capacity - 1) {
      const size_t n = std::min(len, capacity - 1 - delivered);
      std::memcpy(out + delivered, piece, n);
      out[delivered + n] = '\0';
    }
    delivered = end;
    return on_piece == nullptr || on_piece(piece, len, token, user) == 0;
  }
};

ApiStatus RunTurn(famq_session* s, Output* o) {
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  famq_model* m = s->model;
  famq::Engine* engine = m->engine.get();
  famq_session_stats& st = s->stats;
  st.last_stop = FAMQ_STOP_NONE;
  st.last_prompt_tokens = st.last_reused_tokens = st.last_prefill_tokens = st.last_generated_tokens = 0;
  st.last_ttft_seconds = st.last_decode_seconds = 0.0;

  if (s->messages.empty() || s->messages.back().role == "assistant") {
    return InvalidArgument("famq_session_generate: the conversation does not end with a user or system message: "
                           "nothing to answer");
  }
  famq::ChatTemplateOptions opt;
  opt.add_generation_prompt = true;
  opt.enable_thinking = s->params.enable_thinking != 0;
  opt.bos_token = m->model.tokenizer_config->bos_token;
  opt.eos_token = m->model.tokenizer_config->eos_token;
  FAMQ_ASSIGN_OR_RETURN(const std::string text, m->chat_template->Render(s->messages, opt));
  s->prompt.clear();
  FAMQ_RETURN_IF_ERROR(m->model.tokenizer.Encode(text, &s->prompt));
  const int max_seq = engine->max_seq_len();
  const int n = static_cast<int>(s->prompt.size());
  if (n == 0) return famq::Internal("famq_session_generate: the chat template rendered no tokens");
  if (n >= max_seq) {
    return ContextFull("famq_session_generate: the conversation is " + std::to_string(n) +
                             " tokens; the context holds " + std::to_string(max_seq) +
                             " and a reply needs at least one more: reset the session or start a new one");
  }
  // The longest prefix the cache already holds; at least the last token is run again for its logits.
  size_t p = 0;
  const size_t common = std::min(s->cached.size(), s->prompt.size());
  while (p < common && s->cached[p] == s->prompt[p]) ++p;
  if (p == s->prompt.size()) --p;
  st.last_prompt_tokens = n;
  st.last_reused_tokens = static_cast<int32_t>(p);
  st.last_prefill_tokens = n - static_cast<int32_t>(p);

  KvSwap swap(engine, &s->kv);
  if (!swap.ok()) return famq::Internal("famq_session_generate: the session's KV cache does not fit the engine");
  s->cached.resize(p);  // entries from p on are overwritten now
  FAMQ_RETURN_IF_ERROR(engine->Forward(std::span<const int32_t>(s->prompt).subspan(p), static_cast<int>(p),
                                       s->logits.data(), false));
  s->cached.assign(s->prompt.begin(), s->prompt.end());

  const int budget_context = max_seq - n;
  const int budget = std::min(s->params.max_new_tokens, budget_context);
  s->reply.clear();
  size_t search_from = 0;  // stop strings cannot start before this
  size_t max_stop = 0;
  for (const std::string& x : s->stop_strings) max_stop = std::max(max_stop, x.size());
  auto t_first = t0;
  famq_stop_reason reason = budget == budget_context ? FAMQ_STOP_CONTEXT : FAMQ_STOP_LENGTH;
  for (int i = 0; i < budget; ++i) {
    ApplyRepetitionPenalty(s, s->params.repetition_penalty);
    const int32_t tok = s->sampler->Sample(s->logits.data());
    if (i == 0) t_first = Clock::now();
    ++st.last_generated_tokens;
    if (std::find(s->stop_tokens.begin(), s->stop_tokens.end(), tok) != s->stop_tokens.end()) {
      reason = FAMQ_STOP_TOKEN;
      break;
    }
    s->reply += m->Piece(tok);
    if (!s->stop_strings.empty()) {
      const size_t at = FindStop(s->reply, search_from, s->stop_strings);
      if (at != std::string::npos) {
        s->reply.resize(at);
        reason = FAMQ_STOP_STRING;
        break;
      }
      search_from = s->reply.size() >= max_stop ? s->reply.size() - max_stop + 1 : 0;
    }
    const size_t hold = s->stop_strings.empty() ? 0 : HoldBack(s->reply, o->delivered, s->stop_strings);
    if (!o->Deliver(s->reply, s->reply.size() - hold, tok)) {
      s->reply.resize(o->delivered);  // the reply is what was handed out
      reason = FAMQ_STOP_CALLBACK;
      break;
    }
    if (i + 1 == budget) break;  // no logits needed after the last token
    FAMQ_RETURN_IF_ERROR(engine->Forward(std::span<const int32_t>(&tok, 1), static_cast<int>(s->cached.size()),
                                         s->logits.data(), false));
    s->cached.push_back(tok);
  }
  if (reason != FAMQ_STOP_CALLBACK) (void)o->Deliver(s->reply, s->reply.size(), -1);
  const auto t_end = Clock::now();
  st.last_stop = reason;
  st.last_ttft_seconds = std::chrono::duration<double>(t_first - t0).count();
  st.last_decode_seconds = std::chrono::duration<double>(t_end - t_first).count();
  // Kept as valid UTF-8 (a reply cut inside a character gets U+FFFD), so the template can render it.
  std::string content;
  famq::unicode::AppendUtf8Lossy(s->reply, &content);
  s->messages.push_back(famq::ChatMessage{"assistant", std::move(content)});
  return Status::Ok();
}

ApiStatus Generate(famq_session* session, famq_token_callback on_piece, void* user, char* out_text, size_t out_capacity,
                size_t* out_len, const char* user_message) {
  const char* fn = user_message != nullptr ? "famq_session_send" : "famq_session_generate";
  FAMQ_CAPI_REQUIRE(fn, session);
  famq_session* s = session;
  if (out_text == nullptr && out_capacity != 0) {
    return InvalidArgument(std::string(fn) + ": out_text is NULL but out_capacity is " + std::to_string(out_capacity));
  }
  if (out_text != nullptr && out_capacity == 0) {
    return InvalidArgument(std::string(fn) + ": out_capacity is 0 (the buffer must hold at least the NUL)");
  }
  if (user_message != nullptr && !famq::unicode::IsValidUtf8(user_message)) {
    return InvalidArgument(std::string(fn) + ": user_message is not valid UTF-8");
  }
  std::unique_lock<std::mutex> own(s->busy, std::try_to_lock);
  if (!own.owns_lock()) return InvalidArgument(std::string(fn) + ": the session is busy with another call");
  std::unique_lock<std::mutex> model(s->model->busy, std::try_to_lock);
  if (!model.owns_lock()) {
    return InvalidArgument(std::string(fn) +
                           ": the model is busy with another call (one generation at a time per model, sessions "
                           "included)");
  }
  if (out_len != nullptr) *out_len = 0;
  if (out_text != nullptr) out_text[0] = '\0';
  const size_t before = s->messages.size();
  if (user_message != nullptr) s->messages.push_back(famq::ChatMessage{"user", user_message});
  Output o;
  o.on_piece = on_piece;
  o.user = user;
  o.out = out_text;
  o.capacity = out_capacity;
  const ApiStatus st = RunTurn(s, &o);
  if (!st.ok()) {
    s->messages.resize(before);  // the conversation is as before the call
    s->stats.last_stop = FAMQ_STOP_NONE;
    if (st.message().rfind("famq_session", 0) == 0) return st;
    if (st.code() == FAMQ_CONTEXT_FULL) return ContextFull(std::string(fn) + ": " + st.message());
    return Status(static_cast<famq::StatusCode>(st.code()), std::string(fn) + ": " + st.message());
  }
  s->stats.context_tokens = static_cast<int32_t>(s->cached.size());
  s->stats.messages = static_cast<int32_t>(s->messages.size());
  if (out_len != nullptr) *out_len = s->reply.size();
  if (out_text != nullptr && s->reply.size() >= out_capacity) {
    return BufferTooSmall(std::string(fn) + ": out_text (" + std::to_string(out_capacity) +
                                " bytes) cannot hold the reply of " + std::to_string(s->reply.size()) +
                                " bytes and its NUL; the reply is complete and kept in the conversation");
  }
  return Status::Ok();
}

}  // namespace

extern "C" {

famq_status famq_tokenize(const famq_model* model, const char* text, int add_special, int32_t* out_tokens,
                          size_t capacity, size_t* out_count) {
  return Guard("famq_tokenize", [&]() -> ApiStatus {
    constexpr const char* fn = "famq_tokenize";
    FAMQ_CAPI_REQUIRE(fn, model);
    FAMQ_CAPI_REQUIRE(fn, text);
    FAMQ_CAPI_REQUIRE(fn, out_count);
    if (out_tokens == nullptr && capacity != 0) {
      return InvalidArgument("famq_tokenize: out_tokens is NULL but capacity is " + std::to_string(capacity));
    }
    std::vector<int32_t> ids;
    if (Status st = EncodeText(model, text, add_special, &ids); !st.ok()) {
      return Status(st.code(), "famq_tokenize: " + st.message());
    }
    *out_count = ids.size();
    if (out_tokens == nullptr) return Status::Ok();
    std::copy_n(ids.begin(), std::min(capacity, ids.size()), out_tokens);
    if (capacity < ids.size()) {
      return BufferTooSmall("famq_tokenize: out_tokens holds " + std::to_string(capacity) + " ids; the text has " +
                                  std::to_string(ids.size()));
    }
    return Status::Ok();
  });
}

famq_status famq_token_count(const famq_model* model, const char* text, int add_special, size_t* out_count) {
  return Guard("famq_token_count", [&]() -> Status {
    constexpr const char* fn = "famq_token_count";
    FAMQ_CAPI_REQUIRE(fn, model);
    FAMQ_CAPI_REQUIRE(fn, text);
    FAMQ_CAPI_REQUIRE(fn, out_count);
    std::vector<int32_t> ids;
    if (Status st = EncodeText(model, text, add_special, &ids); !st.ok()) {
      return Status(st.code(), "famq_token_count: " + st.message());
    }
    *out_count = ids.size();
    return Status::Ok();
  });
}

famq_status famq_detokenize(const famq_model* model, const int32_t* tokens, size_t count, char* out_text,
                            size_t out_capacity, size_t* out_len) {
  return Guard("famq_detokenize", [&]() -> ApiStatus {
    constexpr const char* fn = "famq_detokenize";
    FAMQ_CAPI_REQUIRE(fn, model);
    FAMQ_CAPI_REQUIRE(fn, out_text);
    if (tokens == nullptr && count != 0) return NullArg(fn, "tokens");
    if (out_capacity == 0) return InvalidArgument("famq_detokenize: out_capacity is 0 (the NUL must fit)");
    const int32_t vocab = std::max<int32_t>(model->model.config.vocab_size, model->model.tokenizer.vocab_size());
    std::vector<int32_t> ids(tokens, tokens + count);
    for (size_t i = 0; i < count; ++i) {
      if (ids[i] < 0 || ids[i] >= vocab) {
        return InvalidArgument("famq_detokenize: tokens[" + std::to_string(i) + "] = " + std::to_string(ids[i]) +
                               " is not in [0, " + std::to_string(vocab) + ")");
      }
    }
    const std::string text = model->model.tokenizer.Decode(ids);
    if (out_len != nullptr) *out_len = text.size();
    if (text.size() < out_capacity) {
      std::memcpy(out_text, text.data(), text.size());
      out_text[text.size()] = '\0';
      return Status::Ok();
    }
    // The longest prefix that fits, cut before a UTF-8 continuation byte.
    size_t n = out_capacity - 1;
    while (n > 0 && (static_cast<unsigned char>(text[n]) & 0xC0) == 0x80) --n;
    std::memcpy(out_text, text.data(), n);
    out_text[n] = '\0';
    return BufferTooSmall("famq_detokenize: out_text (" + std::to_string(out_capacity) +
                                " bytes) cannot hold the text of " + std::to_string(text.size()) +
                                " bytes and its NUL");
  });
}

void famq_session_default_params(famq_session_params* params) {
  if (params == nullptr) return;
  std::memset(params, 0, sizeof *params);
  params->struct_size = sizeof *params;
  params->max_new_tokens = 512;
  params->temperature = 0.0f;
  params->top_k = 0;
  params->top_p = 1.0f;
  params->seed = 0;
  params->repetition_penalty = 1.0f;
  params->enable_thinking = 1;
  params->stop_strings = nullptr;
  params->n_stop_strings = 0;
  params->stop_tokens = nullptr;
  params->n_stop_tokens = 0;
}

famq_status famq_session_create(famq_model* model, const famq_session_params* params, famq_session** out_session) {
  return Guard("famq_session_create", [&]() -> Status {
    constexpr const char* fn = "famq_session_create";
    FAMQ_CAPI_REQUIRE(fn, out_session);
    *out_session = nullptr;
    FAMQ_CAPI_REQUIRE(fn, model);
    if (!model->chat_template) {
      const Status& why = model->chat_template_status;
      return Status(why.code(), "famq_session_create: " + why.message());
    }
    auto s = std::make_unique<famq_session>();
    s->model = model;
    FAMQ_RETURN_IF_ERROR(ReadSessionParams(*model, params, &s->params, &s->stop_strings, &s->stop_tokens, fn));
    famq::Result<famq::KvCache> kv = model->engine->NewKvCache();
    if (!kv.ok()) return Status(kv.status().code(), "famq_session_create: " + kv.status().message());
    s->kv = std::move(*kv);
    const int vocab = model->engine->vocab_size();
    s->logits.assign(static_cast<size_t>(vocab), 0.0f);
    s->seen.assign(static_cast<size_t>(vocab), 0);
    famq::SamplingParams sp{s->params.temperature, s->params.top_k, s->params.top_p, s->params.seed};
    s->sampler.emplace(vocab, sp);
    const int max_seq = model->engine->max_seq_len();
    s->cached.reserve(static_cast<size_t>(max_seq));
    s->prompt.reserve(static_cast<size_t>(max_seq));
    s->stats.struct_size = sizeof s->stats;
    s->stats.max_seq_len = max_seq;
    s->stats.kv_cache_bytes = s->kv.bytes();
    *out_session = s.release();
    return Status::Ok();
  });
}

void famq_session_free(famq_session* session) { delete session; }

famq_status famq_session_set_params(famq_session* session, const famq_session_params* params) {
  return Guard("famq_session_set_params", [&]() -> Status {
    constexpr const char* fn = "famq_session_set_params";
    FAMQ_CAPI_REQUIRE(fn, session);
    FAMQ_CAPI_REQUIRE(fn, params);
    std::unique_lock<std::mutex> own(session->busy, std::try_to_lock);
    if (!own.owns_lock()) return InvalidArgument("famq_session_set_params: the session is busy with another call");
    famq_session_params p;
    std::vector<std::string> strings;
    std::vector<int32_t> tokens;
    FAMQ_RETURN_IF_ERROR(ReadSessionParams(*session->model, params, &p, &strings, &tokens, fn));
    session->params = p;
    session->stop_strings = std::move(strings);
    session->stop_tokens = std::move(tokens);
    session->sampler->Reset(famq::SamplingParams{p.temperature, p.top_k, p.top_p, p.seed}, p.seed);
    return Status::Ok();
  });
}

famq_status famq_session_reset(famq_session* session) {
  return Guard("famq_session_reset", [&]() -> Status {
    FAMQ_CAPI_REQUIRE("famq_session_reset", session);
    std::unique_lock<std::mutex> own(session->busy, std::try_to_lock);
    if (!own.owns_lock()) return InvalidArgument("famq_session_reset: the session is busy with another call");
    session->messages.clear();
    session->cached.clear();
    const famq_session_params& p = session->params;
    session->sampler->Reset(famq::SamplingParams{p.temperature, p.top_k, p.top_p, p.seed}, p.seed);
    famq_session_stats& st = session->stats;
    st.context_tokens = st.messages = 0;
    st.last_prompt_tokens = st.last_reused_tokens = st.last_prefill_tokens = st.last_generated_tokens = 0;
    st.last_stop = FAMQ_STOP_NONE;
    st.last_ttft_seconds = st.last_decode_seconds = 0.0;
    return Status::Ok();
  });
}

famq_status famq_session_add_message(famq_session* session, famq_role role, const char* content) {
  return Guard("famq_session_add_message", [&]() -> Status {
    constexpr const char* fn = "famq_session_add_message";
    FAMQ_CAPI_REQUIRE(fn, session);
    FAMQ_CAPI_REQUIRE(fn, content);
    const char* name = RoleName(role);
    if (name == nullptr) {
      return InvalidArgument("famq_session_add_message: role " + std::to_string(static_cast<long long>(role)) +
                             " is not FAMQ_ROLE_SYSTEM, FAMQ_ROLE_USER or FAMQ_ROLE_ASSISTANT");
    }
    if (!famq::unicode::IsValidUtf8(content)) {
      return InvalidArgument("famq_session_add_message: content is not valid UTF-8");
    }
    std::unique_lock<std::mutex> own(session->busy, std::try_to_lock);
    if (!own.owns_lock()) return InvalidArgument("famq_session_add_message: the session is busy with another call");
    session->messages.push_back(famq::ChatMessage{name, content});
    session->stats.messages = static_cast<int32_t>(session->messages.size());
    return Status::Ok();
  });
}

famq_status famq_session_generate(famq_session* session, famq_token_callback on_piece, void* user, char* out_text,
                                  size_t out_capacity, size_t* out_len) {
  return Guard("famq_session_generate", [&]() -> ApiStatus {
    return Generate(session, on_piece, user, out_text, out_capacity, out_len, nullptr);
  });
}

famq_status famq_session_send(famq_session* session, const char* user_message, famq_token_callback on_piece,
                              void* user, char* out_text, size_t out_capacity, size_t* out_len) {
  return Guard("famq_session_send", [&]() -> ApiStatus {
    FAMQ_CAPI_REQUIRE("famq_session_send", user_message);
    return Generate(session, on_piece, user, out_text, out_capacity, out_len, user_message);
  });
}

famq_status famq_session_get_stats(const famq_session* session, famq_session_stats* stats) {
  return Guard("famq_session_get_stats", [&]() -> Status {
    constexpr const char* fn = "famq_session_get_stats";
    FAMQ_CAPI_REQUIRE(fn, session);
    FAMQ_CAPI_REQUIRE(fn, stats);
    famq_session_stats v = session->stats;
    v.struct_size = sizeof v;
    return WriteInfo(v, stats, fn);
  });
}

}  // extern "C"
