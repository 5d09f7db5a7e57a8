// A Hugging Face checkpoint directory: config.json plus model.safetensors or
// shards listed in model.safetensors.index.json, mapped read-only. Open()
// checks every tensor the architecture needs (presence, dtype, shape against
// the config, byte range inside its file) before anything uses it.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "model/config.h"
#include "model/safetensors.h"

namespace famq {

struct LayerTensors {
  TensorView input_norm;                 // [hidden]
  TensorView q_proj, k_proj, v_proj;     // [q_dim|kv_dim, hidden]
  std::optional<TensorView> q_bias, k_bias, v_bias;  // [q_dim|kv_dim] (attention_bias)
  std::optional<TensorView> q_norm, k_norm;          // [head_dim] (qk_norm)
  TensorView o_proj;                     // [hidden, q_dim]
  TensorView post_attention_norm;        // [hidden]
  TensorView gate_proj, up_proj;         // [intermediate, hidden]
  TensorView down_proj;                  // [hidden, intermediate]
};

class Checkpoint {
 public:
  static Result<Checkpoint> Open(const std::string& model_dir);

  const ModelConfig& config() const { return config_; }
  const std::string& dir() const { return dir_; }
  const TensorView& embed_tokens() const { return embed_; }        // [vocab, hidden]
  const TensorView& final_norm() const { return final_norm_; }     // [hidden]
  const TensorView& lm_head() const { return tied() ? embed_ : *lm_head_; }  // [vocab, hidden]
  bool tied() const { return !lm_head_.has_value(); }
  const std::vector<LayerTensors>& layers() const { return layers_; }
  const std::vector<std::string>& files() const { return file_paths_; }
  // The dtype shared by the weights, or "mixed".
  std::string WeightDTypeName() const;
  // Drops the resident pages of layer l's tensors from this process (the
  // mapping is private and read-only: a later read faults them back in from
  // the file), so that a pass over the model block by block holds about one
  // block's weights. Views stay valid. l < layers().size(), unchecked.
  void ReleaseLayerPages(size_t l) const;
  size_t num_tensors() const { return num_tensors_; }

 private:
  std::string dir_;
  ModelConfig config_;
  std::vector<SafetensorsFile> files_;
  std::vector<std::string> file_paths_;
  TensorView embed_, final_norm_;
  std::optional<TensorView> lm_head_;
  std::vector<LayerTensors> layers_;
  size_t num_tensors_ = 0;
};

}  // namespace famq
