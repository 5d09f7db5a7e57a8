#include "qmodel/qmodel_engine.h"

#include <filesystem>

#include "kernels/weight_only_linear.h"

namespace famq {
namespace {

Result<std::vector<float>> TensorF32(const QModel& q, const std::string& name) {
  FAMQ_ASSIGN_OR_RETURN(TensorView t, q.Tensor(name));
  std::vector<float> v(static_cast<size_t>(t.numel()));
  ConvertToF32(t.dtype, t.data, v.size(), v.data());
  return v;
}

template <typename T>
std::vector<T> ToVector(const flatbuffers::Vector<T>* v) {
  return v == nullptr ? std::vector<T>() : std::vector<T>(v->begin(), v->end());
}

}  // namespace

Result<std::unique_ptr<Engine>> CreateQuantizedEngine(const QModel& q, const EngineOptions& options, Isa isa) {
  const ModelConfig& c = q.config();
  FAMQ_ASSIGN_OR_RETURN(const int max_batch, Engine::ResolveMaxBatch(c, options));
  const fb::QModel& r = q.root();
  const bool w8a8 = r.scheme() == fb::QScheme::W8A8Static;
  EngineWeights w;
  if (const fb::QuantLinear* e = q.embedding_record()) {
    FAMQ_RETURN_IF_ERROR(q.VerifyEmbedding());  // before its bytes are read
    PackedQuantRows& p = w.embed.quantized;
    p.bits = e->bits();
    p.rows = static_cast<int>(e->rows());
    p.cols = static_cast<int>(e->cols());
    p.group_size = static_cast<int>(e->group_size());
    p.codes = e->codes()->data();
    p.scales = e->scales()->data();
    p.zeros = e->zeros()->data();
  } else {
    FAMQ_ASSIGN_OR_RETURN(w.embed.fp, q.Tensor("model.embed_tokens.weight"));
  }
  FAMQ_ASSIGN_OR_RETURN(w.final_norm, TensorF32(q, "model.norm.weight"));
  for (int i = 0; i < c.num_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    EngineLayer l;
    FAMQ_ASSIGN_OR_RETURN(l.input_norm, TensorF32(q, p + "input_layernorm.weight"));
    FAMQ_ASSIGN_OR_RETURN(l.post_norm, TensorF32(q, p + "post_attention_layernorm.weight"));
    if (c.qk_norm) {
      FAMQ_ASSIGN_OR_RETURN(l.q_norm, TensorF32(q, p + "self_attn.q_norm.weight"));
      FAMQ_ASSIGN_OR_RETURN(l.k_norm, TensorF32(q, p + "self_attn.k_norm.weight"));
    }
    for (int s = 0; s < kLinearSlots; ++s) {
      const int index = 4 * i + s;
      const fb::QuantLinear& ql = *r.linears()->Get(static_cast<uint32_t>(index));
      const std::string name = q.origin() + ": " + QLinearName(i, s);
      FAMQ_ASSIGN_OR_RETURN(const QMatrix m, q.Matrix(index));  // verifies the record before its fields are read
      const std::vector<float> bias = ToVector(ql.bias());
      std::vector<float> mult = ToVector(ql.input_multiplier());
      if (w8a8) {
        const ActQuantParams in{ql.act_in()->scale(), ql.act_in()->zero_point()};
        const ActQuantParams out{ql.act_out()->scale(), ql.act_out()->zero_point()};
        FAMQ_ASSIGN_OR_RETURN(StaticInt8Linear lin, StaticInt8Linear::Create(m, bias, in, out, max_batch, name));
        l.linears[s] = LayerLinear(std::move(lin), std::move(mult));
      } else {
        FAMQ_ASSIGN_OR_RETURN(WeightOnlyLinear lin, WeightOnlyLinear::Create(m, bias, max_batch, isa, name));
        l.linears[s] = LayerLinear(std::move(lin), std::move(mult));
      }
    }
    w.layers.push_back(std::move(l));
  }
  // The head: quantized (untied record, or tied to the quantized embedding)
  // on the weight-only kernels whatever the blocks' scheme; else fp32.
  auto head = q.Tensor("lm_head.weight");
  // Absent: tied to the embedding. Present but failing its checksum: refused, never replaced.
  if (!head.ok() && head.status().code() != StatusCode::kNotFound) return head.status();
  if (q.lm_head_record() != nullptr || (!head.ok() && w.embed.is_quantized())) {
    FAMQ_ASSIGN_OR_RETURN(const QMatrix m, q.HeadMatrix());
    FAMQ_ASSIGN_OR_RETURN(WeightOnlyLinear lin, WeightOnlyLinear::Create(m, {}, max_batch, isa, q.origin() + ": lm_head"));
    w.lm_head = LayerLinear(std::move(lin), {});
  } else {
    const TensorView head_view = head.ok() ? *head : w.embed.fp;
    FAMQ_ASSIGN_OR_RETURN(Linear lm_head, Linear::Create({&head_view}, {}, "lm_head"));
    w.lm_head = LayerLinear(std::move(lm_head));
  }
  return Engine::Create(c, std::move(w), options);
}

Result<std::unique_ptr<Engine>> RunnableModel::CreateEngine(const EngineOptions& options) const {
  if (qmodel != nullptr) {
    FAMQ_ASSIGN_OR_RETURN(const Isa isa, ActiveIsa());
    return CreateQuantizedEngine(*qmodel, options, isa);
  }
  return Engine::Create(*checkpoint, options);
}

std::string RunnableModel::Describe() const {
  const std::string base = std::filesystem::path(origin).lexically_normal().filename().string();
  if (qmodel == nullptr) return base + " (fp32)";
  const fb::QModel& r = qmodel->root();
  std::string s = base + " (W" + std::to_string(r.wbits());
  if (r.scheme() == fb::QScheme::W8A8Static) {
    s += "A8 static";
  } else {
    s += r.group_size() == 0 ? " per-channel" : " g" + std::to_string(r.group_size());
  }
  if (r.provenance() != nullptr) s += std::string(" ") + fb::EnumNameQMethod(r.provenance()->method());
  return s + ")";
}

Result<RunnableModel> OpenRunnableModel(const std::string& model_dir, const std::string& qmodel_path) {
  if (model_dir.empty() == qmodel_path.empty()) {
    return InvalidArgument("give exactly one of --model DIR and --qmodel FILE");
  }
  RunnableModel m;
  if (!model_dir.empty()) {
    FAMQ_ASSIGN_OR_RETURN(ModelDir d, OpenModelDir(model_dir));
    m.origin = model_dir;
    m.config = d.checkpoint.config();
    static_cast<ModelText&>(m) = std::move(static_cast<ModelText&>(d));
    m.checkpoint = std::move(d.checkpoint);
    m.tokenizer_sha256 = m.tokenizer.ContentHash();
    return m;
  }
  FAMQ_ASSIGN_OR_RETURN(QModel q, QModel::Open(qmodel_path));
  m.origin = qmodel_path;
  m.qmodel = std::make_unique<QModel>(std::move(q));
  const fb::QModel& r = m.qmodel->root();
  m.config = m.qmodel->config();
  FAMQ_ASSIGN_OR_RETURN(m.tokenizer, Tokenizer::LoadJson(r.tokenizer_json()->string_view(), qmodel_path + " (tokenizer.json)"));
  m.tokenizer_sha256 = m.tokenizer.ContentHash();
  if (m.tokenizer_sha256 != r.tokenizer_sha256()->str()) {
    return InvalidFormat(qmodel_path + ": the embedded tokenizer does not hash to the family id the file records");
  }
  auto str = [](const flatbuffers::String* s) { return s == nullptr ? std::string() : s->str(); };
  FAMQ_RETURN_IF_ERROR(ResolveSpecialTokens(m.config, str(r.tokenizer_config_json()), str(r.generation_config_json()),
                                            qmodel_path, &m));
  return m;
}

}  // namespace famq
