// The C API (include/famq/famq.h) over the runtime's C++ library. Every entry
// point runs inside Guard(): famq::Status becomes famq_status and the
// per-thread last error, and no exception leaves (std::bad_alloc ->
// FAMQ_OUT_OF_MEMORY, anything else -> FAMQ_INTERNAL).
#include "famq/famq.h"

#include "capi/capi_internal.h"

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <limits>
#include <mutex>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "bundle/bundle.h"
#include "bundle/signature.h"
#include "core/file.h"
#include "core/status.h"
#include "engine/engine.h"
#include "engine/generate.h"
#include "engine/sampler.h"
#include "export/gguf_export.h"
#include "finalize/calibration_set.h"
#include "finalize/finalize.h"
#include "finalize/finalize_job.h"
#include "kernels/isa.h"
#include "model/model_dir.h"
#include "qmodel/qmodel.h"
#include "qmodel/qmodel_engine.h"
#include "chat_template/chat_template.h"

// famq_status is famq::StatusCode, value for value, up to FAMQ_INTERNAL; the
// C API's own codes (FAMQ_BUFFER_TOO_SMALL, FAMQ_CONTEXT_FULL) come after
// (capi_internal.h, ApiStatus).
#define FAMQ_CAPI_SAME_CODE(c, k) static_assert(static_cast<int>(c) == static_cast<int>(famq::StatusCode::k))
FAMQ_CAPI_SAME_CODE(FAMQ_OK, kOk);
FAMQ_CAPI_SAME_CODE(FAMQ_INVALID_ARGUMENT, kInvalidArgument);
FAMQ_CAPI_SAME_CODE(FAMQ_NOT_FOUND, kNotFound);
FAMQ_CAPI_SAME_CODE(FAMQ_IO_ERROR, kIoError);
FAMQ_CAPI_SAME_CODE(FAMQ_INVALID_FORMAT, kInvalidFormat);
FAMQ_CAPI_SAME_CODE(FAMQ_UNSUPPORTED, kUnsupported);
FAMQ_CAPI_SAME_CODE(FAMQ_OUT_OF_MEMORY, kOutOfMemory);
FAMQ_CAPI_SAME_CODE(FAMQ_CANCELLED, kCancelled);
FAMQ_CAPI_SAME_CODE(FAMQ_INTERNAL, kInternal);
#undef FAMQ_CAPI_SAME_CODE
static_assert(FAMQ_BUFFER_TOO_SMALL == static_cast<int>(famq::StatusCode::kInternal) + 1,
              "the C API's own codes follow famq::StatusCode's");
static_assert(sizeof(famq_status) == 4, "famq_status is a 32-bit enum in every ABI");

struct famq_bundle {
  explicit famq_bundle(famq::Bundle b) : bundle(std::move(b)) {}
  famq::Bundle bundle;
};

namespace famq::capi {

namespace {
thread_local std::string t_error;
// Used instead of t_error when even the message could not be stored.
thread_local const char* t_error_static = nullptr;
}  // namespace

void SetError(std::string_view message) noexcept {
  try {
    t_error.assign(message);
    t_error_static = nullptr;
  } catch (...) {
    t_error.clear();
    t_error_static = "out of memory (while storing the error message)";
  }
}

void AppendError(std::string_view more) noexcept {
  try {
    if (t_error_static == nullptr) t_error.append(more);
  } catch (...) {
  }
}

const char* LastError() noexcept { return t_error_static != nullptr ? t_error_static : t_error.c_str(); }

// famq_finalize_options gained head_bits at its end, then f16_scales.
template <>
inline constexpr size_t kFirstVersionSize<famq_finalize_options> = offsetof(famq_finalize_options, head_bits);
template <>
inline constexpr size_t kSecondVersionSize<famq_finalize_options> = offsetof(famq_finalize_options, f16_scales);

}  // namespace famq::capi

