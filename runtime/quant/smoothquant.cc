#include "quant/smoothquant.h"

#include <algorithm>
#include <cmath>

#include "quant/rtn.h"

namespace famq::quant {

std::vector<float> SmoothQuantScales(const float* act_absmax, const float* w, int rows, int cols, float alpha) {
  const size_t K = static_cast<size_t>(std::max(cols, 0)), R = static_cast<size_t>(std::max(rows, 0));
  std::vector<float> w_max(K, 0.0f);
  for (size_t r = 0; r < R; ++r) {
    const float* wr = w + r * K;
    for (size_t j = 0; j < K; ++j) w_max[j] = std::max(w_max[j], std::fabs(wr[j]));
  }
  std::vector<float> s(K);
  for (size_t j = 0; j < K; ++j) {
    const double wm = std::max(static_cast<double>(w_max[j]), 1e-5);
    const double v = std::pow(static_cast<double>(act_absmax[j]), alpha) / std::pow(wm, 1.0 - alpha);
    s[j] = static_cast<float>(std::max(v, 1e-5));
  }
  return s;
}

Result<QMatrix> QuantizeW8PerChannel(const float* w, int rows, int cols, const std::string& name) {
  return QuantizeRtn(w, rows, cols, QuantSpec{8, cols, true}, nullptr, name);
}

}  // namespace famq::quant
