// Weighted activation statistics for static int8 activation quantization
// (the W8A8 path): a fixed-range histogram of a tensor's values with exact
// weighted extremes, and three range estimators that turn it into an int8
// scale and zero point.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/status.h"

namespace famq::quant {

// int8 asymmetric quantization of a tensor: q = clamp(round(x / scale) + zero_point, -128, 127).
struct QuantRange {
  float scale = 1.0f;      // > 0
  int32_t zero_point = 0;  // [-128, 127]
  float min = 0, max = 0;  // the range [min, max] it was derived from; min <= 0 <= max
};

// The int8 parameters of the range [lo, hi] widened to include 0, as
// PyTorch's observers compute them (ObserverBase._calculate_qparams, affine,
// qint8): scale = max((hi - lo) / 255, FLT_EPSILON),
// zero_point = clamp(-128 - round(lo / scale), -128, 127).
QuantRange RangeFromMinMax(float lo, float hi);

class ActHistogram {
 public:
  static constexpr int kBins = 2048;

  // Bins cover [-range, range] in kBins equal steps. `range` is a known
  // absmax of the tensor (e.g. LinearInputStats::max_abs, from a first
  // calibration pass); a range that is not a finite value > 0 becomes 1.
  // Values beyond it land in the edge bins (and are counted in clamped()),
  // while min()/max() stay exact.
  explicit ActHistogram(float range);

  // Adds n values that share one weight (a token's weight_t: docs/DESIGN.md §1.1).
  // Weight 0 adds nothing (masked tokens). Non-finite values are skipped and
  // counted in nonfinite(). Errors (kInvalidArgument): a negative or
  // non-finite weight; nothing is added then.
  Status Add(const float* x, size_t n, float weight);
  // Adds x [tokens][dim] with per-token weights [tokens]; same rules.
  Status AddTokens(const float* x, size_t tokens, size_t dim, const float* token_weights);

  float range() const { return range_; }
  double bin_width() const { return 2.0 * range_ / kBins; }
  double bin_lower_edge(int bin) const { return -static_cast<double>(range_) + bin * bin_width(); }
  const std::vector<double>& bins() const { return bins_; }  // [kBins] weight per bin
  double total_weight() const { return total_weight_; }
  bool empty() const { return !(total_weight_ > 0); }
  // Exact extremes of the values added with weight > 0 (0 while empty).
  float min() const { return empty() ? 0.0f : min_; }
  float max() const { return empty() ? 0.0f : max_; }
  size_t clamped() const { return clamped_; }
  size_t nonfinite() const { return nonfinite_; }
  // The bin that holds x (clamped to the edge bins; NaN: bin 0).
  int BinOf(float x) const;

 private:
  float range_;
  std::vector<double> bins_;
  double total_weight_ = 0;
  float min_ = 0, max_ = 0;
  size_t clamped_ = 0, nonfinite_ = 0;
};

enum class Estimator {
  // [min, max] exactly as observed (PyTorch MinMaxObserver).
  kMinMax,
  // The weighted (100 - p)-th and p-th percentiles, linearly interpolated
  // inside their bins and kept within the exact [min, max].
  kPercentile,
  // The clip range that minimizes the expected squared quantization error of
  // the histogram: each bin's weight spread uniformly over its (data-bounded)
  // interval, rounding error inside the range and clipping error outside,
  // integrated exactly against the int8 grid of that range (zero point and
  // all). Candidates follow PyTorch HistogramObserver._non_linear_param_search:
  // trim 1e-5 of the weight at a time from whichever tail frees more bins; famq
  // scores every candidate on that path and keeps the best (PyTorch stops at
  // the first increase, which strands it in local minima of multi-modal
  // histograms). The untrimmed min-max range is a candidate, so the result
  // never scores worse than kMinMax.
  kMse,
};

// The int8 range of `hist` by `estimator` (RangeFromMinMax of the chosen
// [lo, hi]). `percentile` (kPercentile only) is clamped into [50, 100].
// An empty histogram gives the range [0, 0] (scale FLT_EPSILON, zero point -128).
QuantRange EstimateRange(const ActHistogram& hist, Estimator estimator, double percentile = 99.99);

// The expected squared quantization error (weighted sum over the histogram,
// the kMse objective) of quantizing `hist` with `range`. For diagnostics and tests.
double ExpectedQuantError(const ActHistogram& hist, const QuantRange& range);

}  // namespace famq::quant
