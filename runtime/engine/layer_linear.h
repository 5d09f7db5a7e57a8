// One linear layer of a transformer block, whichever way it is executed:
// fp32 (XNNPACK f32 fully-connected), BF16 weights read in place (famq's
// kernels), weight-only int4/int8 (famq's kernels)
// or W8A8 static (XNNPACK qc8). An optional input multiplier (AWQ's and
// SmoothQuant's 1/s per input channel) scales the input first, in place.
#pragma once

#include <pthreadpool.h>

#include <string>
#include <variant>
#include <vector>

#include "core/status.h"
#include "linear/bf16_linear.h"
#include "linear/int8_linear.h"
#include "linear/fp32_linear.h"
#include "linear/weight_only_linear.h"

namespace famq {

class LayerLinear {
 public:
  LayerLinear() = default;
  explicit LayerLinear(Linear fp32) : impl_(std::move(fp32)) {}
  explicit LayerLinear(Bf16Linear bf16) : impl_(std::move(bf16)) {}
  LayerLinear(WeightOnlyLinear q, std::vector<float> input_multiplier)
      : impl_(std::move(q)), input_multiplier_(std::move(input_multiplier)) {}
  LayerLinear(StaticInt8Linear q, std::vector<float> input_multiplier)
      : impl_(std::move(q)), input_multiplier_(std::move(input_multiplier)) {}

  // y[batch][out] = f(x[batch][in]). x is multiplied in place by the input
  // multiplier when there is one. Does not allocate.
  Status Run(float* x, float* y, size_t batch, pthreadpool_t pool) const;

  bool empty() const { return std::holds_alternative<std::monostate>(impl_); }
  int in_features() const;
  int out_features() const;
  // Bytes of the weights (and bias) as this layer's kernel reads them in one
  // call: for a decode step, what it streams from memory.
  size_t weight_bytes() const;
  // "fp32 (XNNPACK f32)", "bf16 (famq avx512)", "weight-only (famq avx512)",
  // "W8A8 static (XNNPACK qc8)"
  std::string Describe() const;

 private:
  std::variant<std::monostate, Linear, Bf16Linear, WeightOnlyLinear, StaticInt8Linear> impl_;
  std::vector<float> input_multiplier_;
};

}  // namespace famq
