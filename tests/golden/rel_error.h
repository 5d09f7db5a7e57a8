// The golden tests' logit comparison: max |got - want| / max |want|.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>

namespace famq::testing {

inline double RelError(const float* got, const float* want, size_t n) {
  double max_diff = 0.0, max_ref = 0.0;
  for (size_t i = 0; i < n; ++i) {
    max_diff = std::max(max_diff, std::fabs(double(got[i]) - double(want[i])));
    max_ref = std::max(max_ref, std::fabs(double(want[i])));
  }
  return max_ref > 0 ? max_diff / max_ref : max_diff;
}

}  // namespace famq::testing