namespace {

using famq::InvalidArgument;
using famq::Status;
using namespace famq::capi;

Status RequirePath(const char* fn, const char* name, const char* path) {
  if (path == nullptr) return NullArg(fn, name);
  if (*path == '\0') return InvalidArgument(std::string(fn) + ": " + name + " is empty");
  return Status::Ok();
}

void CopyHex(const std::string& s, char (&out)[FAMQ_SHA256_HEX_SIZE]) {
  const size_t n = std::min(s.size(), size_t{FAMQ_SHA256_HEX_SIZE - 1});
  std::memcpy(out, s.data(), n);
  out[n] = '\0';
}

// --- models ------------------------------------------------------------------

Status ReadModelOptions(const famq_model_options* in, famq::EngineOptions* eo, const char* fn) {
  famq_model_options o;
  famq_model_options_init(&o);
  FAMQ_RETURN_IF_ERROR(ReadOptions(in, &o, fn, "famq_model_options_init"));
  if (o.num_threads < 0 || o.num_threads > 256) {
    return InvalidArgument(std::string(fn) + ": num_threads " + std::to_string(o.num_threads) + " is not in [0, 256]");
  }
  if (o.max_seq_len < 0) {
    return InvalidArgument(std::string(fn) + ": max_seq_len " + std::to_string(o.max_seq_len) + " is negative");
  }
  switch (o.kv_type) {
    case FAMQ_KV_F16: eo->kv_type = famq::KvType::kF16; break;
    case FAMQ_KV_F32: eo->kv_type = famq::KvType::kF32; break;
    case FAMQ_KV_INT8: eo->kv_type = famq::KvType::kInt8; break;
    default:
      return InvalidArgument(std::string(fn) + ": kv_type " + std::to_string(o.kv_type) +
                             " is not FAMQ_KV_F16 (0), FAMQ_KV_F32 (1) or FAMQ_KV_INT8 (2)");
  }
  eo->num_threads = o.num_threads;
  eo->max_seq_len = o.max_seq_len;
  return Status::Ok();
}

Status OpenModel(const std::string& dir, const std::string& qmodel, const famq::EngineOptions& eo,
                 famq_model** out) {
  auto h = std::make_unique<famq_model>();
  FAMQ_ASSIGN_OR_RETURN(h->model, famq::OpenRunnableModel(dir, qmodel));
  FAMQ_ASSIGN_OR_RETURN(h->engine, h->model.CreateEngine(eo));

  const famq::Tokenizer& tok = h->model.tokenizer;
  const int32_t table = std::max<int32_t>(h->model.config.vocab_size, tok.vocab_size());
  h->token_offsets.resize(static_cast<size_t>(table) + 1);
  for (int32_t t = 0; t < table; ++t) {
    h->token_offsets[static_cast<size_t>(t)] = static_cast<uint32_t>(h->token_bytes.size());
    h->token_bytes += tok.TokenBytes(t);
    if (h->token_bytes.size() > std::numeric_limits<uint32_t>::max()) {
      return famq::InvalidFormat(h->model.origin + ": the vocabulary's token bytes exceed 4 GiB");
    }
  }
  h->token_offsets[static_cast<size_t>(table)] = static_cast<uint32_t>(h->token_bytes.size());

  if (h->model.tokenizer_config && !h->model.tokenizer_config->chat_template.empty()) {
    auto t = famq::ChatTemplate::Parse(h->model.tokenizer_config->chat_template);
    if (t.ok()) {
      h->chat_template = std::move(*t);
    } else {
      h->chat_template_status =
          Status(t.status().code(), h->model.origin + ": chat template: " + t.status().message());
    }
  } else {
    h->chat_template_status = InvalidArgument(h->model.origin + ": chat is set but the model has no chat_template "
                                              "in tokenizer_config.json");
  }
  h->out_ids.reserve(static_cast<size_t>(h->engine->max_seq_len()));
  h->prompt_ids.reserve(static_cast<size_t>(h->engine->max_seq_len()));
  *out = h.release();
  return Status::Ok();
}

std::string SchemeString(const famq_model& m) {
  if (!m.model.quantized()) return "fp32";
  const famq::fb::QModel& r = m.model.qmodel->root();
  const bool w8a8 = r.scheme() == famq::fb::QScheme::W8A8Static;
  // Appended piece by piece: GCC 12's -Wrestrict misfires on "literal" + std::string at -O3.
  std::string s = "W";
  s += std::to_string(r.wbits());
  if (w8a8) {
    s += "A8 static";
  } else if (r.group_size() == 0) {
    s += " per-channel";
  } else {
    s += " g";
    s += std::to_string(r.group_size());
  }
  if (!w8a8 && r.symmetric()) s += " symmetric";
  if (const famq::fb::QProvenance* p = r.provenance()) {
    switch (p->method()) {
      case famq::fb::QMethod::Rtn: s += " rtn"; break;
      case famq::fb::QMethod::Gptq: s += " gptq"; break;
      case famq::fb::QMethod::Awq: s += " awq"; break;
      case famq::fb::QMethod::SmoothQuant: s += " smoothquant"; break;
    }
  }
  if (!w8a8) s += " weight-only";
  return s;
}

// --- generation --------------------------------------------------------------

// What the token loop writes to: set up once per call, no allocation inside.
struct TokenSink {
  const famq_model* model = nullptr;
  famq_token_callback on_token = nullptr;
  void* user = nullptr;
  char* out = nullptr;
  size_t capacity = 0;
  size_t written = 0;
  bool truncated = false;
  int32_t truncated_token = 0;
  size_t truncated_len = 0;

