#include "model/checkpoint.h"

#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "core/file.h"
#include "core/json_excerpt.h"
#include "core/json_parse.h"

namespace famq {
namespace {

using TensorTable = std::map<std::string, const TensorView*>;

// Looks a tensor up and checks its shape against what config.json implies.
class TensorPicker {
 public:
  TensorPicker(const TensorTable& table, std::string files) : table_(table), files_(std::move(files)) {}

  Result<TensorView> Get(const std::string& name, std::vector<int64_t> shape) {
    auto it = table_.find(name);
    if (it == table_.end()) return NotFound(files_ + ": missing tensor '" + name + "'");
    used_.insert(name);
    const TensorView& t = *it->second;
    if (t.shape != shape) {
      TensorView want;
      want.shape = shape;
      return InvalidFormat(t.file + ": tensor '" + name + "' has shape " + t.ShapeString() + ", config.json implies " +
                           want.ShapeString());
    }
    return t;
  }

  Result<std::optional<TensorView>> GetIf(bool wanted, const std::string& name, std::vector<int64_t> shape) {
    if (!wanted) return std::optional<TensorView>();
    FAMQ_ASSIGN_OR_RETURN(TensorView t, Get(name, std::move(shape)));
    return std::optional<TensorView>(std::move(t));
  }

  bool Has(const std::string& name) const { return table_.count(name) != 0; }
  void MarkUsed(const std::string& name) { used_.insert(name); }
  bool WasUsed(const std::string& name) const { return used_.count(name) != 0; }

