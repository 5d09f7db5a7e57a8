#include "engine/layer_linear.h"

namespace famq {

Status LayerLinear::Run(float* x, float* y, size_t batch, pthreadpool_t pool) const {
  if (!input_multiplier_.empty()) {
    const size_t in = input_multiplier_.size();
    for (size_t t = 0; t < batch; ++t) {
      float* row = x + t * in;
      for (size_t i = 0; i < in; ++i) row[i] *= input_multiplier_[i];
    }
  }
  return std::visit(
      [&](const auto& lin) -> Status {
        using T = std::decay_t<decltype(lin)>;
        if constexpr (std::is_same_v<T, std::monostate>) {
          return Internal("LayerLinear::Run on an empty layer");
        } else {
          return lin.Run(x, y, batch, pool);
        }
      },
      impl_);
}

int LayerLinear::in_features() const {
  return std::visit(
      [](const auto& lin) -> int {
        if constexpr (std::is_same_v<std::decay_t<decltype(lin)>, std::monostate>) {
          return 0;
        } else {
          return lin.in_features();
        }
      },
      impl_);
}

int LayerLinear::out_features() const {
  return std::visit(
      [](const auto& lin) -> int {
        if constexpr (std::is_same_v<std::decay_t<decltype(lin)>, std::monostate>) {
          return 0;
        } else {
          return lin.out_features();
        }
      },
      impl_);
}

size_t LayerLinear::weight_bytes() const {
  const size_t in = static_cast<size_t>(in_features()), out = static_cast<size_t>(out_features());
  if (const auto* q = std::get_if<WeightOnlyLinear>(&impl_)) return q->packed_bytes();
  if (const auto* b = std::get_if<Bf16Linear>(&impl_)) return b->weight_bytes();  // in place: W (2 bytes), fp32 b
  if (std::holds_alternative<Linear>(impl_)) return (in + 1) * out * sizeof(float);  // XNNPACK f32: W and b
  if (std::holds_alternative<StaticInt8Linear>(impl_)) return in * out + out * (sizeof(float) + sizeof(int32_t));
  return 0;
}

std::string LayerLinear::Describe() const {
  if (std::holds_alternative<Linear>(impl_)) return "fp32 (XNNPACK f32)";
  if (const auto* b = std::get_if<Bf16Linear>(&impl_)) return "bf16 (famq " + std::string(IsaName(b->isa())) + ")";
  if (const auto* q = std::get_if<WeightOnlyLinear>(&impl_)) {
    return "weight-only (famq " + std::string(IsaName(q->isa())) + ")";
  }
  if (std::holds_alternative<StaticInt8Linear>(impl_)) return "W8A8 static (XNNPACK qc8)";
  return "empty";
}

}  // namespace famq
