#include "model/config.h"

#include <nlohmann/json.hpp>

#include "core/digest.h"
#include "core/file.h"
#include "core/json_excerpt.h"
#include "core/json_parse.h"

namespace famq {

const char* ModelArchName(ModelArch arch) {
  switch (arch) {
    case ModelArch::kQwen3: return "Qwen3ForCausalLM";
    case ModelArch::kQwen2: return "Qwen2ForCausalLM";
    case ModelArch::kLlama: return "LlamaForCausalLM";
  }
  return "?";
}

std::string ConfigSha256(std::string_view json_text) {
  nlohmann::json j;
  if (!ParseJson(json_text, "config.json", &j).ok()) return "";
  return Sha256Hex(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

int64_t ModelConfig::NumParameters() const {
  const int64_t h = hidden_size;
  int64_t per_layer = h * (q_dim() + 2 * int64_t{kv_dim()}) + int64_t{q_dim()} * h +
                      3 * h * intermediate_size + 2 * h;
  if (attention_bias) per_layer += q_dim() + 2 * int64_t{kv_dim()};
  if (qk_norm) per_layer += 2 * int64_t{head_dim};
  int64_t total = per_layer * num_layers + int64_t{vocab_size} * h + h;
  if (!tie_word_embeddings) total += int64_t{vocab_size} * h;
  return total;
}

namespace {

using nlohmann::json;

class ConfigReader {
 public:
  ConfigReader(const json& j, const std::string& origin) : j_(j), origin_(origin) {}

  Status Int(const char* key, int lo, int hi, int* out, bool required = true) {
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) {
      return required ? InvalidFormat(origin_ + ": missing '" + key + "'") : Status::Ok();
    }
    if (!it->is_number_integer()) return InvalidFormat(origin_ + ": '" + key + "' must be an integer");
    int64_t v = it->get<int64_t>();
    if (v < lo || v > hi) {
      return InvalidFormat(origin_ + ": '" + key + "' = " + std::to_string(v) + " is outside [" +
                           std::to_string(lo) + ", " + std::to_string(hi) + "]");
    }
    *out = static_cast<int>(v);
    return Status::Ok();
  }

  Status Float(const char* key, double lo, double hi, float* out) {
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) return Status::Ok();  // keep the default
    if (!it->is_number()) return InvalidFormat(origin_ + ": '" + key + "' must be a number");
    double v = it->get<double>();
    if (!(v >= lo && v <= hi)) {
      return InvalidFormat(origin_ + ": '" + key + "' = " + std::to_string(v) + " is outside [" +
                           std::to_string(lo) + ", " + std::to_string(hi) + "]");
    }
    *out = static_cast<float>(v);
    return Status::Ok();
  }

  Status Bool(const char* key, bool* out) {
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) return Status::Ok();
    if (!it->is_boolean()) return InvalidFormat(origin_ + ": '" + key + "' must be true or false");
    *out = it->get<bool>();
    return Status::Ok();
  }

  // An id or a list of ids (eos_token_id may be either).
  Status TokenIds(const char* key, std::vector<int32_t>* out) {
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) return Status::Ok();
    auto one = [&](const json& v) -> Status {
      if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > (1 << 30)) {
        return InvalidFormat(origin_ + ": '" + key + "' must hold non-negative token ids");
      }
      out->push_back(static_cast<int32_t>(v.get<int64_t>()));
      return Status::Ok();
    };
    if (it->is_array()) {
      if (it->size() > 64) return InvalidFormat(origin_ + ": '" + key + "' lists too many ids");
      for (const auto& v : *it) FAMQ_RETURN_IF_ERROR(one(v));
      return Status::Ok();
    }
    return one(*it);
  }

 private:
  const json& j_;
  const std::string& origin_;
};

Status ParseRopeScaling(const json& j, const std::string& origin, RopeScaling* out) {
  auto it = j.find("rope_scaling");
  if (it == j.end() || it->is_null()) return Status::Ok();
  if (!it->is_object()) return InvalidFormat(origin + ": 'rope_scaling' must be an object or null");
  std::string type;
  for (const char* k : {"rope_type", "type"}) {
    auto t = it->find(k);
    if (t != it->end() && t->is_string()) type = t->get<std::string>();
  }
  if (type == "default") return Status::Ok();
  if (type != "llama3") {
    return Unsupported(origin + ": rope_scaling type '" + type + "' (famq implements 'llama3' and none)");
  }
  out->llama3 = true;
  ConfigReader r(*it, origin);
  FAMQ_RETURN_IF_ERROR(r.Float("factor", 1.0, 1024.0, &out->factor));
  FAMQ_RETURN_IF_ERROR(r.Float("low_freq_factor", 1e-3, 1e3, &out->low_freq_factor));
  FAMQ_RETURN_IF_ERROR(r.Float("high_freq_factor", 1e-3, 1e3, &out->high_freq_factor));
  FAMQ_RETURN_IF_ERROR(r.Int("original_max_position_embeddings", 1, 1 << 24,
                             &out->original_max_position_embeddings, false));
  if (out->high_freq_factor <= out->low_freq_factor) {
    return InvalidFormat(origin + ": rope_scaling high_freq_factor must exceed low_freq_factor");
  }
  return Status::Ok();
}

}  // namespace

