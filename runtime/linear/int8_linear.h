// A W8A8 linear layer with static activation quantization on XNNPACK:
// f32 -> qs8 (calibrated input scale / zero point), a qc8 1x1 convolution
// over the tokens (per-output-channel int8 weights, symmetric), qs8 -> f32
// (calibrated output scale / zero point). docs/DESIGN.md §5: the 2022 XNNPACK has
// qc8 convolution with per-channel scales but no per-channel fully-connected.
#pragma once

#include <pthreadpool.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/qmatrix.h"

struct xnn_operator;

namespace famq {

// real = scale * (q - zero_point), q in [-128, 127].
struct ActQuantParams {
  float scale = 1.0f;
  int32_t zero_point = 0;
};

class StaticInt8Linear {
 public:
  // w: 8-bit, per-channel (group_size == cols), symmetric (zeros all 0).
  // bias: [rows] or empty; quantized to int32 with scale input.scale * w_scale[r].
  // max_batch: the most tokens one Run() takes; scratch is allocated here.
  static Result<StaticInt8Linear> Create(const QMatrix& w, std::span<const float> bias, ActQuantParams input,
                                         ActQuantParams output, int max_batch, const std::string& name);

  // y[batch][out] = dequant(conv(quant(x))). Does not allocate; batch <= max_batch.
  Status Run(const float* x, float* y, size_t batch, pthreadpool_t pool) const;

  int in_features() const { return in_; }
  int out_features() const { return out_; }

 private:
  struct OpDeleter {
    void operator()(xnn_operator* op) const;
  };
  using Op = std::unique_ptr<xnn_operator, OpDeleter>;
  Op quantize_, conv_, dequantize_;
  // Scratch for the int8 activations (mutable: Run is logically const).
  std::unique_ptr<std::vector<int8_t>> in_q_, out_q_;
  int in_ = 0, out_ = 0, max_batch_ = 0;
  std::string name_;
};

}  // namespace famq
