#include "finalize/finalize.h"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <memory>

#include <pthreadpool.h>

#include "core/file.h"
#include "engine/engine.h"
#include "linear/weight_only_linear.h"
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
  if (W8A8(o)) return quant::QuantSpec{8, cols, true, o.f16_scales};
  return quant::QuantSpec{o.wbits, o.group_size == 0 ? cols : o.group_size, o.symmetric, o.f16_scales};
}

}  // namespace

Status ValidateFinalizeOptions(const FinalizeOptions& o, const ModelConfig& c) {
  if (o.wbits != 2 && o.wbits != 3 && o.wbits != 4 && o.wbits != 8) {
    return InvalidArgument("wbits " + std::to_string(o.wbits) + " is not supported (2, 3, 4 or 8" +
                           (o.wbits == 6 ? std::string("; 6 bits is for the embedding / head: --head-bits 6)")
                                         : std::string(")")));
  }
  if (o.abits != 0 && o.abits != 8) return InvalidArgument("abits " + std::to_string(o.abits) + " is not supported (8, or none)");
  if ((o.wbits == 2 || o.wbits == 3) && (o.abits == 8 || o.method == QuantMethod::kSmoothQuant)) {
    return InvalidArgument("wbits " + std::to_string(o.wbits) + " is weight-only (rtn, gptq or awq): " +
                           "smoothquant and --abits 8 (W8A8) need --wbits 8 --group channel");
  }
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
  if (o.head_bits != 4 && o.head_bits != 6 && o.head_bits != 8 && o.head_bits != 16) {
    return InvalidArgument("head bits " + std::to_string(o.head_bits) +
                           " is not supported (4, 6, 8, or 16: kept as stored)");
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

// Counted tokens whose rows a Hessian keeps before it sweeps its matrix
// (UpperHessianBatcher): 8 x cols bytes each, 29 MB for the four inputs of a
// Qwen3-0.6B block; eight 64-token windows per sweep.
constexpr size_t kHessianPendingTokens = 512;

// What one linear of the current block accumulates.
struct SlotStats {
  int rows = 0, cols = 0;
  std::vector<double> hessian;      // GPTQ: sum_t w_t x_t x_t^T, [cols][cols] (upper triangle until mirrored)
  std::unique_ptr<quant::UpperHessianBatcher> hessian_batcher;  // GPTQ: accumulates into `hessian`
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

  // After the statistics pass: every Hessian complete (its upper triangle).
  void Finish() {
    for (SlotStats& s : *slots_) {
      if (s.hessian_batcher != nullptr) s.hessian_batcher->Flush();
    }
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
    if (s.hessian_batcher != nullptr) {
      // Upper triangle only, on every thread, several samples per sweep of the
      // matrix; flushed (Finish) and mirrored once the block's statistics are complete.
      FAMQ_RETURN_IF_ERROR(s.hessian_batcher->Add(x, tw_, static_cast<size_t>(n)));
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
Result<QLinearContents> QuantizeEmbedding(const TensorView& t, int bits, bool f16_scales, const std::string& name) {
  if (t.shape.size() != 2) return InvalidArgument(name + ": not a matrix");
  const int rows = static_cast<int>(t.shape[0]), cols = static_cast<int>(t.shape[1]);
  const quant::QuantSpec spec{bits, kHeadGroupSize, true, f16_scales};
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
    // Read once: the chunk's mapped pages go now, not after the whole matrix
    // (311 MB of BF16 for a 151,936 x 1,024 embedding).
    ReleasePages(t.data + static_cast<size_t>(r0) * row_bytes, static_cast<size_t>(n) * row_bytes);
    FAMQ_ASSIGN_OR_RETURN(QMatrix m, quant::QuantizeRtn(chunk.data(), n, cols, spec, nullptr, name));
    q.w.codes.insert(q.w.codes.end(), m.codes.begin(), m.codes.end());
    q.w.scales.insert(q.w.scales.end(), m.scales.begin(), m.scales.end());
    q.w.zeros.insert(q.w.zeros.end(), m.zeros.begin(), m.zeros.end());
  }
  return q;
}


}  // namespace

namespace {

using Clock = std::chrono::steady_clock;
double SecondsSince(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

Status CheckCalibration(const CalibrationSet& calib, const ModelConfig& c) {
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
  return Status::Ok();
}

// What one Finalize holds from block to block.
class FinalizeRun {
 public:
  FinalizeRun(const Checkpoint& ck, const CalibrationSet& calib, const FinalizeOptions& o)
      : ck_(ck), c_(ck.config()), calib_(calib), o_(o),
        // Weight-only round-to-nearest needs no statistic and no propagated
        // input: no fp32 engine either (it would hold every weight in fp32).
        calibration_free_(o.method == QuantMethod::kRtn && !W8A8(o)),
        passes_(W8A8(o) ? 3 : 2),
        samples_(static_cast<int>(calib.samples.size())) {}

  bool calibration_free() const { return calibration_free_; }
  uint64_t counted_tokens() const { return counted_; }
  FinalizeTimings& timings() { return timings_; }

  // The fp32 engine and X, the embedded calibration tokens entering block 0.
  Status Start();
  // A (pass 0) or B (pass 1): block `l` over every sample, observed.
  Status ObserveBlock(int l, StatsObserver* observer, StatsObserver::Pass pass, const char* stage, int pass_index);
  // Per-slot statistics buffers for block `l`, as the method needs them.
  std::vector<SlotStats> NewSlotStats() const;
  // The slots' fp32 weights and biases, SmoothQuant's scales folded in.
  void LoadWeights(int l, std::vector<SlotStats>& slots, std::vector<std::vector<float>>* weights,
                   std::vector<std::vector<float>>* biases) const;
  // B, W8A8 only: the static activation ranges of every slot's (smoothed) input and output.
  Status EstimateRanges(int l, std::vector<SlotStats>& slots, StatsObserver* observer,
                        std::vector<ActQuantParams>* act_in, std::vector<ActQuantParams>* act_out);
  // C: one linear quantized by the method.
  Result<QLinearContents> QuantizeLinear(int l, int s, SlotStats& st, const std::vector<float>& w,
                                         std::vector<float> bias) const;
  // C: the quantized linear replaces the fp32 one in the engine.
  Status SwapIn(int l, int s, const QLinearContents& q);
  // The engine's threads (the statistics and GPTQ run on them between its calls); null without an engine.
  pthreadpool_t pool() const { return engine_ != nullptr ? engine_->thread_pool() : nullptr; }
  // D: X through the quantized block `l`, the next block's input.
  Status Propagate(int l);
  // C + D for block l: quantizes its linears into `out`.
  Status FinalizeBlock(int l, QModelContents* out);

 private:
  Status Report(int layer, const char* stage, int done, int total, int pass) const;

  const Checkpoint& ck_;
  const ModelConfig& c_;
  const CalibrationSet& calib_;
  const FinalizeOptions& o_;
  const bool calibration_free_;
  const int passes_;
  const int samples_;
  std::unique_ptr<Engine> engine_;
  int max_batch_ = 0;
  std::vector<std::vector<float>> x_;  // the residual stream of every sample entering the current block
  std::vector<float> work_;            // one sample's copy, run through the fp32 block
  uint64_t counted_ = 0;
  int awq_stride_ = 1;
  FinalizeTimings timings_;
};

Status FinalizeRun::Report(int layer, const char* stage, int done, int total, int pass) const {
  if (!o_.on_progress) return Status::Ok();
  FinalizeProgress p;
  p.layer = layer;
  p.layers = c_.num_layers;
  p.stage = stage;
  p.done = done;
  p.total = total;
  p.fraction = (layer + (pass + static_cast<double>(done) / std::max(1, total)) / passes_) / c_.num_layers;
  if (!o_.on_progress(p)) return Cancelled("finalize cancelled at block " + std::to_string(layer));
  return Status::Ok();
}

Status FinalizeRun::Start() {
  counted_ = calib_.CountedTokens();
  awq_stride_ = static_cast<int>(std::max<uint64_t>(
      1, (counted_ + static_cast<uint64_t>(o_.awq_max_tokens) - 1) / static_cast<uint64_t>(o_.awq_max_tokens)));
  if (calibration_free_) return Status::Ok();
  const auto t0 = Clock::now();
  EngineOptions eo;
  eo.num_threads = o_.num_threads;
  eo.max_seq_len = calib_.seq_len;
  eo.max_batch = calib_.seq_len;
  eo.weights = o_.calib_weights;
  eo.lm_head = false;  // the block pass computes no logits
  // Each block's fp linears are built when the block is calibrated
  // (FinalizeBlock) and replaced by its quantized ones: one block in fp32
  // at a time, never the whole model.
  eo.defer_block_linears = true;
  FAMQ_ASSIGN_OR_RETURN(engine_, Engine::Create(ck_, eo));
  max_batch_ = engine_->max_batch();
  const size_t H = static_cast<size_t>(c_.hidden_size);
  x_.resize(calib_.samples.size());
  for (size_t i = 0; i < calib_.samples.size(); ++i) {
    x_[i].resize(calib_.samples[i].tokens.size() * H);
    FAMQ_RETURN_IF_ERROR(engine_->Embed(calib_.samples[i].tokens, x_[i].data()));
  }
  work_.resize(static_cast<size_t>(calib_.seq_len) * H);
  timings_.embed += SecondsSince(t0);
  return Status::Ok();
}

std::vector<SlotStats> FinalizeRun::NewSlotStats() const {
  std::vector<SlotStats> slots(kLinearSlots);
  for (int s = 0; s < kLinearSlots; ++s) {
    SlotStats& st = slots[static_cast<size_t>(s)];
    const LinearShape shape = LinearSlotShape(c_, static_cast<LinearSlot>(s));
    st.rows = shape.rows;
    st.cols = shape.cols;
    const size_t K = static_cast<size_t>(st.cols);
    if (o_.method == QuantMethod::kGptq) {
      st.hessian.assign(K * K, 0.0);
      st.hessian_batcher =
          std::make_unique<quant::UpperHessianBatcher>(st.cols, st.hessian.data(), pool(), kHessianPendingTokens);
    }
    if (W8A8(o_)) st.in_absmax.assign(K, 0.0f);
  }
  return slots;
}

Status FinalizeRun::ObserveBlock(int l, StatsObserver* observer, StatsObserver::Pass pass, const char* stage,
                                 int pass_index) {
  for (int i = 0; i < samples_; ++i) {
    const CalibSample& cs = calib_.samples[static_cast<size_t>(i)];
    const int n = static_cast<int>(cs.tokens.size());
    std::copy(x_[static_cast<size_t>(i)].begin(), x_[static_cast<size_t>(i)].end(), work_.begin());
    observer->BeginSample(cs.token_weights.data(), pass);
    FAMQ_RETURN_IF_ERROR(engine_->ForwardLayer(l, work_.data(), n, 0, observer));
    FAMQ_RETURN_IF_ERROR(Report(l, stage, i + 1, samples_, pass_index));
  }
  return Status::Ok();
}

void FinalizeRun::LoadWeights(int l, std::vector<SlotStats>& slots, std::vector<std::vector<float>>* weights,
                              std::vector<std::vector<float>>* biases) const {
  const LayerTensors& lt = ck_.layers()[static_cast<size_t>(l)];
  weights->assign(kLinearSlots, {});
  biases->assign(kLinearSlots, {});
  for (int s = 0; s < kLinearSlots; ++s) {
    SlotStats& st = slots[static_cast<size_t>(s)];
    std::vector<float>& w = (*weights)[static_cast<size_t>(s)];
    SlotWeights(lt, s, st.cols, &w, &(*biases)[static_cast<size_t>(s)]);
    if (o_.method == QuantMethod::kSmoothQuant) {
      const std::vector<float> sq =
          quant::SmoothQuantScales(st.in_absmax.data(), w.data(), st.rows, st.cols, o_.smooth_alpha);
      st.multiplier.resize(sq.size());
      for (size_t j = 0; j < sq.size(); ++j) st.multiplier[j] = 1.0f / sq[j];
      for (int r = 0; r < st.rows; ++r) {
        for (size_t j = 0; j < sq.size(); ++j) w[static_cast<size_t>(r) * sq.size() + j] *= sq[j];
      }
    }
  }
}

Status FinalizeRun::EstimateRanges(int l, std::vector<SlotStats>& slots, StatsObserver* observer,
                                   std::vector<ActQuantParams>* act_in, std::vector<ActQuantParams>* act_out) {
  for (SlotStats& st : slots) {
    float in_range = 0.0f;
    for (size_t j = 0; j < st.in_absmax.size(); ++j) {
      in_range = std::max(in_range, st.in_absmax[j] * (st.multiplier.empty() ? 1.0f : st.multiplier[j]));
    }
    st.hist_in = std::make_unique<quant::ActHistogram>(in_range);
    st.hist_out = std::make_unique<quant::ActHistogram>(st.out_absmax);
    st.scratch.resize(static_cast<size_t>(st.cols));
  }
  FAMQ_RETURN_IF_ERROR(ObserveBlock(l, observer, StatsObserver::Pass::kRanges, "ranges", 1));
  act_in->assign(kLinearSlots, {});
  act_out->assign(kLinearSlots, {});
  for (int s = 0; s < kLinearSlots; ++s) {
    const SlotStats& st = slots[static_cast<size_t>(s)];
    (*act_in)[static_cast<size_t>(s)] = ToParams(quant::EstimateRange(*st.hist_in, o_.estimator, o_.percentile));
    (*act_out)[static_cast<size_t>(s)] = ToParams(quant::EstimateRange(*st.hist_out, o_.estimator, o_.percentile));
  }
  return Status::Ok();
}

Result<QLinearContents> FinalizeRun::QuantizeLinear(int l, int s, SlotStats& st, const std::vector<float>& w,
                                                    std::vector<float> bias) const {
  const std::string name = QLinearName(l, s);
  const quant::QuantSpec spec = SpecFor(o_, st.cols);
  QLinearContents q;
  q.name = name;
  q.bias = std::move(bias);
  switch (o_.method) {
    case QuantMethod::kRtn:
    case QuantMethod::kSmoothQuant: {
      FAMQ_ASSIGN_OR_RETURN(q.w, quant::QuantizeRtn(w.data(), st.rows, st.cols, spec, nullptr, name));
      break;
    }
    case QuantMethod::kGptq: {
      quant::GptqOptions go;
      go.spec = spec;
      go.damp_percent = o_.gptq_damp;
      go.block_size = o_.gptq_block;
      go.act_order = o_.gptq_act_order;
      go.name = name;
      go.pool = pool();
      quant::MirrorUpperToLower(st.hessian.data(), st.cols);
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
      ao.search_scale = s != static_cast<int>(LinearSlot::kOProj) || c_.num_heads == c_.num_kv_heads;
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
  return q;
}

Status FinalizeRun::SwapIn(int l, int s, const QLinearContents& q) {
  // Calibration-free: nothing runs through the quantized block; the file is all there is to make.
  if (calibration_free_) return Status::Ok();
  if (W8A8(o_)) {
    FAMQ_ASSIGN_OR_RETURN(StaticInt8Linear lin,
                          StaticInt8Linear::Create(q.w, q.bias, q.act_in, q.act_out, max_batch_, q.name));
    return engine_->SetLinear(l, static_cast<LinearSlot>(s), LayerLinear(std::move(lin), q.input_multiplier));
  }
  FAMQ_ASSIGN_OR_RETURN(WeightOnlyLinear lin, WeightOnlyLinear::Create(q.w, q.bias, max_batch_, o_.isa, q.name));
  return engine_->SetLinear(l, static_cast<LinearSlot>(s), LayerLinear(std::move(lin), q.input_multiplier));
}

Status FinalizeRun::Propagate(int l) {
  if (calibration_free_) return Report(l, "quantize", 1, 1, passes_ - 1);
  const size_t H = static_cast<size_t>(c_.hidden_size);
  for (int i = 0; i < samples_; ++i) {
    std::vector<float>& x = x_[static_cast<size_t>(i)];
    FAMQ_RETURN_IF_ERROR(engine_->ForwardLayer(l, x.data(), static_cast<int>(x.size() / H), 0, nullptr));
    FAMQ_RETURN_IF_ERROR(Report(l, "propagate", i + 1, samples_, passes_ - 1));
  }
  return Status::Ok();
}

Status FinalizeRun::FinalizeBlock(int l, QModelContents* out) {
  std::vector<SlotStats> slots = NewSlotStats();
  StatsObserver observer(o_, &slots, awq_stride_);
  auto t = Clock::now();
  // A. statistics over the fp32 block.
  if (!calibration_free_) {
    FAMQ_RETURN_IF_ERROR(engine_->LoadBlockLinears(ck_, l, o_.calib_weights));
    FAMQ_RETURN_IF_ERROR(ObserveBlock(l, &observer, StatsObserver::Pass::kStatistics, "statistics", 0));
    observer.Finish();
  }
  timings_.statistics += SecondsSince(t);
  // Weights, smoothing, then (W8A8) B. the activation ranges of the smoothed inputs.
  t = Clock::now();
  std::vector<std::vector<float>> weights, biases;
  LoadWeights(l, slots, &weights, &biases);
  std::vector<ActQuantParams> act_in, act_out;
  if (W8A8(o_)) FAMQ_RETURN_IF_ERROR(EstimateRanges(l, slots, &observer, &act_in, &act_out));
  timings_.ranges += SecondsSince(t);
  // C. quantize the four linears and swap them in.
  t = Clock::now();
  for (int s = 0; s < kLinearSlots; ++s) {
    const size_t i = static_cast<size_t>(s);
    FAMQ_ASSIGN_OR_RETURN(QLinearContents q,
                          QuantizeLinear(l, s, slots[i], weights[i], std::move(biases[i])));
    if (W8A8(o_)) {
      q.act_in = act_in[i];
      q.act_out = act_out[i];
    }
    FAMQ_RETURN_IF_ERROR(SwapIn(l, s, q));
    if (o_.compact_records) PackRecordCodes(&q);
    out->linears.push_back(std::move(q));
  }
  // The block's fp weights are no longer read (its quantized linears run
  // from here on): their mapped pages go, so one block's stay resident.
  ck_.ReleaseLayerPages(static_cast<size_t>(l));
  timings_.quantize += SecondsSince(t);
  // D. the next block's input, through the quantized block.
  t = Clock::now();
  FAMQ_RETURN_IF_ERROR(Propagate(l));
  // The block has done its work: its quantized linears never run again.
  if (engine_ != nullptr) FAMQ_RETURN_IF_ERROR(engine_->ReleaseLinears(l));
  slots.clear();  // the Hessians (72 MB for a 3,072-feature input) and other statistics
  ReturnFreedMemory();
  timings_.propagate += SecondsSince(t);
  return Status::Ok();
}

// The embedding and head as --head-bits says (quantized: the embedding once,
// serving a tied head; an untied head quantized too); everything else but the
// quantized linears stays floating point, in the checkpoint's dtype.
Status AddFloatTensors(const Checkpoint& ck, int head_bits, bool f16_scales, QModelContents* out) {
  if (head_bits == 16) {
    out->float_tensors.push_back(CopyTensor(ck.embed_tokens(), "model.embed_tokens.weight"));
  } else {
    FAMQ_ASSIGN_OR_RETURN(out->embedding, QuantizeEmbedding(ck.embed_tokens(), head_bits, f16_scales, kQEmbeddingName));
  }
  // The embedding and an untied head are read once, whole, here: their mapped
  // pages need not stay resident (the checkpoint mapping is private and read-only).
  ReleasePages(ck.embed_tokens().data, ck.embed_tokens().num_bytes);
  out->float_tensors.push_back(CopyTensor(ck.final_norm(), "model.norm.weight"));
  if (!ck.tied()) {
    if (head_bits == 16) {
      out->float_tensors.push_back(CopyTensor(ck.lm_head(), "lm_head.weight"));
    } else {
      FAMQ_ASSIGN_OR_RETURN(out->lm_head, QuantizeEmbedding(ck.lm_head(), head_bits, f16_scales, kQLmHeadName));
    }
    ReleasePages(ck.lm_head().data, ck.lm_head().num_bytes);
  }
  for (int l = 0; l < ck.config().num_layers; ++l) {
    const LayerTensors& t = ck.layers()[static_cast<size_t>(l)];
    const std::string p = "model.layers." + std::to_string(l) + ".";
    out->float_tensors.push_back(CopyTensor(t.input_norm, p + "input_layernorm.weight"));
    out->float_tensors.push_back(CopyTensor(t.post_attention_norm, p + "post_attention_layernorm.weight"));
    if (t.q_norm) out->float_tensors.push_back(CopyTensor(*t.q_norm, p + "self_attn.q_norm.weight"));
    if (t.k_norm) out->float_tensors.push_back(CopyTensor(*t.k_norm, p + "self_attn.k_norm.weight"));
  }
  return Status::Ok();
}

// The model directory's config, tokenizer and generation files, and the names and hashes that identify them.
Status AddModelFiles(const ModelDir& model, const std::string& model_dir_path, QModelContents* out) {
  auto read_optional = [&](const char* file) -> Result<std::string> {
    const std::string path = JoinPath(model_dir_path, file);
    if (!FileExists(path)) return std::string();
    return ReadFile(path, size_t{64} << 20);
  };
  FAMQ_ASSIGN_OR_RETURN(out->config_json, ReadFile(JoinPath(model_dir_path, "config.json"), size_t{16} << 20));
  FAMQ_ASSIGN_OR_RETURN(out->tokenizer_json, ReadFile(JoinPath(model_dir_path, "tokenizer.json"), size_t{256} << 20));
  FAMQ_ASSIGN_OR_RETURN(out->tokenizer_config_json, read_optional("tokenizer_config.json"));
  FAMQ_ASSIGN_OR_RETURN(out->generation_config_json, read_optional("generation_config.json"));
  out->source_config_sha256 = ConfigSha256(out->config_json);
  out->tokenizer_sha256 = model.tokenizer.ContentHash();
  out->source_name = std::filesystem::path(model_dir_path).lexically_normal().filename().string();
  if (out->source_name.empty()) {
    out->source_name = std::filesystem::path(model_dir_path).lexically_normal().parent_path().filename().string();
  }
  return Status::Ok();
}

void FillProvenance(const CalibrationSet& calib, const FinalizeOptions& o, uint64_t calib_tokens,
                    QModelProvenanceContents* p) {
  p->tool = std::string("famq-rt ") + FAMQ_VERSION_STRING;
  p->method = static_cast<fb::QMethod>(static_cast<int>(o.method));
  p->calibration = calib.kind;
  p->bundle_payload_sha256 = calib.bundle_payload_sha256;
  p->bundle_key_id = calib.bundle_key_id;
  p->calib_source = std::filesystem::path(calib.source).filename().string();
  p->samples = static_cast<uint32_t>(calib.samples.size());
  p->calib_tokens = calib_tokens;
  p->private_mix = calib.private_mix;
  p->estimator = static_cast<fb::ActEstimator>(static_cast<int>(o.estimator));
  p->percentile = static_cast<float>(o.percentile);
  p->smooth_alpha = o.smooth_alpha;
  p->gptq_damp = static_cast<float>(o.gptq_damp);
  p->gptq_act_order = o.gptq_act_order;
}

QModelContents NewContents(const FinalizeOptions& o) {
  QModelContents out;
  out.scheme = W8A8(o) ? fb::QScheme::W8A8Static : fb::QScheme::WeightOnly;
  out.wbits = o.wbits;
  out.abits = o.abits;
  out.group_size = o.group_size;
  out.symmetric = W8A8(o) || o.symmetric;
  return out;
}

}  // namespace

Result<QModelContents> Finalize(const ModelDir& model, const std::string& model_dir_path, const CalibrationSet& calib,
                                const FinalizeOptions& o, FinalizeTimings* timings) {
  const auto t0 = Clock::now();
  const Checkpoint& ck = model.checkpoint;
  FAMQ_RETURN_IF_ERROR(ValidateFinalizeOptions(o, ck.config()));
  FAMQ_RETURN_IF_ERROR(CheckCalibration(calib, ck.config()));

  auto run = std::make_unique<FinalizeRun>(ck, calib, o);
  FAMQ_RETURN_IF_ERROR(run->Start());
  QModelContents out = NewContents(o);
  for (int l = 0; l < ck.config().num_layers; ++l) FAMQ_RETURN_IF_ERROR(run->FinalizeBlock(l, &out));
  // The calibration engine and the residual stream are done with: freed
  // before the embedding is quantized and the file is built.
  FinalizeTimings run_timings = run->timings();
  const uint64_t counted = run->calibration_free() ? 0 : run->counted_tokens();
  run.reset();
  ReturnFreedMemory();

  const auto t_assemble = Clock::now();
  FAMQ_RETURN_IF_ERROR(AddFloatTensors(ck, o.head_bits, o.f16_scales, &out));
  FAMQ_RETURN_IF_ERROR(AddModelFiles(model, model_dir_path, &out));
  FillProvenance(calib, o, counted, &out.provenance);
  run_timings.assemble += SecondsSince(t_assemble);
  out.provenance.seconds = static_cast<float>(SecondsSince(t0));
  out.provenance.peak_rss_bytes = PeakRssBytes();
  if (timings != nullptr) *timings = run_timings;
  return out;
}

}  // namespace famq