 private:
  const TensorTable& table_;
  std::string files_;
  std::set<std::string> used_;
};

// Shard file names come from the index: refuse anything that leaves the directory.
bool IsPlainFileName(const std::string& name) {
  return !name.empty() && name.find('/') == std::string::npos && name != "." && name != "..";
}

Result<std::vector<std::string>> ShardNames(const std::string& dir) {
  const std::string single = JoinPath(dir, "model.safetensors");
  const std::string index_path = JoinPath(dir, "model.safetensors.index.json");
  if (FileExists(single)) return std::vector<std::string>{"model.safetensors"};
  if (!FileExists(index_path)) {
    return NotFound(dir + ": neither model.safetensors nor model.safetensors.index.json");
  }
  FAMQ_ASSIGN_OR_RETURN(std::string text, ReadFile(index_path, 64u << 20));
  nlohmann::json j;
  FAMQ_RETURN_IF_ERROR(ParseJson(text, index_path, &j));
  if (!j.is_object()) return InvalidFormat(index_path + ": not a JSON object");
  auto wm = j.find("weight_map");
  if (wm == j.end() || !wm->is_object()) return InvalidFormat(index_path + ": missing object 'weight_map'");
  std::set<std::string> names;
  for (auto it = wm->begin(); it != wm->end(); ++it) {
    if (!it->is_string() || !IsPlainFileName(it->get<std::string>())) {
      return InvalidFormat(index_path + ": weight_map: tensor '" + it.key().substr(0, 100) + "' maps to " + JsonExcerpt(*it) +
                           ", not a plain file name in the model directory");
    }
    names.insert(it->get<std::string>());
  }
  if (names.empty()) return InvalidFormat(index_path + ": 'weight_map' is empty");
  if (names.size() > 4096) return InvalidFormat(index_path + ": absurd number of shards");
  return std::vector<std::string>(names.begin(), names.end());
}

}  // namespace

void Checkpoint::ReleaseLayerPages(size_t l) const {
  const LayerTensors& t = layers_[l];
  for (const TensorView* v : {&t.input_norm, &t.q_proj, &t.k_proj, &t.v_proj, &t.o_proj, &t.post_attention_norm,
                              &t.gate_proj, &t.up_proj, &t.down_proj}) {
    ReleasePages(v->data, v->num_bytes);
  }
  for (const auto* v : {&t.q_bias, &t.k_bias, &t.v_bias, &t.q_norm, &t.k_norm}) {
    if (v->has_value()) ReleasePages((*v)->data, (*v)->num_bytes);
  }
}

std::string Checkpoint::WeightDTypeName() const {
  std::set<DType> seen;
  seen.insert(embed_.dtype);
  for (const auto& l : layers_) seen.insert(l.q_proj.dtype);
  return seen.size() == 1 ? DTypeName(*seen.begin()) : "mixed";
}

Result<Checkpoint> Checkpoint::Open(const std::string& model_dir) {
  Checkpoint ck;
  ck.dir_ = model_dir;
  FAMQ_ASSIGN_OR_RETURN(ck.config_, LoadModelConfig(model_dir));
  FAMQ_ASSIGN_OR_RETURN(std::vector<std::string> shards, ShardNames(model_dir));

  TensorTable table;
  std::string file_list;
  for (const std::string& name : shards) {
    FAMQ_ASSIGN_OR_RETURN(SafetensorsFile f, SafetensorsFile::Open(JoinPath(model_dir, name)));
    ck.file_paths_.push_back(f.path());
    file_list += (file_list.empty() ? "" : ", ") + f.path();
    ck.files_.push_back(std::move(f));
  }
  for (const SafetensorsFile& f : ck.files_) {
    for (const auto& [name, view] : f.tensors()) {
      if (!table.emplace(name, &view).second) {
        return InvalidFormat(f.path() + ": tensor '" + name + "' also appears in another shard");
      }
    }
  }
  ck.num_tensors_ = table.size();

  const ModelConfig& c = ck.config_;
  const int64_t h = c.hidden_size, q = c.q_dim(), kv = c.kv_dim(), ff = c.intermediate_size;
  TensorPicker pick(table, file_list);
  FAMQ_ASSIGN_OR_RETURN(ck.embed_, pick.Get("model.embed_tokens.weight", {c.vocab_size, h}));
  FAMQ_ASSIGN_OR_RETURN(ck.final_norm_, pick.Get("model.norm.weight", {h}));
  if (!c.tie_word_embeddings) {
    FAMQ_ASSIGN_OR_RETURN(ck.lm_head_, pick.GetIf(true, "lm_head.weight", {c.vocab_size, h}));
  } else if (pick.Has("lm_head.weight")) {
    pick.MarkUsed("lm_head.weight");  // tied checkpoints may carry a copy; the embedding wins, as in HF
  }
  for (int i = 0; i < c.num_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    LayerTensors l;
    FAMQ_ASSIGN_OR_RETURN(l.input_norm, pick.Get(p + "input_layernorm.weight", {h}));
    FAMQ_ASSIGN_OR_RETURN(l.q_proj, pick.Get(p + "self_attn.q_proj.weight", {q, h}));
    FAMQ_ASSIGN_OR_RETURN(l.k_proj, pick.Get(p + "self_attn.k_proj.weight", {kv, h}));
    FAMQ_ASSIGN_OR_RETURN(l.v_proj, pick.Get(p + "self_attn.v_proj.weight", {kv, h}));
    FAMQ_ASSIGN_OR_RETURN(l.q_bias, pick.GetIf(c.attention_bias, p + "self_attn.q_proj.bias", {q}));
    FAMQ_ASSIGN_OR_RETURN(l.k_bias, pick.GetIf(c.attention_bias, p + "self_attn.k_proj.bias", {kv}));
    FAMQ_ASSIGN_OR_RETURN(l.v_bias, pick.GetIf(c.attention_bias, p + "self_attn.v_proj.bias", {kv}));
    FAMQ_ASSIGN_OR_RETURN(l.q_norm, pick.GetIf(c.qk_norm, p + "self_attn.q_norm.weight", {c.head_dim}));
    FAMQ_ASSIGN_OR_RETURN(l.k_norm, pick.GetIf(c.qk_norm, p + "self_attn.k_norm.weight", {c.head_dim}));
    FAMQ_ASSIGN_OR_RETURN(l.o_proj, pick.Get(p + "self_attn.o_proj.weight", {h, q}));
    FAMQ_ASSIGN_OR_RETURN(l.post_attention_norm, pick.Get(p + "post_attention_layernorm.weight", {h}));
    FAMQ_ASSIGN_OR_RETURN(l.gate_proj, pick.Get(p + "mlp.gate_proj.weight", {ff, h}));
    FAMQ_ASSIGN_OR_RETURN(l.up_proj, pick.Get(p + "mlp.up_proj.weight", {ff, h}));
    FAMQ_ASSIGN_OR_RETURN(l.down_proj, pick.Get(p + "mlp.down_proj.weight", {h, ff}));
    ck.layers_.push_back(std::move(l));
  }
  // A parameter the architecture does not read means config.json and the
  // weights disagree (e.g. more layers in the file than num_hidden_layers).
  for (const auto& [name, view] : table) {
    const bool parameter = name.ends_with(".weight") || name.ends_with(".bias");
    if (parameter && !pick.WasUsed(name)) {
      return InvalidFormat(view->file + ": tensor '" + name + "' is not used by " + ModelArchName(c.arch) +
                           " with this config.json (do the config and the weights match?)");
    }
  }
  return ck;
}

}  // namespace famq