  bool OnToken(int32_t token) {
    const std::string_view p = model->Piece(token);
    const char* piece = p.empty() ? "" : p.data();
    const size_t len = p.size();
    if (out != nullptr) {
      if (len >= capacity - written) {  // the piece and the NUL must fit
        truncated = true;
        truncated_token = token;
        truncated_len = len;
        return false;
      }
      std::memcpy(out + written, piece, len);
      written += len;
      out[written] = '\0';
    }
    return on_token == nullptr || on_token(piece, len, token, user) == 0;
  }
};

Status BuildPrompt(famq_model* m, const char* prompt, const famq_generate_options& o) {
  const famq::RunnableModel& rm = m->model;
  m->prompt_ids.clear();
  if (o.chat != 0) {
    if (!m->chat_template) return m->chat_template_status;
    famq::ChatTemplateOptions opt;
    opt.add_generation_prompt = true;
    opt.enable_thinking = o.enable_thinking != 0;
    opt.bos_token = rm.tokenizer_config->bos_token;
    opt.eos_token = rm.tokenizer_config->eos_token;
    FAMQ_ASSIGN_OR_RETURN(const std::string text, m->chat_template->Render({famq::ChatMessage{"user", prompt}}, opt));
    return rm.tokenizer.Encode(text, &m->prompt_ids);
  }
  if (rm.add_bos && rm.bos_token) m->prompt_ids.push_back(*rm.bos_token);
  return rm.tokenizer.Encode(prompt, &m->prompt_ids);
}

ApiStatus Generate(famq_model* model, const char* prompt, const famq_generate_options* options, famq_token_callback on_token,
                void* user, char* out_text, size_t out_capacity, size_t* out_len) {
  constexpr const char* fn = "famq_generate";
  FAMQ_CAPI_REQUIRE(fn, model);
  FAMQ_CAPI_REQUIRE(fn, prompt);
  famq_model* m = model;
  if (out_text == nullptr && out_capacity != 0) {
    return InvalidArgument("famq_generate: out_text is NULL but out_capacity is " + std::to_string(out_capacity));
  }
  if (out_text != nullptr && out_capacity == 0) {
    return InvalidArgument("famq_generate: out_capacity is 0 (the buffer must hold at least the NUL)");
  }
  if (out_text == nullptr && on_token == nullptr) {
    return InvalidArgument("famq_generate: on_token and out_text are both NULL: nothing would receive the text");
  }
  famq_generate_options o;
  famq_generate_options_init(&o);
  FAMQ_RETURN_IF_ERROR(ReadOptions(options, &o, fn, "famq_generate_options_init"));
  if (o.max_new_tokens < 0) {
    return InvalidArgument("famq_generate: max_new_tokens " + std::to_string(o.max_new_tokens) + " is negative");
  }
  famq::GenerateParams gp;
  gp.sampling.temperature = o.temperature;
  gp.sampling.top_k = o.top_k;
  gp.sampling.top_p = o.top_p;
  gp.sampling.seed = o.seed;
  gp.max_new_tokens = o.max_new_tokens;
  gp.stop_tokens = m->model.stop_tokens;
  if (Status st = famq::ValidateSamplingParams(gp.sampling); !st.ok()) {
    return Status(st.code(), "famq_generate: " + st.message());
  }

  std::unique_lock<std::mutex> lock(m->busy, std::try_to_lock);
  if (!lock.owns_lock()) {
    return InvalidArgument("famq_generate: the model is busy with another call (one generation at a time per model)");
  }
  if (out_len != nullptr) *out_len = 0;
  if (out_text != nullptr) out_text[0] = '\0';
  FAMQ_RETURN_IF_ERROR(BuildPrompt(m, prompt, o));

  TokenSink sink;
  sink.model = m;
  sink.on_token = on_token;
  sink.user = user;
  sink.out = out_text;
  sink.capacity = out_capacity;
  famq::Generator gen(m->engine.get(), gp);
  m->out_ids.clear();
  TokenSink* s = &sink;  // one pointer: fits std::function's inline storage
  const Status st = gen.Run(m->prompt_ids, &m->out_ids, [s](int32_t t) { return s->OnToken(t); }, nullptr);
  if (out_len != nullptr) *out_len = sink.written;
  FAMQ_RETURN_IF_ERROR(st);
  if (sink.truncated) {
    return BufferTooSmall("famq_generate: out_text (" + std::to_string(out_capacity) + " bytes) is full after " +
                             std::to_string(sink.written) + " bytes; generation stopped before token " +
                             std::to_string(sink.truncated_token) + " (" + std::to_string(sink.truncated_len) +
                             " bytes)");
  }
  return Status::Ok();
}

// --- bundles -----------------------------------------------------------------

famq::Result<famq::Bundle> VerifyBundle(const char* fn, const char* bundle_path, const char* key_path,
                                        bool allow_unsigned) {
  famq::BundleVerifyOptions vo;
  std::optional<famq::PublicKey> key;
  if (key_path != nullptr && *key_path != '\0') {
    FAMQ_ASSIGN_OR_RETURN(key, famq::PublicKey::Load(key_path));
    vo.trusted_key = &*key;
  } else if (!allow_unsigned) {
    return InvalidArgument(std::string(fn) + ": " + bundle_path +
                           ": public_key_path is NULL: give the key the host signed the bundle with "
                           "(or allow unsigned bundles)");
  }
  vo.allow_unsigned = allow_unsigned;
  return famq::Bundle::Open(bundle_path, vo);
}

famq_bundle_info BundleInfo(const famq::Bundle& b) {
  famq_bundle_info info;
  std::memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  const famq::fb::Payload& p = b.payload();
  info.sample_count = p.samples() != nullptr ? p.samples()->size() : 0;
  info.total_tokens = p.total_tokens();
  info.is_signed = b.verification().is_signed ? 1 : 0;
  info.signature_checked = b.verification().signature_checked ? 1 : 0;
  CopyHex(b.verification().key_id, info.key_id);
  CopyHex(b.verification().payload_sha256, info.payload_sha256);
  if (p.family() != nullptr && p.family()->tokenizer_sha256() != nullptr) {
    CopyHex(p.family()->tokenizer_sha256()->str(), info.tokenizer_sha256);
  }
  return info;
}

// --- finalize ----------------------------------------------------------------

famq::Result<famq::quant::Estimator> ParseEstimator(const char* s) {
  const std::string_view v = s == nullptr ? "minmax" : s;
  if (v == "minmax") return famq::quant::Estimator::kMinMax;
  if (v == "percentile") return famq::quant::Estimator::kPercentile;
  if (v == "mse") return famq::quant::Estimator::kMse;
  return InvalidArgument("famq_finalize: unknown act_estimator '" + std::string(v) + "' (minmax, percentile, mse)");
}

Status Finalize(const char* model_dir, const char* bundle_path, const char* key_path, const char* calib_text_path,
                const famq_finalize_options* options, famq_progress_callback on_progress, void* user,
                const char* out_path) {
  constexpr const char* fn = "famq_finalize";
  // Settings first: impossible ones are refused before any file is read.
  FAMQ_RETURN_IF_ERROR(RequirePath(fn, "model_dir", model_dir));
  FAMQ_RETURN_IF_ERROR(RequirePath(fn, "out_path", out_path));
  if ((bundle_path == nullptr) == (calib_text_path == nullptr)) {
    return InvalidArgument(
        "famq_finalize: give exactly one calibration source: bundle_path (with public_key_path) or calib_text_path");
  }
  if (bundle_path != nullptr) FAMQ_RETURN_IF_ERROR(RequirePath(fn, "bundle_path", bundle_path));
  if (calib_text_path != nullptr) FAMQ_RETURN_IF_ERROR(RequirePath(fn, "calib_text_path", calib_text_path));
  famq_finalize_options c;
  famq_finalize_options_init(&c);
  FAMQ_RETURN_IF_ERROR(ReadOptions(options, &c, fn, "famq_finalize_options_init"));

  famq::FinalizeOptions o;
  auto method = famq::ParseQuantMethod(c.method == nullptr ? "gptq" : c.method);
  if (!method.ok()) return Status(method.status().code(), "famq_finalize: " + method.status().message());
  o.method = *method;
  if (c.group_size != 0 && c.group_size != 32 && c.group_size != 64 && c.group_size != 128) {
    return InvalidArgument("famq_finalize: group_size " + std::to_string(c.group_size) +
                           " is not one of 32, 64, 128, 0 (per channel)");
  }
  o.group_size = c.group_size;
  FAMQ_ASSIGN_OR_RETURN(o.estimator, ParseEstimator(c.act_estimator));
  o.wbits = c.wbits;
  o.abits = c.abits;
  if (o.method == famq::QuantMethod::kSmoothQuant && o.abits == 0) o.abits = 8;  // SmoothQuant means W8A8
  o.symmetric = c.symmetric != 0;
  if (c.head_bits != 4 && c.head_bits != 6 && c.head_bits != 8 && c.head_bits != 16) {
    return InvalidArgument("famq_finalize: head_bits " + std::to_string(c.head_bits) +
                           " is not one of 8, 6, 4, 16 (kept as stored)");
  }
  o.head_bits = c.head_bits;
  o.f16_scales = c.f16_scales != 0;
  if (c.num_threads < 0 || c.num_threads > 256) {
    return InvalidArgument("famq_finalize: num_threads " + std::to_string(c.num_threads) + " is not in [0, 256]");
  }
  o.num_threads = c.num_threads;
  if (c.calib_seq_len < 2) {
    return InvalidArgument("famq_finalize: calib_seq_len " + std::to_string(c.calib_seq_len) + " is below 2 tokens");
  }
  const bool mix = c.private_text_path != nullptr;
  if (mix && !(c.private_weight > 0.0f && c.private_weight < 1.0f)) {
    return InvalidArgument("famq_finalize: private_text_path needs private_weight in (0, 1), not " +
                           std::to_string(c.private_weight));
  }
  if (!mix && c.private_weight != 0.0f) {
    return InvalidArgument("famq_finalize: private_weight is set but private_text_path is NULL");
  }
  if (mix) FAMQ_RETURN_IF_ERROR(RequirePath(fn, "private_text_path", c.private_text_path));
  if (bundle_path != nullptr && (key_path == nullptr || *key_path == '\0') && c.allow_unsigned == 0) {
    return InvalidArgument(std::string("famq_finalize: ") + bundle_path +
                           ": public_key_path is NULL: give the key the host signed the bundle with "
                           "(or set allow_unsigned)");
  }
  FAMQ_ASSIGN_OR_RETURN(o.isa, famq::ActiveIsa());

  famq::FinalizeRequest r;
  r.model_dir = model_dir;
  r.out_path = out_path;
  if (bundle_path != nullptr) {
    r.calib.bundle_path = bundle_path;
    if (key_path != nullptr) r.calib.public_key_path = key_path;
  } else {
    r.calib.text_path = calib_text_path;
  }
  r.calib.allow_unsigned = c.allow_unsigned != 0;
  r.calib.allow_foreign_family = c.allow_foreign_family != 0;
  r.calib.text_seq_len = c.calib_seq_len;
  if (mix) r.calib.private_text_path = c.private_text_path;
  r.calib.private_weight = c.private_weight;
  if (on_progress != nullptr) {
    o.on_progress = [on_progress, user](const famq::FinalizeProgress& p) {
      return on_progress(static_cast<float>(p.fraction), p.layer, p.layers, p.stage, user) == 0;
    };
  }
  r.options = std::move(o);
  return famq::FinalizeToFile(r).status();
}

}  // namespace

