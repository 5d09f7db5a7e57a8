#include "quant/act_range.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <string>

namespace famq::quant {
namespace {

constexpr int kQMin = -128, kQMax = 127;

// The interval that bin b's weight is spread over: the bin, stretched to the
// exact extremes in the edge bins (values beyond the range were clamped
// there) and cut to the data's [min, max].
void BinSupport(const ActHistogram& h, int b, double* lo, double* hi) {
  double a = h.bin_lower_edge(b), e = h.bin_lower_edge(b + 1);
  if (b == 0) a = std::min(a, static_cast<double>(h.min()));
  if (b == ActHistogram::kBins - 1) e = std::max(e, static_cast<double>(h.max()));
  a = std::max(a, static_cast<double>(h.min()));
  e = std::min(e, static_cast<double>(h.max()));
  *lo = a;
  *hi = std::max(a, e);
}

int CodeOf(double x, double scale, int zp) {
  return static_cast<int>(std::clamp(std::nearbyint(x / scale) + zp, double{kQMin}, double{kQMax}));
}

// integral over [a, b] of (x - v)^2.
double SquareIntegral(double a, double b, double v) {
  const double hb = b - v, ha = a - v;
  return (hb * hb * hb - ha * ha * ha) / 3.0;
}

// The weighted value at cumulative fraction q in [0, 1].
double Quantile(const ActHistogram& h, double q) {
  if (q <= 0) return h.min();
  if (q >= 1) return h.max();
  const std::vector<double>& bins = h.bins();
  const double target = q * h.total_weight();
  double cum = 0;
  int last = 0;
  for (int b = 0; b < ActHistogram::kBins; ++b) {
    const double m = bins[static_cast<size_t>(b)];
    if (m <= 0) continue;
    last = b;
    if (cum + m >= target) {
      double lo, hi;
      BinSupport(h, b, &lo, &hi);
      const double frac = std::clamp((target - cum) / m, 0.0, 1.0);
      return lo + frac * (hi - lo);
    }
    cum += m;
  }
  double lo, hi;
  BinSupport(h, last, &lo, &hi);
  return hi;
}

}  // namespace

QuantRange RangeFromMinMax(float lo, float hi) {
  QuantRange r;
  r.min = std::min(lo, 0.0f);
  r.max = std::max(hi, 0.0f);
  r.scale = std::max((r.max - r.min) / static_cast<float>(kQMax - kQMin), FLT_EPSILON);
  const float zp = static_cast<float>(kQMin) - std::nearbyint(r.min / r.scale);
  r.zero_point = static_cast<int32_t>(std::clamp(zp, static_cast<float>(kQMin), static_cast<float>(kQMax)));
  return r;
}

ActHistogram::ActHistogram(float range)
    : range_(std::isfinite(range) && range > 0 ? range : 1.0f), bins_(kBins, 0.0) {}

int ActHistogram::BinOf(float x) const {
  const double pos = std::floor((static_cast<double>(x) + range_) * (kBins / (2.0 * range_)));
  if (!(pos > 0)) return 0;  // NaN included
  return pos >= kBins - 1 ? kBins - 1 : static_cast<int>(pos);
}

Status ActHistogram::Add(const float* x, size_t n, float weight) {
  if (!(weight >= 0) || !std::isfinite(weight)) {
    return InvalidArgument("activation histogram: weight " + std::to_string(weight) +
                           " is not a finite value >= 0");
  }
  if (weight == 0) return Status::Ok();
  for (size_t i = 0; i < n; ++i) {
    const float v = x[i];
    if (!std::isfinite(v)) {
      ++nonfinite_;
      continue;
    }
    if (std::fabs(v) > range_) ++clamped_;
    bins_[static_cast<size_t>(BinOf(v))] += weight;
    if (empty()) {
      min_ = max_ = v;
    } else {
      min_ = std::min(min_, v);
      max_ = std::max(max_, v);
    }
    total_weight_ += weight;
  }
  return Status::Ok();
}

Status ActHistogram::AddTokens(const float* x, size_t tokens, size_t dim, const float* token_weights) {
  for (size_t t = 0; t < tokens; ++t) {
    if (!(token_weights[t] >= 0) || !std::isfinite(token_weights[t])) {
      return InvalidArgument("activation histogram: token weight [" + std::to_string(t) + "] = " +
                             std::to_string(token_weights[t]) + " is not a finite value >= 0");
    }
  }
  for (size_t t = 0; t < tokens; ++t) FAMQ_RETURN_IF_ERROR(Add(x + t * dim, dim, token_weights[t]));
  return Status::Ok();
}

double ExpectedQuantError(const ActHistogram& hist, const QuantRange& range) {
  const double scale = range.scale;
  const int zp = range.zero_point;
  double total = 0;
  const std::vector<double>& bins = hist.bins();
  for (int b = 0; b < ActHistogram::kBins; ++b) {
    const double m = bins[static_cast<size_t>(b)];
    if (m <= 0) continue;
    double a, e;
    BinSupport(hist, b, &a, &e);
    const int ca = CodeOf(a, scale, zp), ce = CodeOf(e, scale, zp);
    if (!(e - a > 0)) {  // a point mass
      const double d = a - scale * (ca - zp);
      total += m * d * d;
      continue;
    }
    // Q is constant on each code's cell [v - scale/2, v + scale/2) (the end
    // codes' cells reach to infinity: clipping error).
    double integral = 0;
    for (int c = ca; c <= ce; ++c) {
      const double v = scale * (c - zp);
      const double lo = c == ca ? a : v - scale / 2;
      const double hi = c == ce ? e : v + scale / 2;
      if (hi > lo) integral += SquareIntegral(lo, hi, v);
    }
    total += m * integral / (e - a);
  }
  return total;
}

QuantRange EstimateRange(const ActHistogram& hist, Estimator estimator, double percentile) {
  if (hist.empty()) return RangeFromMinMax(0, 0);
  switch (estimator) {
    case Estimator::kMinMax:
      return RangeFromMinMax(hist.min(), hist.max());
    case Estimator::kPercentile: {
      const double p = std::isnan(percentile) ? 100.0 : std::clamp(percentile, 50.0, 100.0);
      const double lo = std::max(Quantile(hist, (100.0 - p) / 100.0), static_cast<double>(hist.min()));
      const double hi = std::min(Quantile(hist, p / 100.0), static_cast<double>(hist.max()));
      return RangeFromMinMax(static_cast<float>(lo), static_cast<float>(hi));
    }
    case Estimator::kMse:
      break;
  }
  const int first = hist.BinOf(hist.min()), last = hist.BinOf(hist.max());
  auto candidate = [&](int start, int end) {
    const float lo = start == first ? hist.min()
                                    : static_cast<float>(std::max(hist.bin_lower_edge(start), double{hist.min()}));
    const float hi = end == last ? hist.max()
                                 : static_cast<float>(std::min(hist.bin_lower_edge(end + 1), double{hist.max()}));
    return RangeFromMinMax(lo, hi);
  };
  QuantRange best = candidate(first, last);
  double best_err = ExpectedQuantError(hist, best);

  // PyTorch HistogramObserver._non_linear_param_search's path, scored all the way.
  std::vector<double> csum(ActHistogram::kBins);
  double cum = 0;
  for (int b = 0; b < ActHistogram::kBins; ++b) csum[static_cast<size_t>(b)] = cum += hist.bins()[static_cast<size_t>(b)];
  const double total = cum;
  constexpr double kStep = 1e-5;
  double alpha = 0, beta = 1;
  int start = first, end = last;
  while (alpha < beta) {
    const double next_alpha = alpha + kStep, next_beta = beta - kStep;
    int l = start, r = end;
    while (l < end && csum[static_cast<size_t>(l)] <= next_alpha * total) ++l;
    while (r > start && csum[static_cast<size_t>(r)] >= next_beta * total) --r;
    int next_start = start, next_end = end;
    if (l - start > end - r) {
      next_start = l;
      alpha = next_alpha;
    } else {
      next_end = r;
      beta = next_beta;
    }
    if (next_start == start && next_end == end) continue;
    const QuantRange c = candidate(next_start, next_end);
    const double err = ExpectedQuantError(hist, c);
    if (err < best_err) {
      best_err = err;
      best = c;
    }
    start = next_start;
    end = next_end;
  }
  return best;
}

}  // namespace famq::quant
