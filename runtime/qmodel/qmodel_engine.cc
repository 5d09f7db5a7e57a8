#include "qmodel/qmodel_engine.h"

#include <pthreadpool.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <span>

#include "linear/weight_only_linear.h"

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

namespace {

// A pthreadpool for packing, destroyed with the scope.
struct PackPool {
  explicit PackPool(int threads) : pool(threads > 1 ? pthreadpool_create(static_cast<size_t>(threads)) : nullptr) {}
  ~PackPool() {
    if (pool != nullptr) pthreadpool_destroy(pool);
  }
  PackPool(const PackPool&) = delete;
  PackPool& operator=(const PackPool&) = delete;
  pthreadpool_t pool;
};

// A weight-only linear packed from the record in place (every stored width:
// nibbles, bytes and 2/3-bit streams; no canonical copy in between).
Result<WeightOnlyLinear> PackWeightOnly(const QModel& q, int index, std::span<const float> bias, int max_batch, Isa isa,
                                        const std::string& name, pthreadpool_t pool,
                                        std::shared_ptr<HugePageArena> arena) {
  FAMQ_ASSIGN_OR_RETURN(const QMatrixView view, q.MatrixView(index));  // verifies the record before its fields are read
  return WeightOnlyLinear::Create(view, bias, max_batch, isa, name, pool, std::move(arena));
}

// Every weight-only linear verified, packed and (optionally) released, one
// record per work item on the pack pool's threads: digests and packing of
// different records run side by side.
struct PackLinearsTask {
  const QModel* q;
  QModel* release;
  int max_batch;
  Isa isa;
  std::shared_ptr<HugePageArena> arena;  // every packed linear's weights
  std::vector<std::optional<WeightOnlyLinear>>* out;
  std::vector<std::vector<float>>* multipliers;
  std::vector<Status>* status;
};

void RunPackLinear(void* context, size_t index) {
  const auto* t = static_cast<const PackLinearsTask*>(context);
  const int i = static_cast<int>(index);
  Status& status = (*t->status)[index];
  status = t->q->VerifyLinear(i);  // before any field of the record is read
  if (!status.ok()) return;
  const fb::QuantLinear& ql = *t->q->root().linears()->Get(static_cast<uint32_t>(i));
  const std::vector<float> bias = ToVector(ql.bias());
  (*t->multipliers)[index] = ToVector(ql.input_multiplier());
  auto lin = PackWeightOnly(*t->q, i, bias, t->max_batch, t->isa, t->q->origin() + ": " + QLinearName(i / 4, i % 4),
                            nullptr, t->arena);
  if (!lin.ok()) {
    status = lin.status();
    return;
  }
  (*t->out)[index].emplace(std::move(*lin));
  if (t->release != nullptr) t->release->ReleaseLinear(i);
}

Result<std::unique_ptr<Engine>> BuildQuantizedEngine(const QModel& q, QModel* release, const EngineOptions& options,
                                                     Isa isa) {
  const ModelConfig& c = q.config();
  FAMQ_ASSIGN_OR_RETURN(const int max_batch, Engine::ResolveMaxBatch(c, options));
  FAMQ_ASSIGN_OR_RETURN(const int threads, Engine::ResolveNumThreads(options));
  PackPool pack(threads);
  const fb::QModel& r = q.root();
  const bool w8a8 = r.scheme() == fb::QScheme::W8A8Static;
  const auto arena = std::make_shared<HugePageArena>();
  EngineWeights w;
  FAMQ_ASSIGN_OR_RETURN(w.final_norm, TensorF32(q, "model.norm.weight"));
  const size_t linear_count = static_cast<size_t>(c.num_layers) * kLinearSlots;
  std::vector<std::optional<WeightOnlyLinear>> packed(w8a8 ? 0 : linear_count);
  std::vector<std::vector<float>> multipliers(w8a8 ? 0 : linear_count);
  if (!w8a8) {
    std::vector<Status> status(linear_count);
    PackLinearsTask task{&q, release, max_batch, isa, arena, &packed, &multipliers, &status};
    if (pack.pool != nullptr) {
      pthreadpool_parallelize_1d(pack.pool, RunPackLinear, &task, linear_count, PTHREADPOOL_FLAG_YIELD_WORKERS);
    } else {
      for (size_t i = 0; i < linear_count; ++i) RunPackLinear(&task, i);
    }
    for (const Status& st : status) FAMQ_RETURN_IF_ERROR(st);
  }
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
      if (!w8a8) {  // packed above
        l.linears[s] = LayerLinear(std::move(*packed[static_cast<size_t>(index)]),
                                   std::move(multipliers[static_cast<size_t>(index)]));
        continue;
      }
      const fb::QuantLinear& ql = *r.linears()->Get(static_cast<uint32_t>(index));
      const std::string name = q.origin() + ": " + QLinearName(i, s);
      FAMQ_ASSIGN_OR_RETURN(const QMatrix m, q.Matrix(index));  // verifies the record before its fields are read
      const std::vector<float> bias = ToVector(ql.bias());
      const ActQuantParams in{ql.act_in()->scale(), ql.act_in()->zero_point()};
      const ActQuantParams out{ql.act_out()->scale(), ql.act_out()->zero_point()};
      FAMQ_ASSIGN_OR_RETURN(StaticInt8Linear lin, StaticInt8Linear::Create(m, bias, in, out, max_batch, name));
      l.linears[s] = LayerLinear(std::move(lin), ToVector(ql.input_multiplier()));
      if (release != nullptr) release->ReleaseLinear(index);
    }
    w.layers.push_back(std::move(l));
  }
  // The head: quantized (untied record, or tied to the quantized embedding)
  // on the weight-only kernels whatever the blocks' scheme; else fp32.
  auto head = q.Tensor("lm_head.weight");
  // Absent: tied to the embedding. Present but failing its checksum: refused, never replaced.
  if (!head.ok() && head.status().code() != StatusCode::kNotFound) return head.status();
  const bool quantized_head = q.lm_head_record() != nullptr || (!head.ok() && q.embedding_record() != nullptr);
  // A tied quantized head serves the embedding lookup from its packed weights:
  // the embedding is then held once, in the kernels' layout.
  const bool tied_quantized = quantized_head && q.lm_head_record() == nullptr;
  if (quantized_head) {
    // A quantized embedding or head (4, 6 or 8 bits, checked on open) is
    // always packed in place (6 bits decoded from its bit stream block by block).
    FAMQ_ASSIGN_OR_RETURN(const QMatrixView view, q.HeadView());
    FAMQ_ASSIGN_OR_RETURN(WeightOnlyLinear lin,
                          WeightOnlyLinear::Create(view, {}, max_batch, isa, q.origin() + ": lm_head", pack.pool, arena));
    if (tied_quantized) w.embed.packed = lin.packed_rows();  // the buffer stays put when lin moves
    w.lm_head = LayerLinear(std::move(lin), {});
    if (release != nullptr) {
      if (tied_quantized) release->ReleaseEmbedding();
      else release->ReleaseLmHead();
    }
  }
  if (!tied_quantized) {
    if (const fb::QuantLinear* e = q.embedding_record()) {
      FAMQ_RETURN_IF_ERROR(q.VerifyEmbedding());  // before its bytes are read
      PackedQuantRows& p = w.embed.quantized;
      p.bits = e->bits();
      p.rows = static_cast<int>(e->rows());
      p.cols = static_cast<int>(e->cols());
      p.group_size = static_cast<int>(e->group_size());
      p.codes = e->codes()->data();
      p.scales = e->scales() != nullptr ? e->scales()->data() : nullptr;
      p.scales_f16 = e->scales_f16() != nullptr ? e->scales_f16()->data() : nullptr;
      p.zeros = e->zeros() != nullptr ? e->zeros()->data() : nullptr;  // absent: symmetric
    } else {
      FAMQ_ASSIGN_OR_RETURN(w.embed.fp, q.Tensor("model.embed_tokens.weight"));
    }
  }
  if (!quantized_head) {
    const TensorView head_view = head.ok() ? *head : w.embed.fp;
    FAMQ_ASSIGN_OR_RETURN(Linear lm_head, Linear::Create({&head_view}, {}, "lm_head"));
    w.lm_head = LayerLinear(std::move(lm_head));
  }
  return Engine::Create(c, std::move(w), options);
}

}  // namespace

Result<std::unique_ptr<Engine>> CreateQuantizedEngine(const QModel& q, const EngineOptions& options, Isa isa) {
  return BuildQuantizedEngine(q, nullptr, options, isa);
}

Result<std::unique_ptr<Engine>> CreateQuantizedEngineReleasing(QModel& q, const EngineOptions& options, Isa isa) {
  return BuildQuantizedEngine(q, &q, options, isa);
}

Result<std::unique_ptr<Engine>> RunnableModel::CreateEngine(const EngineOptions& options) const {
  if (qmodel != nullptr) {
    FAMQ_ASSIGN_OR_RETURN(const Isa isa, ActiveIsa());
    return CreateQuantizedEngineReleasing(*qmodel, options, isa);
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