Result<ModelConfig> ParseModelConfig(std::string_view json_text, const std::string& origin) {
  json j;
  FAMQ_RETURN_IF_ERROR(ParseJson(json_text, origin, &j));
  if (!j.is_object()) return InvalidFormat(origin + ": not a JSON object");

  ModelConfig c;
  auto archs = j.find("architectures");
  if (archs == j.end() || !archs->is_array() || archs->empty() || !(*archs)[0].is_string()) {
    return InvalidFormat(origin + ": missing 'architectures' list");
  }
  const std::string arch = (*archs)[0].get<std::string>();
  if (arch == "Qwen3ForCausalLM") {
    c.arch = ModelArch::kQwen3;
    c.qk_norm = true;
  } else if (arch == "Qwen2ForCausalLM") {
    c.arch = ModelArch::kQwen2;
    c.attention_bias = true;
  } else if (arch == "LlamaForCausalLM") {
    c.arch = ModelArch::kLlama;
  } else {
    return Unsupported(origin + ": architecture '" + arch +
                       "' (famq runs Qwen3ForCausalLM, Qwen2ForCausalLM, LlamaForCausalLM)");
  }

  ConfigReader r(j, origin);
  constexpr int kMaxDim = 1 << 17;
  FAMQ_RETURN_IF_ERROR(r.Int("hidden_size", 1, kMaxDim, &c.hidden_size));
  FAMQ_RETURN_IF_ERROR(r.Int("num_hidden_layers", 1, 1024, &c.num_layers));
  FAMQ_RETURN_IF_ERROR(r.Int("num_attention_heads", 1, 1024, &c.num_heads));
  c.num_kv_heads = c.num_heads;
  FAMQ_RETURN_IF_ERROR(r.Int("num_key_value_heads", 1, 1024, &c.num_kv_heads, false));
  FAMQ_RETURN_IF_ERROR(r.Int("intermediate_size", 1, 1 << 20, &c.intermediate_size));
  FAMQ_RETURN_IF_ERROR(r.Int("vocab_size", 1, 1 << 23, &c.vocab_size));
  c.max_position_embeddings = 2048;
  FAMQ_RETURN_IF_ERROR(r.Int("max_position_embeddings", 1, 1 << 24, &c.max_position_embeddings, false));
  c.head_dim = c.hidden_size / c.num_heads;
  FAMQ_RETURN_IF_ERROR(r.Int("head_dim", 2, 1024, &c.head_dim, false));
  FAMQ_RETURN_IF_ERROR(r.Float("rope_theta", 1.0, 1e12, &c.rope_theta));
  FAMQ_RETURN_IF_ERROR(r.Float("rms_norm_eps", 0.0, 1.0, &c.rms_norm_eps));
  FAMQ_RETURN_IF_ERROR(r.Bool("tie_word_embeddings", &c.tie_word_embeddings));
  if (c.arch != ModelArch::kQwen2) FAMQ_RETURN_IF_ERROR(r.Bool("attention_bias", &c.attention_bias));
  FAMQ_RETURN_IF_ERROR(r.TokenIds("bos_token_id", &c.bos_token_ids));
  FAMQ_RETURN_IF_ERROR(r.TokenIds("eos_token_id", &c.eos_token_ids));
  FAMQ_RETURN_IF_ERROR(ParseRopeScaling(j, origin, &c.rope_scaling));
  if (auto d = j.find("torch_dtype"); d != j.end() && d->is_string()) c.torch_dtype = d->get<std::string>();

  if (auto act = j.find("hidden_act"); act != j.end() && !(act->is_string() && act->get<std::string>() == "silu")) {
    return Unsupported(origin + ": hidden_act " + JsonExcerpt(*act) + " (famq implements silu / SwiGLU)");
  }
  bool flag = false;
  FAMQ_RETURN_IF_ERROR(r.Bool("mlp_bias", &flag));
  if (flag) return Unsupported(origin + ": mlp_bias true");
  flag = false;
  FAMQ_RETURN_IF_ERROR(r.Bool("use_sliding_window", &flag));
  if (flag) return Unsupported(origin + ": use_sliding_window true (sliding-window attention)");

  if (c.num_heads % c.num_kv_heads != 0) {
    return InvalidFormat(origin + ": num_attention_heads " + std::to_string(c.num_heads) +
                         " is not a multiple of num_key_value_heads " + std::to_string(c.num_kv_heads));
  }
  if (c.head_dim < 2) {
    return InvalidFormat(origin + ": head_dim " + std::to_string(c.head_dim) + " (hidden_size " +
                         std::to_string(c.hidden_size) + " / num_attention_heads " + std::to_string(c.num_heads) +
                         " when config.json gives none) is too small");
  }
  if (c.head_dim % 2 != 0) return InvalidFormat(origin + ": head_dim " + std::to_string(c.head_dim) + " is odd (RoPE needs pairs)");
  if (int64_t{c.num_heads} * c.head_dim > kMaxDim) return InvalidFormat(origin + ": num_attention_heads * head_dim is absurd");
  for (int32_t id : c.bos_token_ids) {
    if (id >= c.vocab_size) return InvalidFormat(origin + ": bos_token_id " + std::to_string(id) + " >= vocab_size");
  }
  for (int32_t id : c.eos_token_ids) {
    if (id >= c.vocab_size) return InvalidFormat(origin + ": eos_token_id " + std::to_string(id) + " >= vocab_size");
  }
  return c;
}

Result<ModelConfig> LoadModelConfig(const std::string& model_dir) {
  const std::string path = JoinPath(model_dir, "config.json");
  FAMQ_ASSIGN_OR_RETURN(std::string text, ReadFile(path, 16u << 20));
  return ParseModelConfig(text, path);
}

}  // namespace famq
