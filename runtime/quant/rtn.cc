#include "quant/rtn.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "model/dtype.h"

namespace famq::quant {
namespace {

// clamp(q, 0, maxq) as an int; NaN (only from non-finite inputs) gives 0.
int ClampToCode(double q, int maxq) {
  if (!(q > 0)) return 0;
  return q >= maxq ? maxq : static_cast<int>(q);
}

}  // namespace

GroupParams FindGroupParams(double group_min, double group_max, int bits, bool symmetric, bool f16_scale) {
  const int maxq = (1 << bits) - 1;
  double xmin = std::min(group_min, 0.0);
  double xmax = std::max(group_max, 0.0);
  if (symmetric) {
    xmax = std::max(std::fabs(xmin), xmax);
    if (xmin < 0) xmin = -xmax;  // the reference leaves xmin = 0 for non-negative groups
  }
  if (xmin == 0 && xmax == 0) {
    xmin = -1;
    xmax = 1;
  }
  GroupParams p;
  p.scale = (xmax - xmin) / maxq;
  if (f16_scale) {
    constexpr double kMinF16 = 0x1p-24, kMaxF16 = 65504.0;  // the smallest subnormal, the largest finite
    p.scale = F16ToF32(F32ToF16(static_cast<float>(std::clamp(p.scale, kMinF16, kMaxF16))));
  }
  // -xmin / scale lies in [0, maxq] for finite inputs; the clamp only keeps
  // a non-finite input from reaching an undefined float -> int conversion.
  p.zero = symmetric ? (maxq + 1) / 2 : ClampToCode(std::nearbyint(-xmin / p.scale), maxq);
  return p;
}

int QuantizeToCode(double w, const GroupParams& params, int maxq) {
  // nearbyint under the default rounding mode rounds half to even, as torch.round does.
  return ClampToCode(std::nearbyint(w / params.scale) + params.zero, maxq);
}

GroupParams QuantizeGroup(const float* w, int n, int bits, bool symmetric, float clip, int8_t* codes,
                          float* dequant, bool f16_scale) {
  const bool clamp = clip >= 0;
  auto value = [&](int i) { return clamp ? std::clamp(w[i], -clip, clip) : w[i]; };
  float lo = value(0), hi = lo;
  for (int i = 1; i < n; ++i) {
    const float v = value(i);
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  const GroupParams p = FindGroupParams(lo, hi, bits, symmetric, f16_scale);
  const int maxq = (1 << bits) - 1;
  const int offset = 1 << (bits - 1);
  const float scale = static_cast<float>(p.scale);
  for (int i = 0; i < n; ++i) {
    const int code = QuantizeToCode(value(i), p, maxq);
    if (codes != nullptr) codes[i] = static_cast<int8_t>(code - offset);
    if (dequant != nullptr) dequant[i] = scale * static_cast<float>(code - p.zero);
  }
  return p;
}

Status CheckFinite(const float* v, size_t n, const std::string& what) {
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(v[i])) {
      return InvalidArgument(what + "[" + std::to_string(i) + "] = " + std::to_string(v[i]) + " is not finite");
    }
  }
  return Status::Ok();
}

Result<QMatrix> QuantizeRtn(const float* w, int rows, int cols, const QuantSpec& spec, const float* clip,
                            const std::string& name) {
  FAMQ_RETURN_IF_ERROR(ValidateQuantSpec(spec, rows, cols, name));
  const size_t n = static_cast<size_t>(rows) * static_cast<size_t>(cols);
  FAMQ_RETURN_IF_ERROR(CheckFinite(w, n, name));
  const int group = EffectiveGroupSize(spec, cols);
  const int groups = cols / group;
  const size_t n_groups = static_cast<size_t>(rows) * static_cast<size_t>(groups);
  if (clip != nullptr) {
    for (size_t i = 0; i < n_groups; ++i) {
      if (!(clip[i] >= 0) || !std::isfinite(clip[i])) {
        return InvalidArgument(name + ": clip[" + std::to_string(i) + "] = " + std::to_string(clip[i]) +
                               " is not a finite value >= 0");
      }
    }
  }
  QMatrix q;
  q.bits = spec.bits;
  q.rows = rows;
  q.cols = cols;
  q.group_size = group;
  q.codes.resize(n);
  q.scales.resize(n_groups);
  q.zeros.resize(n_groups);
  const int offset = 1 << (spec.bits - 1);
  for (size_t g = 0; g < n_groups; ++g) {
    const size_t start = g * static_cast<size_t>(group);  // groups tile each row, rows follow each other
    const GroupParams p = QuantizeGroup(w + start, group, spec.bits, spec.symmetric,
                                        clip != nullptr ? clip[g] : -1.0f, q.codes.data() + start, nullptr,
                                        spec.f16_scales);
    q.scales[g] = static_cast<float>(p.scale);
    q.zeros[g] = static_cast<int8_t>(p.zero - offset);
  }
  return q;
}

void FakeQuantizeRtn(const float* w, int rows, int cols, const QuantSpec& spec, const float* clip, float* out) {
  const int group = EffectiveGroupSize(spec, cols);
  const size_t n_groups = static_cast<size_t>(rows) * static_cast<size_t>(cols / group);
  for (size_t g = 0; g < n_groups; ++g) {
    const size_t start = g * static_cast<size_t>(group);
    QuantizeGroup(w + start, group, spec.bits, spec.symmetric, clip != nullptr ? clip[g] : -1.0f, nullptr,
                  out + start, spec.f16_scales);
  }
}

}  // namespace famq::quant