// --- the API -----------------------------------------------------------------

extern "C" {

const char* famq_status_name(famq_status status) {
  switch (status) {
    case FAMQ_OK: return "FAMQ_OK";
    case FAMQ_INVALID_ARGUMENT: return "FAMQ_INVALID_ARGUMENT";
    case FAMQ_NOT_FOUND: return "FAMQ_NOT_FOUND";
    case FAMQ_IO_ERROR: return "FAMQ_IO_ERROR";
    case FAMQ_INVALID_FORMAT: return "FAMQ_INVALID_FORMAT";
    case FAMQ_UNSUPPORTED: return "FAMQ_UNSUPPORTED";
    case FAMQ_OUT_OF_MEMORY: return "FAMQ_OUT_OF_MEMORY";
    case FAMQ_CANCELLED: return "FAMQ_CANCELLED";
    case FAMQ_INTERNAL: return "FAMQ_INTERNAL";
    case FAMQ_BUFFER_TOO_SMALL: return "FAMQ_BUFFER_TOO_SMALL";
    case FAMQ_CONTEXT_FULL: return "FAMQ_CONTEXT_FULL";
    case FAMQ_STATUS_FORCE_32BIT: break;
  }
  return "FAMQ_UNKNOWN_STATUS";
}

const char* famq_last_error(void) { return famq::capi::LastError(); }

const char* famq_version(void) { return FAMQ_VERSION_STRING; }

int famq_api_version(void) { return FAMQ_API_VERSION; }

famq_status famq_force_isa(const char* name) {
  return Guard("famq_force_isa", [&]() -> Status {
    if (name == nullptr || *name == '\0') return famq::ForceIsa(std::nullopt);
    FAMQ_ASSIGN_OR_RETURN(const famq::Isa isa, famq::ParseIsa(name));
    return famq::ForceIsa(isa);
  });
}

famq_status famq_active_isa(const char** out_name) {
  return Guard("famq_active_isa", [&]() -> Status {
    FAMQ_CAPI_REQUIRE("famq_active_isa", out_name);
    FAMQ_ASSIGN_OR_RETURN(const famq::Isa isa, famq::ActiveIsa());
    *out_name = famq::IsaName(isa);
    return Status::Ok();
  });
}

void famq_model_options_init(famq_model_options* options) {
  if (options == nullptr) return;
  std::memset(options, 0, sizeof *options);
  options->struct_size = sizeof *options;
  options->num_threads = 0;
  options->max_seq_len = 0;
  options->kv_type = FAMQ_KV_F16;
}

famq_status famq_model_open(const char* model_dir, const famq_model_options* options, famq_model** out_model) {
  return Guard("famq_model_open", [&]() -> Status {
    constexpr const char* fn = "famq_model_open";
    FAMQ_CAPI_REQUIRE(fn, out_model);
    *out_model = nullptr;
    FAMQ_RETURN_IF_ERROR(RequirePath(fn, "model_dir", model_dir));
    famq::EngineOptions eo;
    FAMQ_RETURN_IF_ERROR(ReadModelOptions(options, &eo, fn));
    return OpenModel(model_dir, "", eo, out_model);
  });
}

famq_status famq_qmodel_open(const char* qmodel_path, const famq_model_options* options, famq_model** out_model) {
  return Guard("famq_qmodel_open", [&]() -> Status {
    constexpr const char* fn = "famq_qmodel_open";
    FAMQ_CAPI_REQUIRE(fn, out_model);
    *out_model = nullptr;
    FAMQ_RETURN_IF_ERROR(RequirePath(fn, "qmodel_path", qmodel_path));
    famq::EngineOptions eo;
    FAMQ_RETURN_IF_ERROR(ReadModelOptions(options, &eo, fn));
    return OpenModel("", qmodel_path, eo, out_model);
  });
}

void famq_model_close(famq_model* model) {
  // Destructors release memory and mappings; none of them throws.
  delete model;
}

famq_status famq_model_get_info(const famq_model* model, famq_model_info* info, char* scheme, size_t scheme_capacity,
                                size_t* scheme_len) {
  return Guard("famq_model_get_info", [&]() -> ApiStatus {
    constexpr const char* fn = "famq_model_get_info";
    FAMQ_CAPI_REQUIRE(fn, model);
    FAMQ_CAPI_REQUIRE(fn, info);
    if (scheme == nullptr && scheme_capacity != 0) {
      return InvalidArgument("famq_model_get_info: scheme is NULL but scheme_capacity is " +
                             std::to_string(scheme_capacity));
    }
    if (scheme != nullptr && scheme_capacity == 0) {
      return InvalidArgument("famq_model_get_info: scheme_capacity is 0 (the buffer must hold at least the NUL)");
    }
    const famq::ModelConfig& c = model->model.config;
    famq_model_info v;
    std::memset(&v, 0, sizeof v);
    v.struct_size = sizeof v;
    v.parameters = c.NumParameters();
    v.layers = c.num_layers;
    v.hidden_size = c.hidden_size;
    v.vocab_size = c.vocab_size;
    v.max_seq_len = model->engine->max_seq_len();
    v.quantized = model->model.quantized() ? 1 : 0;
    if (model->model.quantized()) {
      const famq::fb::QModel& r = model->model.qmodel->root();
      v.wbits = r.wbits();
      v.abits = r.abits();
      v.group_size = r.group_size();
    }
    FAMQ_RETURN_IF_ERROR(WriteInfo(v, info, fn));
    const std::string s = SchemeString(*model);
    if (scheme_len != nullptr) *scheme_len = s.size();
    if (scheme != nullptr && !CopyOut(s, scheme, scheme_capacity)) {
      return BufferTooSmall("famq_model_get_info: scheme (" + std::to_string(scheme_capacity) +
                               " bytes) cannot hold '" + s + "' (" + std::to_string(s.size() + 1) +
                               " bytes with the NUL)");
    }
    return Status::Ok();
  });
}

void famq_generate_options_init(famq_generate_options* options) {
  if (options == nullptr) return;
  std::memset(options, 0, sizeof *options);
  options->struct_size = sizeof *options;
  options->max_new_tokens = 128;
  options->temperature = 0.0f;
  options->top_k = 0;
  options->top_p = 1.0f;
  options->seed = 0;
  options->chat = 0;
  options->enable_thinking = 1;
}

famq_status famq_generate(famq_model* model, const char* prompt, const famq_generate_options* options,
                          famq_token_callback on_token, void* user, char* out_text, size_t out_capacity,
                          size_t* out_len) {
  return Guard("famq_generate", [&]() -> ApiStatus {
    return Generate(model, prompt, options, on_token, user, out_text, out_capacity, out_len);
  });
}

famq_status famq_bundle_open(const char* bundle_path, const char* public_key_path, int allow_unsigned,
                             famq_bundle** out_bundle) {
  return Guard("famq_bundle_open", [&]() -> Status {
    constexpr const char* fn = "famq_bundle_open";
    FAMQ_CAPI_REQUIRE(fn, out_bundle);
    *out_bundle = nullptr;
    FAMQ_RETURN_IF_ERROR(RequirePath(fn, "bundle_path", bundle_path));
    FAMQ_ASSIGN_OR_RETURN(famq::Bundle b, VerifyBundle(fn, bundle_path, public_key_path, allow_unsigned != 0));
    *out_bundle = new famq_bundle(std::move(b));
    return Status::Ok();
  });
}

famq_status famq_bundle_get_info(const famq_bundle* bundle, famq_bundle_info* info) {
  return Guard("famq_bundle_get_info", [&]() -> Status {
    constexpr const char* fn = "famq_bundle_get_info";
    FAMQ_CAPI_REQUIRE(fn, bundle);
    FAMQ_CAPI_REQUIRE(fn, info);
    return WriteInfo(BundleInfo(bundle->bundle), info, fn);
  });
}

void famq_bundle_close(famq_bundle* bundle) { delete bundle; }

famq_status famq_bundle_verify(const char* bundle_path, const char* public_key_path, int allow_unsigned,
                               famq_bundle_info* out_info) {
  return Guard("famq_bundle_verify", [&]() -> Status {
    constexpr const char* fn = "famq_bundle_verify";
    FAMQ_RETURN_IF_ERROR(RequirePath(fn, "bundle_path", bundle_path));
    if (out_info != nullptr) {
      FAMQ_RETURN_IF_ERROR(CheckStructSize<famq_bundle_info>(out_info->struct_size, fn, "out_info",
                                                             "set it to sizeof the struct"));
    }
    FAMQ_ASSIGN_OR_RETURN(const famq::Bundle b, VerifyBundle(fn, bundle_path, public_key_path, allow_unsigned != 0));
    if (out_info != nullptr) FAMQ_RETURN_IF_ERROR(WriteInfo(BundleInfo(b), out_info, fn));
    return Status::Ok();
  });
}

void famq_finalize_options_init(famq_finalize_options* options) {
  if (options == nullptr) return;
  std::memset(options, 0, sizeof *options);
  options->struct_size = sizeof *options;
  options->method = "gptq";
  options->wbits = 4;
  options->abits = 0;
  options->group_size = 32;
  options->symmetric = 0;
  options->act_estimator = "minmax";
  options->calib_seq_len = 256;
  options->private_text_path = nullptr;
  options->private_weight = 0.0f;
  options->allow_unsigned = 0;
  options->allow_foreign_family = 0;
  options->head_bits = famq::kDefaultHeadBits;
  options->f16_scales = 0;
  options->num_threads = 0;
}

famq_status famq_finalize(const char* model_dir, const char* bundle_path, const char* public_key_path,
                          const char* calib_text_path, const famq_finalize_options* options,
                          famq_progress_callback on_progress, void* user, const char* out_path) {
  return Guard("famq_finalize", [&]() -> Status {
    return Finalize(model_dir, bundle_path, public_key_path, calib_text_path, options, on_progress, user, out_path);
  });
}

// ---- GGUF export ----------------------------------------------------------

famq_status famq_export_gguf(const char* qmodel_path, const char* out_path) {
  return Guard("famq_export_gguf", [&]() -> Status {
    if (qmodel_path == nullptr || *qmodel_path == '\0' || out_path == nullptr || *out_path == '\0') {
      return InvalidArgument("qmodel_path and out_path are required");
    }
    return famq::ExportGguf(qmodel_path, out_path).status();
  });
}

}  // extern "C"
