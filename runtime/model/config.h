// The architecture hyper-parameters of a Hugging Face causal LM, read from
// config.json and checked for consistency and sane bounds.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace famq {

enum class ModelArch { kQwen3, kQwen2, kLlama };
const char* ModelArchName(ModelArch arch);  // "Qwen3ForCausalLM", ...

// Llama-3.x "rope_scaling": {"rope_type": "llama3", ...}; absent means none.
struct RopeScaling {
  bool llama3 = false;
  float factor = 1.0f;
  float low_freq_factor = 1.0f;
  float high_freq_factor = 4.0f;
  int original_max_position_embeddings = 8192;
};

struct ModelConfig {
  ModelArch arch = ModelArch::kQwen3;
  int hidden_size = 0;
  int num_layers = 0;
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int intermediate_size = 0;
  int vocab_size = 0;
  int max_position_embeddings = 0;
  float rope_theta = 10000.0f;
  float rms_norm_eps = 1e-6f;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // bias on q/k/v projections (Qwen2: always)
  bool qk_norm = false;         // per-head RMSNorm on q and k (Qwen3)
  RopeScaling rope_scaling;
  std::vector<int32_t> bos_token_ids;
  std::vector<int32_t> eos_token_ids;
  std::string torch_dtype;

  int q_dim() const { return num_heads * head_dim; }
  int kv_dim() const { return num_kv_heads * head_dim; }
  // Parameter count of the checkpoint (tied embeddings counted once).
  int64_t NumParameters() const;
};

// Parses config.json text; `origin` names the file in messages.
Result<ModelConfig> ParseModelConfig(std::string_view json_text, const std::string& origin);
// Hex SHA-256 of config.json text re-serialized compactly by nlohmann::json
// (keys sorted, no whitespace): the config identity bundles and quantized
// models record. "" if the text is not JSON.
std::string ConfigSha256(std::string_view json_text);

// Reads DIR/config.json.
Result<ModelConfig> LoadModelConfig(const std::string& model_dir);

}  // namespace famq
