#include "finalize/finalize.h"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <memory>

#include "core/file.h"
#include "engine/engine.h"
#include "kernels/weight_only_linear.h"
#include "quant/awq.h"
#include "quant/gptq.h"
#include "quant/input_stats.h"
#include "quant/quant_spec.h"
#include "quant/rtn.h"
#include "quant/smoothquant.h"

namespace famq {

const char* QuantMethodName(QuantMethod m) {
  switch (m) {
    case QuantMethod::kRtn: return "rtn";
    case QuantMethod::kGptq: return "gptq";
    case QuantMethod::kAwq: return "awq";
    case QuantMethod::kSmoothQuant: return "smoothquant";
  }
  return "?";
}

Result<QuantMethod> ParseQuantMethod(const std::string& name) {
  for (QuantMethod m : {QuantMethod::kRtn, QuantMethod::kGptq, QuantMethod::kAwq, QuantMethod::kSmoothQuant}) {
    if (name == QuantMethodName(m)) return m;
  }
  return InvalidArgument("unknown method '" + name + "' (rtn, gptq, awq, smoothquant)");
}

uint64_t PeakRssBytes() {
  struct rusage u {};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<uint64_t>(u.ru_maxrss) * 1024u;  // Linux reports KiB
}

namespace {

bool W8A8(const FinalizeOptions& o) { return o.abits == 8; }

quant::QuantSpec SpecFor(const FinalizeOptions& o, int cols) {
  if (W8A8(o)) return quant::QuantSpec{8, cols, true};
  return quant::QuantSpec{o.wbits, o.group_size == 0 ? cols : o.group_size, o.symmetric};
}

}  // namespace

Status ValidateFinalizeOptions(const FinalizeOptions& o, const ModelConfig& c) {
  if (o.wbits != 4 && o.wbits != 8) return InvalidArgument("wbits " + std::to_string(o.wbits) + " is not supported (4 or 8)");
  if (o.abits != 0 && o.abits != 8) return InvalidArgument("abits " + std::to_string(o.abits) + " is not supported (8, or none)");
  if (o.abits == 8 && (o.wbits != 8 || o.group_size != 0)) {
    return InvalidArgument("--abits 8 needs a W8 per-channel weight scheme (--wbits 8 --group channel): "
                           "XNNPACK's qc8 kernels take one weight scale per output channel");
  }
  if (o.method == QuantMethod::kSmoothQuant && o.abits != 8) {
    return InvalidArgument("smoothquant feeds static W8A8: it needs --wbits 8 --abits 8 --group channel");
  }
  if (o.method == QuantMethod::kAwq && o.abits == 8) {
    return Unsupported("awq is a weight-only method here: use smoothquant (or rtn / gptq) for W8A8");
  }
  if (!(o.percentile > 50.0 && o.percentile <= 100.0)) {
    return InvalidArgument("percentile " + std::to_string(o.percentile) + " must be in (50, 100]");
  }
  if (!(o.smooth_alpha >= 0.0f && o.smooth_alpha <= 1.0f)) {
    return InvalidArgument("SmoothQuant alpha " + std::to_string(o.smooth_alpha) + " must be in [0, 1]");
  }
  if (!(o.gptq_damp > 0.0 && o.gptq_damp < 1.0)) return InvalidArgument("GPTQ damping must be in (0, 1)");
  if (o.gptq_block <= 0 || o.awq_max_tokens <= 0) return InvalidArgument("GPTQ block and AWQ tokens must be positive");
  if (o.head_bits != 4 && o.head_bits != 8 && o.head_bits != 16) {
    return InvalidArgument("head bits " + std::to_string(o.head_bits) + " is not supported (4, 8, or 16: kept as stored)");
  }
  if (o.head_bits != 16) {
    FAMQ_RETURN_IF_ERROR(quant::ValidateQuantSpec(quant::QuantSpec{o.head_bits, kHeadGroupSize, true}, c.vocab_size,
                                                  c.hidden_size, "the embedding / head (--head-bits)"));
  }
  for (int s = 0; s < kLinearSlots; ++s) {
    const auto [rows, cols] = LinearSlotShape(c, static_cast<LinearSlot>(s));
    if (W8A8(o)) continue;  // XNNPACK takes any shape
    FAMQ_RETURN_IF_ERROR(
        quant::ValidateQuantSpec(SpecFor(o, cols), rows, cols, LinearSlotName(static_cast<LinearSlot>(s))));
  }
  return Status::Ok();
}

namespace {

// What one linear of the current block accumulates.
struct SlotStats {
  int rows = 0, cols = 0;
  std::vector<double> hessian;      // GPTQ: sum_t w_t x_t x_t^T, [cols][cols]
  std::vector<float> in_absmax;     // SmoothQuant / ranges: max |x_j| over counted tokens
  float out_absmax = 0.0f;          // W8A8: max |y| over counted tokens
  std::vector<float> awq_x, awq_w;  // AWQ: a deterministic subsample of counted tokens and their weights
  std::vector<float> multiplier;    // 1/s applied to the input (AWQ, SmoothQuant), empty: none
  std::unique_ptr<quant::ActHistogram> hist_in, hist_out;
  std::vector<float> scratch;       // one multiplied input row
};

class StatsObserver : public LinearObserver {
 public:
  enum class Pass { kStatistics, kRanges };
  StatsObserver(const FinalizeOptions& o, std::vector<SlotStats>* slots, int awq_stride)
      : o_(o), slots_(slots), awq_stride_(awq_stride) {}

