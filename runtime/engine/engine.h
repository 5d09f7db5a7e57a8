// The fp32 reference engine: a decoder-only transformer (Qwen3 / Qwen2 /
// Llama) with RMSNorm, RoPE, grouped-query attention, optional QK-norm and
// qkv bias, SwiGLU and tied or untied embeddings. Linear layers run on
// XNNPACK f32 fully-connected operators over a pthreadpool; every buffer is
// allocated in Create(), so Forward() allocates nothing.
#pragma once

#include <pthreadpool.h>

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "core/status.h"
#include "engine/linear.h"
#include "model/checkpoint.h"

namespace famq {

struct EngineOptions {
  int num_threads = 0;      // 0: one per online CPU, at most 8
  int max_seq_len = 0;      // KV-cache capacity; 0: min(max_position_embeddings, 2048)
  int max_batch = 64;       // tokens per prefill chunk (and rows of all-logits output)
};

class Engine {
 public:
  static Result<std::unique_ptr<Engine>> Create(const Checkpoint& checkpoint, const EngineOptions& options);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Runs `tokens` at positions [pos, pos + n) and appends their keys/values
  // to the cache (entries at positions >= pos are overwritten).
  // logits == nullptr: no head is computed.
  // all_logits == false: logits[vocab] receives the last token's logits; any n.
  // all_logits == true: logits[n][vocab] receives every token's; n <= max_batch().
  Status Forward(std::span<const int32_t> tokens, int pos, float* logits, bool all_logits);

  // Like Forward with all_logits, and also the final-normalized hidden state
  // of every token (the model's last hidden state, as Hugging Face returns it
  // in hidden_states[-1]): logits[n][vocab] (nullptr: no head) and
  // hidden[n][hidden_size] (nullptr: none). n <= max_batch().
  Status ForwardHidden(std::span<const int32_t> tokens, int pos, float* logits, float* hidden);

  const ModelConfig& config() const { return config_; }
  int vocab_size() const { return config_.vocab_size; }
  int max_seq_len() const { return max_seq_; }
  int max_batch() const { return max_batch_; }
  int num_threads() const;

 private:
  Engine() = default;
  Status ForwardChunk(const int32_t* tokens, int n, int pos, float* logits, bool all_logits, float* hidden = nullptr);
  void Attention(int layer, int n, int pos);

  struct Layer {
    std::vector<float> input_norm, post_norm, q_norm, k_norm;
    Linear qkv, o_proj, gate_up, down;
  };

  ModelConfig config_;
  TensorView embed_;  // mapped; rows converted on lookup
  std::vector<float> final_norm_;
  std::vector<Layer> layers_;
  Linear lm_head_;
  pthreadpool_t pool_ = nullptr;
  int max_seq_ = 0;
  int max_batch_ = 0;

  // RoPE tables [max_seq][head_dim / 2].
  std::vector<float> rope_cos_, rope_sin_;
  // KV cache: [layer][pos][kv_head][head_dim].
  std::vector<float> k_cache_, v_cache_;
  // Activations for one chunk of max_batch tokens.
  std::vector<float> x_;       // [batch][hidden] residual stream
  std::vector<float> xn_;      // [batch][hidden] normalized
  std::vector<float> qkv_;     // [batch][q_dim + 2 kv_dim]
  std::vector<float> attn_;    // [batch][q_dim]
  std::vector<float> tmp_;     // [batch][hidden]
  std::vector<float> gu_;      // [batch][2 intermediate]
  std::vector<float> act_;     // [batch][intermediate]
  std::vector<float> scores_;  // [num_heads][max_seq]
};

}  // namespace famq
