#include "finalize/input_maxima.h"

#include <algorithm>
#include <cmath>
#include <memory>

#include "engine/engine.h"

namespace famq {
namespace {

class MaximaObserver : public LinearObserver {
 public:
  explicit MaximaObserver(InputMaxima* out) : out_(out) {}
  void BeginSample(const float* token_weights) { weights_ = token_weights; }
  Status OnLinear(int layer, LinearSlot slot, const float* x, const float* /*y*/, int n) override {
    std::vector<float>& m = out_->max_abs[static_cast<size_t>(layer)][static_cast<size_t>(slot)];
    const size_t k = m.size();
    for (int t = 0; t < n; ++t) {
      if (!(weights_[t] > 0.0f)) continue;
      const float* row = x + static_cast<size_t>(t) * k;
      for (size_t j = 0; j < k; ++j) m[j] = std::max(m[j], std::fabs(row[j]));
    }
    return Status::Ok();
  }

 private:
  InputMaxima* out_;
  const float* weights_ = nullptr;
};

}  // namespace

Result<InputMaxima> CollectInputMaxima(const ModelDir& model, const CalibrationSet& calib, int num_threads) {
  const ModelConfig& c = model.checkpoint.config();
  if (calib.samples.empty()) return InvalidArgument("no calibration samples");
  for (const CalibSample& s : calib.samples) {
    if (s.tokens.size() != s.token_weights.size()) return InvalidArgument("a sample's weights do not match its tokens");
    for (int32_t id : s.tokens) {
      if (id < 0 || id >= c.vocab_size) {
        return InvalidArgument("calibration token id " + std::to_string(id) + " is outside the model's vocabulary of " +
                               std::to_string(c.vocab_size));
      }
    }
  }
  EngineOptions eo;
  eo.num_threads = num_threads;
  eo.max_seq_len = calib.seq_len;
  eo.max_batch = calib.seq_len;
  FAMQ_ASSIGN_OR_RETURN(std::unique_ptr<Engine> engine, Engine::Create(model.checkpoint, eo));

  InputMaxima out;
  out.layers = c.num_layers;
  out.max_abs.resize(static_cast<size_t>(c.num_layers));
  for (auto& layer : out.max_abs) {
    layer.resize(kLinearSlots);
    for (int s = 0; s < kLinearSlots; ++s) {
      layer[static_cast<size_t>(s)].assign(static_cast<size_t>(LinearSlotShape(c, static_cast<LinearSlot>(s)).cols),
                                           0.0f);
    }
  }
  MaximaObserver observer(&out);
  std::vector<float> x(static_cast<size_t>(calib.seq_len) * static_cast<size_t>(c.hidden_size));
  for (const CalibSample& s : calib.samples) {
    const int n = static_cast<int>(s.tokens.size());
    FAMQ_RETURN_IF_ERROR(engine->Embed(s.tokens, x.data()));
    observer.BeginSample(s.token_weights.data());
    for (int l = 0; l < c.num_layers; ++l) FAMQ_RETURN_IF_ERROR(engine->ForwardLayer(l, x.data(), n, 0, &observer));
    for (float w : s.token_weights) out.tokens += w > 0.0f ? 1 : 0;
  }
  return out;
}

}  // namespace famq