  void BeginSample(const float* token_weights, Pass pass) {
    tw_ = token_weights;
    pass_ = pass;
  }

  Status OnLinear(int, LinearSlot slot, const float* x, const float* y, int n) override {
    SlotStats& s = (*slots_)[static_cast<size_t>(slot)];
    const size_t K = static_cast<size_t>(s.cols), N = static_cast<size_t>(s.rows);
    if (pass_ == Pass::kRanges) {
      for (int t = 0; t < n; ++t) {
        if (!(tw_[t] > 0.0f)) continue;
        const float* row = x + static_cast<size_t>(t) * K;
        if (!s.multiplier.empty()) {
          for (size_t j = 0; j < K; ++j) s.scratch[j] = row[j] * s.multiplier[j];
          row = s.scratch.data();
        }
        FAMQ_RETURN_IF_ERROR(s.hist_in->Add(row, K, tw_[t]));
        FAMQ_RETURN_IF_ERROR(s.hist_out->Add(y + static_cast<size_t>(t) * N, N, tw_[t]));
      }
      return Status::Ok();
    }
    if (!s.hessian.empty()) {
      FAMQ_RETURN_IF_ERROR(quant::AccumulateHessian(x, tw_, static_cast<size_t>(n), s.cols, s.hessian.data()));
    }
    for (int t = 0; t < n; ++t) {
      if (!(tw_[t] > 0.0f)) continue;
      const float* row = x + static_cast<size_t>(t) * K;
      if (!s.in_absmax.empty()) {
        for (size_t j = 0; j < K; ++j) s.in_absmax[j] = std::max(s.in_absmax[j], std::fabs(row[j]));
        const float* out = y + static_cast<size_t>(t) * N;
        for (size_t j = 0; j < N; ++j) s.out_absmax = std::max(s.out_absmax, std::fabs(out[j]));
      }
      if (o_.method == QuantMethod::kAwq) {
        // The same tokens for every slot: the counter advances on the first slot only.
        if (slot == LinearSlot::kQkv) ++awq_counter_;
        if ((awq_counter_ - 1) % awq_stride_ == 0) {
          s.awq_x.insert(s.awq_x.end(), row, row + K);
          s.awq_w.push_back(tw_[t]);
        }
      }
    }
    return Status::Ok();
  }

 private:
  const FinalizeOptions& o_;
  std::vector<SlotStats>* slots_;
  const float* tw_ = nullptr;
  Pass pass_ = Pass::kStatistics;
  int awq_stride_ = 1;
  int64_t awq_counter_ = 0;
};

// The fp32 weights of a slot, blocks stacked along the rows, and its bias.
void SlotWeights(const LayerTensors& t, int slot, int cols, std::vector<float>* w, std::vector<float>* bias) {
  std::vector<const TensorView*> blocks;
  std::vector<const std::optional<TensorView>*> biases;
  switch (slot) {
    case 0:
      blocks = {&t.q_proj, &t.k_proj, &t.v_proj};
      biases = {&t.q_bias, &t.k_bias, &t.v_bias};
      break;
    case 1: blocks = {&t.o_proj}; break;
    case 2: blocks = {&t.gate_proj, &t.up_proj}; break;
    default: blocks = {&t.down_proj}; break;
  }
  size_t rows = 0;
  for (const TensorView* b : blocks) rows += static_cast<size_t>(b->shape[0]);
  w->assign(rows * static_cast<size_t>(cols), 0.0f);
  size_t r = 0;
  for (const TensorView* b : blocks) {
    ConvertToF32(b->dtype, b->data, static_cast<size_t>(b->numel()), w->data() + r * static_cast<size_t>(cols));
    r += static_cast<size_t>(b->shape[0]);
  }
  bias->clear();
  if (!biases.empty() && biases[0]->has_value()) {
    for (const auto* b : biases) {
      const TensorView& v = b->value();
      const size_t at = bias->size();
      bias->resize(at + static_cast<size_t>(v.numel()));
      ConvertToF32(v.dtype, v.data, static_cast<size_t>(v.numel()), bias->data() + at);
    }
  }
}

FloatTensorContents CopyTensor(const TensorView& t, const std::string& name) {
  FloatTensorContents c;
  c.name = name;
  c.dtype = t.dtype;
  for (int64_t d : t.shape) c.shape.push_back(static_cast<uint32_t>(d));
  c.raw.assign(t.data, t.data + t.num_bytes);
  return c;
}

ActQuantParams ToParams(const quant::QuantRange& r) { return ActQuantParams{r.scale, r.zero_point}; }

// The embedding or head `t` [vocab][hidden] quantized for --head-bits: RTN,
// symmetric, groups of kHeadGroupSize. RTN works per group, so quantizing a
// chunk of rows at a time gives the same result while holding only that
// chunk in fp32.
Result<QLinearContents> QuantizeEmbedding(const TensorView& t, int bits, const std::string& name) {
  if (t.shape.size() != 2) return InvalidArgument(name + ": not a matrix");
  const int rows = static_cast<int>(t.shape[0]), cols = static_cast<int>(t.shape[1]);
  const quant::QuantSpec spec{bits, kHeadGroupSize, true};
  QLinearContents q;
  q.name = name;
  q.w.bits = bits;
  q.w.rows = rows;
  q.w.cols = cols;
  q.w.group_size = kHeadGroupSize;
  q.w.codes.reserve(static_cast<size_t>(rows) * static_cast<size_t>(cols));
  constexpr int kChunkRows = 4096;
  std::vector<float> chunk;
  const size_t row_bytes = static_cast<size_t>(cols) * DTypeSize(t.dtype);
  for (int r0 = 0; r0 < rows; r0 += kChunkRows) {
    const int n = std::min(kChunkRows, rows - r0);
    chunk.resize(static_cast<size_t>(n) * static_cast<size_t>(cols));
    ConvertToF32(t.dtype, t.data + static_cast<size_t>(r0) * row_bytes, chunk.size(), chunk.data());
    FAMQ_ASSIGN_OR_RETURN(QMatrix m, quant::QuantizeRtn(chunk.data(), n, cols, spec, nullptr, name));
    q.w.codes.insert(q.w.codes.end(), m.codes.begin(), m.codes.end());
    q.w.scales.insert(q.w.scales.end(), m.scales.begin(), m.scales.end());
    q.w.zeros.insert(q.w.zeros.end(), m.zeros.begin(), m.zeros.end());
  }
  return q;
}

// The embedding and head into `out`: as stored (head_bits 16: fp tensors),
// or quantized (the embedding once, serving a tied head; an untied head
// quantized too).
Status AddEmbeddingAndHead(const Checkpoint& ck, int head_bits, QModelContents* out) {
  if (head_bits == 16) {
    out->float_tensors.push_back(CopyTensor(ck.embed_tokens(), "model.embed_tokens.weight"));
    if (!ck.tied()) out->float_tensors.push_back(CopyTensor(ck.lm_head(), "lm_head.weight"));
    return Status::Ok();
  }
  FAMQ_ASSIGN_OR_RETURN(out->embedding, QuantizeEmbedding(ck.embed_tokens(), head_bits, kQEmbeddingName));
  if (!ck.tied()) {
    FAMQ_ASSIGN_OR_RETURN(out->lm_head, QuantizeEmbedding(ck.lm_head(), head_bits, kQLmHeadName));
  }
  return Status::Ok();
}

}  // namespace

Result<QModelContents> Finalize(const ModelDir& model, const std::string& model_dir_path, const CalibrationSet& calib,
                                const FinalizeOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  const Checkpoint& ck = model.checkpoint;
  const ModelConfig& c = ck.config();
  FAMQ_RETURN_IF_ERROR(ValidateFinalizeOptions(o, c));
  if (calib.samples.empty()) return InvalidArgument("no calibration samples");
  if (calib.seq_len > c.max_position_embeddings) {
    return InvalidArgument("calibration samples of " + std::to_string(calib.seq_len) +
                           " tokens exceed the model's context of " + std::to_string(c.max_position_embeddings));
  }
  for (const CalibSample& s : calib.samples) {
    for (int32_t id : s.tokens) {
      if (id < 0 || id >= c.vocab_size) {
        return InvalidArgument("calibration token id " + std::to_string(id) + " is outside the model's vocabulary of " +
                               std::to_string(c.vocab_size));
      }
    }
  }

  // Weight-only round-to-nearest needs no statistic and no propagated
  // input: no fp32 engine either (it would hold every weight in fp32).
  const bool calibration_free = o.method == QuantMethod::kRtn && !W8A8(o);
  std::unique_ptr<Engine> engine;
  int max_batch = 0;
  if (!calibration_free) {
    EngineOptions eo;
    eo.num_threads = o.num_threads;
    eo.max_seq_len = calib.seq_len;
    eo.max_batch = calib.seq_len;
    FAMQ_ASSIGN_OR_RETURN(engine, Engine::Create(ck, eo));
    max_batch = engine->max_batch();
  }
  const size_t H = static_cast<size_t>(c.hidden_size);

  // The residual stream of every sample entering the current block.
  std::vector<std::vector<float>> X(calib.samples.size());
  for (size_t i = 0; i < calib.samples.size() && !calibration_free; ++i) {
    X[i].resize(calib.samples[i].tokens.size() * H);
    FAMQ_RETURN_IF_ERROR(engine->Embed(calib.samples[i].tokens, X[i].data()));
  }
  std::vector<float> work(static_cast<size_t>(calib.seq_len) * H);
  const uint64_t counted = calib.CountedTokens();
  const int awq_stride =
      static_cast<int>(std::max<uint64_t>(1, (counted + static_cast<uint64_t>(o.awq_max_tokens) - 1) /
                                                 static_cast<uint64_t>(o.awq_max_tokens)));

  QModelContents out;
  out.scheme = W8A8(o) ? fb::QScheme::W8A8Static : fb::QScheme::WeightOnly;
  out.wbits = o.wbits;
  out.abits = o.abits;
  out.group_size = o.group_size;
  out.symmetric = W8A8(o) || o.symmetric;

  const int L = c.num_layers;
  const int passes = W8A8(o) ? 3 : 2;
  const double per_layer = 1.0 / L;
  auto report = [&](int layer, const char* stage, int done, int total, int pass) -> Status {
    if (!o.on_progress) return Status::Ok();
    FinalizeProgress p;
    p.layer = layer;
    p.layers = L;
    p.stage = stage;
    p.done = done;
    p.total = total;
    p.fraction = per_layer * (layer + (pass + static_cast<double>(done) / std::max(1, total)) / passes);
    if (!o.on_progress(p)) return Cancelled("finalize cancelled at block " + std::to_string(layer));
    return Status::Ok();
  };
  const int S = static_cast<int>(calib.samples.size());

  for (int l = 0; l < L; ++l) {
    std::vector<SlotStats> slots(kLinearSlots);
    for (int s = 0; s < kLinearSlots; ++s) {
      SlotStats& st = slots[static_cast<size_t>(s)];
      const LinearShape shape = LinearSlotShape(c, static_cast<LinearSlot>(s));
      st.rows = shape.rows;
      st.cols = shape.cols;
      const size_t K = static_cast<size_t>(st.cols);
      if (o.method == QuantMethod::kGptq) st.hessian.assign(K * K, 0.0);
      if (W8A8(o)) st.in_absmax.assign(K, 0.0f);
    }
    StatsObserver observer(o, &slots, awq_stride);
    auto run_pass = [&](StatsObserver::Pass pass, const char* stage, int pass_index) -> Status {
      for (int i = 0; i < S; ++i) {
        const CalibSample& cs = calib.samples[static_cast<size_t>(i)];
        const int n = static_cast<int>(cs.tokens.size());
        std::copy(X[static_cast<size_t>(i)].begin(), X[static_cast<size_t>(i)].end(), work.begin());
        observer.BeginSample(cs.token_weights.data(), pass);
        FAMQ_RETURN_IF_ERROR(engine->ForwardLayer(l, work.data(), n, 0, &observer));
        FAMQ_RETURN_IF_ERROR(report(l, stage, i + 1, S, pass_index));
      }
      return Status::Ok();
    };
    // A. statistics over the fp32 block.
    if (!calibration_free) FAMQ_RETURN_IF_ERROR(run_pass(StatsObserver::Pass::kStatistics, "statistics", 0));

    // Weights, smoothing, then (W8A8) the activation ranges of the smoothed inputs.
    const LayerTensors& lt = ck.layers()[static_cast<size_t>(l)];
    std::vector<std::vector<float>> weights(kLinearSlots), biases(kLinearSlots);
    for (int s = 0; s < kLinearSlots; ++s) {
      SlotStats& st = slots[static_cast<size_t>(s)];
      SlotWeights(lt, s, st.cols, &weights[static_cast<size_t>(s)], &biases[static_cast<size_t>(s)]);
      if (o.method == QuantMethod::kSmoothQuant) {
        const std::vector<float> sq = quant::SmoothQuantScales(st.in_absmax.data(), weights[static_cast<size_t>(s)].data(),
                                                               st.rows, st.cols, o.smooth_alpha);
        st.multiplier.resize(sq.size());
        for (size_t j = 0; j < sq.size(); ++j) st.multiplier[j] = 1.0f / sq[j];
        std::vector<float>& w = weights[static_cast<size_t>(s)];
        for (int r = 0; r < st.rows; ++r) {
          for (size_t j = 0; j < sq.size(); ++j) w[static_cast<size_t>(r) * sq.size() + j] *= sq[j];
        }
      }
    }
    std::vector<ActQuantParams> act_in(kLinearSlots), act_out(kLinearSlots);
    if (W8A8(o)) {
      for (SlotStats& st : slots) {
        float in_range = 0.0f;
        for (size_t j = 0; j < st.in_absmax.size(); ++j) {
          in_range = std::max(in_range, st.in_absmax[j] * (st.multiplier.empty() ? 1.0f : st.multiplier[j]));
        }
        st.hist_in = std::make_unique<quant::ActHistogram>(in_range);
        st.hist_out = std::make_unique<quant::ActHistogram>(st.out_absmax);
        st.scratch.resize(static_cast<size_t>(st.cols));
      }
      // B. histograms.
      FAMQ_RETURN_IF_ERROR(run_pass(StatsObserver::Pass::kRanges, "ranges", 1));
      for (int s = 0; s < kLinearSlots; ++s) {
        act_in[static_cast<size_t>(s)] =
            ToParams(quant::EstimateRange(*slots[static_cast<size_t>(s)].hist_in, o.estimator, o.percentile));
        act_out[static_cast<size_t>(s)] =
            ToParams(quant::EstimateRange(*slots[static_cast<size_t>(s)].hist_out, o.estimator, o.percentile));
      }
    }

    // C. quantize the four linears and swap them in.
    for (int s = 0; s < kLinearSlots; ++s) {
      SlotStats& st = slots[static_cast<size_t>(s)];
      const std::string name = QLinearName(l, s);
      const quant::QuantSpec spec = SpecFor(o, st.cols);
      const std::vector<float>& w = weights[static_cast<size_t>(s)];
      QLinearContents q;
      q.name = name;
      q.bias = biases[static_cast<size_t>(s)];
      switch (o.method) {
        case QuantMethod::kRtn:
        case QuantMethod::kSmoothQuant: {
          FAMQ_ASSIGN_OR_RETURN(q.w, quant::QuantizeRtn(w.data(), st.rows, st.cols, spec, nullptr, name));
          break;
        }
        case QuantMethod::kGptq: {
          quant::GptqOptions go;
          go.spec = spec;
          go.damp_percent = o.gptq_damp;
          go.block_size = o.gptq_block;
          go.act_order = o.gptq_act_order;
          go.name = name;
          FAMQ_ASSIGN_OR_RETURN(q.w, quant::QuantizeGptq(w.data(), st.rows, st.cols, std::move(st.hessian), go));
          break;
        }
        case QuantMethod::kAwq: {
          quant::AwqOptions ao;
          ao.spec = spec;
          ao.name = name;
          // As llm-awq: no clip search on q/k (they feed attention scores, where clipping hurts).
          ao.search_clip = s != static_cast<int>(LinearSlot::kQkv);
          // As AutoAWQ: o_proj's input scale folds into v_proj's rows only when
          // every query head has its own value head; under grouped-query
          // attention two query heads read one value row, so o_proj is not
          // scaled (clip search only) and the model stays exportable (GGUF).
          ao.search_scale = s != static_cast<int>(LinearSlot::kOProj) || c.num_heads == c.num_kv_heads;
          FAMQ_ASSIGN_OR_RETURN(quant::AwqResult a, quant::QuantizeAwq(w.data(), st.rows, st.cols, st.awq_x.data(),
                                                                       st.awq_w.data(), st.awq_w.size(), ao));
          st.multiplier.clear();
          if (ao.search_scale) {
            st.multiplier.resize(a.input_scales.size());
            for (size_t j = 0; j < a.input_scales.size(); ++j) st.multiplier[j] = 1.0f / a.input_scales[j];
          }
          q.w = std::move(a.q);
          break;
        }
      }
      q.input_multiplier = st.multiplier;
      if (calibration_free) {
        // Nothing runs through the quantized block: the file is all there is to make.
      } else if (W8A8(o)) {
        q.act_in = act_in[static_cast<size_t>(s)];
        q.act_out = act_out[static_cast<size_t>(s)];
        FAMQ_ASSIGN_OR_RETURN(StaticInt8Linear lin,
                              StaticInt8Linear::Create(q.w, q.bias, q.act_in, q.act_out, max_batch, name));
        FAMQ_RETURN_IF_ERROR(engine->SetLinear(l, static_cast<LinearSlot>(s), LayerLinear(std::move(lin), q.input_multiplier)));
      } else {
        FAMQ_ASSIGN_OR_RETURN(WeightOnlyLinear lin, WeightOnlyLinear::Create(q.w, q.bias, max_batch, o.isa, name));
        FAMQ_RETURN_IF_ERROR(engine->SetLinear(l, static_cast<LinearSlot>(s), LayerLinear(std::move(lin), q.input_multiplier)));
      }
      out.linears.push_back(std::move(q));
    }
    // D. the next block's input, through the quantized block.
    if (calibration_free) FAMQ_RETURN_IF_ERROR(report(l, "quantize", 1, 1, passes - 1));
    for (int i = 0; i < S && !calibration_free; ++i) {
      std::vector<float>& x = X[static_cast<size_t>(i)];
      FAMQ_RETURN_IF_ERROR(engine->ForwardLayer(l, x.data(), static_cast<int>(x.size() / H), 0, nullptr));
      FAMQ_RETURN_IF_ERROR(report(l, "propagate", i + 1, S, passes - 1));
    }
  }

  // The embedding and head as --head-bits says; everything else stays
  // floating point, in the checkpoint's dtype.
  FAMQ_RETURN_IF_ERROR(AddEmbeddingAndHead(ck, o.head_bits, &out));
  out.float_tensors.push_back(CopyTensor(ck.final_norm(), "model.norm.weight"));
  for (int l = 0; l < L; ++l) {
    const LayerTensors& t = ck.layers()[static_cast<size_t>(l)];
    const std::string p = "model.layers." + std::to_string(l) + ".";
    out.float_tensors.push_back(CopyTensor(t.input_norm, p + "input_layernorm.weight"));
    out.float_tensors.push_back(CopyTensor(t.post_attention_norm, p + "post_attention_layernorm.weight"));
    if (t.q_norm) out.float_tensors.push_back(CopyTensor(*t.q_norm, p + "self_attn.q_norm.weight"));
    if (t.k_norm) out.float_tensors.push_back(CopyTensor(*t.k_norm, p + "self_attn.k_norm.weight"));
  }

  auto read_optional = [&](const char* file) -> Result<std::string> {
    const std::string path = JoinPath(model_dir_path, file);
    if (!FileExists(path)) return std::string();
    return ReadFile(path, size_t{64} << 20);
  };
  FAMQ_ASSIGN_OR_RETURN(out.config_json, ReadFile(JoinPath(model_dir_path, "config.json"), size_t{16} << 20));
  FAMQ_ASSIGN_OR_RETURN(out.tokenizer_json, ReadFile(JoinPath(model_dir_path, "tokenizer.json"), size_t{256} << 20));
  FAMQ_ASSIGN_OR_RETURN(out.tokenizer_config_json, read_optional("tokenizer_config.json"));
  FAMQ_ASSIGN_OR_RETURN(out.generation_config_json, read_optional("generation_config.json"));
  out.source_config_sha256 = ConfigSha256(out.config_json);
  out.tokenizer_sha256 = model.tokenizer.ContentHash();
  out.source_name = std::filesystem::path(model_dir_path).lexically_normal().filename().string();
  if (out.source_name.empty()) {
    out.source_name = std::filesystem::path(model_dir_path).lexically_normal().parent_path().filename().string();
  }

  QModelProvenanceContents& p = out.provenance;
  p.tool = std::string("famq-rt ") + FAMQ_VERSION_STRING;
  p.method = static_cast<fb::QMethod>(static_cast<int>(o.method));
  p.calibration = calib.kind;
  p.bundle_payload_sha256 = calib.bundle_payload_sha256;
  p.bundle_key_id = calib.bundle_key_id;
  p.calib_source = std::filesystem::path(calib.source).filename().string();
  p.samples = static_cast<uint32_t>(calib.samples.size());
  p.calib_tokens = calibration_free ? 0 : counted;
  p.private_mix = calib.private_mix;
  p.estimator = static_cast<fb::ActEstimator>(static_cast<int>(o.estimator));
  p.percentile = static_cast<float>(o.percentile);
  p.smooth_alpha = o.smooth_alpha;
  p.gptq_damp = static_cast<float>(o.gptq_damp);
  p.gptq_act_order = o.gptq_act_order;
  p.seconds = static_cast<float>(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  p.peak_rss_bytes = PeakRssBytes();
  return out;
}

}  // namespace famq
