#include "quant/awq.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "quant/input_stats.h"
#include "quant/matmul_f32.h"
#include "quant/rtn.h"

namespace famq::quant {
namespace {

Status ValidateAwq(const float* w, int rows, int cols, const float* x, const float* token_weights, size_t tokens,
                   const AwqOptions& o) {
  FAMQ_RETURN_IF_ERROR(ValidateQuantSpec(o.spec, rows, cols, o.name));
  if (o.n_grid < 1 || o.clip_n_grid < 1 || o.clip_max_tokens < 1 || !(o.clip_max_shrink >= 0) ||
      !(o.clip_max_shrink < 1)) {
    return InvalidArgument(o.name + ": AWQ options out of range (n_grid " + std::to_string(o.n_grid) +
                           ", clip_n_grid " + std::to_string(o.clip_n_grid) + ", clip_max_tokens " +
                           std::to_string(o.clip_max_tokens) + ", clip_max_shrink " +
                           std::to_string(o.clip_max_shrink) + ")");
  }
  const size_t K = static_cast<size_t>(cols);
  FAMQ_RETURN_IF_ERROR(CheckFinite(w, static_cast<size_t>(rows) * K, o.name));
  FAMQ_RETURN_IF_ERROR(CheckFinite(x, tokens * K, o.name + " input"));
  bool any = false;
  for (size_t t = 0; t < tokens; ++t) {
    if (!(token_weights[t] >= 0) || !std::isfinite(token_weights[t])) {
      return InvalidArgument(o.name + ": token weight [" + std::to_string(t) + "] = " +
                             std::to_string(token_weights[t]) + " is not a finite value >= 0");
    }
    any = any || token_weights[t] > 0;
  }
  if (!any) return InvalidArgument(o.name + ": AWQ needs calibration tokens with weight > 0; got none");
  return Status::Ok();
}

// Per (row, group) clip values of ws [rows][cols] (already scaled by s) on
// the scaled inputs, as auto_clip_layer.
std::vector<float> SearchClip(const float* ws, int rows, int cols, const float* x, const float* token_weights,
                              size_t tokens, const std::vector<float>& s, const AwqOptions& o) {
  const size_t K = static_cast<size_t>(cols), R = static_cast<size_t>(rows);
  const size_t G = static_cast<size_t>(EffectiveGroupSize(o.spec, cols)), groups = K / G;
  std::vector<size_t> counted;
  for (size_t t = 0; t < tokens; ++t)
    if (token_weights[t] > 0) counted.push_back(t);
  const size_t stride = std::max<size_t>(1, counted.size() / static_cast<size_t>(o.clip_max_tokens));
  std::vector<size_t> sub;
  for (size_t i = 0; i < counted.size(); i += stride) sub.push_back(counted[i]);
  const size_t m = sub.size();
  std::vector<float> xs(m * K), wsub(m);  // the subsample's inputs divided by s
  for (size_t i = 0; i < m; ++i) {
    const float* xt = x + sub[i] * K;
    for (size_t j = 0; j < K; ++j) xs[i * K + j] = xt[j] / s[j];
    wsub[i] = token_weights[sub[i]];
  }
  // Each (row, group) scores its shrink candidates in one product D B_g,
  // D = [candidates][G] the weight changes q - w. Small groups use the
  // group's diagonal Hessian block (error = d^T H_g d, G^2 per candidate);
  // large ones the tokens themselves (B_g = X_g^T, error = sum_t w_t (x_t . d)^2).
  const bool use_hessian = G <= m;
  const size_t n = use_hessian ? G : m;  // columns of each B_g
  std::vector<float> bg(groups * G * n);  // [groups][G][n]
  if (use_hessian) {
    std::vector<float> slice(m * G);
    std::vector<double> h(G * G);
    for (size_t g = 0; g < groups; ++g) {
      for (size_t i = 0; i < m; ++i)
        std::copy(xs.begin() + static_cast<std::ptrdiff_t>(i * K + g * G),
                  xs.begin() + static_cast<std::ptrdiff_t>(i * K + g * G + G),
                  slice.begin() + static_cast<std::ptrdiff_t>(i * G));
      std::fill(h.begin(), h.end(), 0.0);
      // Weights were validated by the caller: this cannot fail.
      (void)AccumulateHessian(slice.data(), wsub.data(), m, static_cast<int>(G), h.data());
      std::copy(h.begin(), h.end(), bg.begin() + static_cast<std::ptrdiff_t>(g * G * G));
    }
  } else {
    for (size_t g = 0; g < groups; ++g)
      for (size_t j = 0; j < G; ++j)
        for (size_t i = 0; i < m; ++i) bg[(g * G + j) * m + i] = xs[i * K + g * G + j];
  }
  const size_t n_shrink = static_cast<size_t>(o.clip_max_shrink * o.clip_n_grid);
  std::vector<float> clip(R * groups), max_val(n_shrink), d(n_shrink * G), out(n_shrink * n);
  for (size_t r = 0; r < R; ++r) {
    for (size_t g = 0; g < groups; ++g) {
      const float* wg = ws + r * K + g * G;
      float org_max = 0;
      for (size_t j = 0; j < G; ++j) org_max = std::max(org_max, std::fabs(wg[j]));
      float best = org_max;
      if (n_shrink > 0) {
        for (size_t i = 0; i < n_shrink; ++i) {
          max_val[i] = static_cast<float>(org_max * (1.0 - static_cast<double>(i) / o.clip_n_grid));
          float* di = d.data() + i * G;
          QuantizeGroup(wg, static_cast<int>(G), o.spec.bits, o.spec.symmetric, max_val[i], nullptr, di, o.spec.f16_scales);
          for (size_t j = 0; j < G; ++j) di[j] -= wg[j];
        }
        MatMulF32(d.data(), G, bg.data() + g * G * n, n, out.data(), n, n_shrink, G, n);
        double best_err = std::numeric_limits<double>::infinity();
        for (size_t i = 0; i < n_shrink; ++i) {
          const float* oi = out.data() + i * n;
          double err = 0;
          if (use_hessian) {
            const float* di = d.data() + i * G;
            for (size_t j = 0; j < G; ++j) err += static_cast<double>(oi[j]) * di[j];
          } else {
            for (size_t t = 0; t < m; ++t) err += static_cast<double>(wsub[t]) * oi[t] * oi[t];
          }
          if (err < best_err) {  // strict: the least shrink wins ties, as the reference
            best_err = err;
            best = max_val[i];
          }
        }
      }
      clip[r * groups + g] = best;
    }
  }
  return clip;
}

}  // namespace

AwqOutputLoss::AwqOutputLoss(const float* w, int rows, int cols, const float* x, const float* token_weights,
                             size_t tokens)
    : w_(w), rows_(static_cast<size_t>(rows)), cols_(static_cast<size_t>(cols)) {
  const size_t K = cols_;
  size_t counted = 0;
  for (size_t t = 0; t < tokens; ++t) {
    if (token_weights[t] > 0) {
      ++counted;
      total_weight_ += token_weights[t];
    }
  }
  uses_hessian_ = counted > K;
  if (uses_hessian_) {
    std::vector<double> h(K * K, 0.0);
    (void)AccumulateHessian(x, token_weights, tokens, cols, h.data());  // inputs checked by the caller
    b_.assign(h.begin(), h.end());
    n_ = K;
  } else {
    n_ = counted;
    b_.resize(K * n_);
    size_t i = 0;
    for (size_t t = 0; t < tokens; ++t) {
      if (!(token_weights[t] > 0)) continue;
      for (size_t j = 0; j < K; ++j) b_[j * n_ + i] = x[t * K + j];
      weight_.push_back(token_weights[t]);
      ++i;
    }
  }
}

double AwqOutputLoss::operator()(const float* w_candidate) const {
  const size_t K = cols_;
  constexpr size_t kPanel = 64;  // rows per product: the panel's buffers stay small
  std::vector<float> delta(kPanel * K), out(kPanel * n_);
  double sum = 0;
  for (size_t r0 = 0; r0 < rows_; r0 += kPanel) {
    const size_t pr = std::min(kPanel, rows_ - r0);
    for (size_t i = 0; i < pr * K; ++i) delta[i] = w_candidate[r0 * K + i] - w_[r0 * K + i];
    MatMulF32(delta.data(), K, b_.data(), n_, out.data(), n_, pr, K, n_);
    for (size_t r = 0; r < pr; ++r) {
      const float* o = out.data() + r * n_;
      double row = 0;
      if (uses_hessian_) {
        const float* d = delta.data() + r * K;
        for (size_t j = 0; j < K; ++j) row += static_cast<double>(o[j]) * d[j];  // d^T H d
      } else {
        for (size_t t = 0; t < n_; ++t) row += weight_[t] * static_cast<double>(o[t]) * o[t];
      }
      sum += row;
    }
  }
  return sum / (total_weight_ * static_cast<double>(rows_));
}

Result<AwqResult> QuantizeAwq(const float* w, int rows, int cols, const float* x, const float* token_weights,
                              size_t tokens, const AwqOptions& options) {
  FAMQ_RETURN_IF_ERROR(ValidateAwq(w, rows, cols, x, token_weights, tokens, options));
  const AwqOutputLoss loss(w, rows, cols, x, token_weights, tokens);
  return QuantizeAwq(w, rows, cols, x, token_weights, tokens, options,
                     [&loss](const float* candidate) { return loss(candidate); });
}

Result<AwqResult> QuantizeAwq(const float* w, int rows, int cols, const float* x, const float* token_weights,
                              size_t tokens, const AwqOptions& options, const AwqLossFn& loss) {
  FAMQ_RETURN_IF_ERROR(ValidateAwq(w, rows, cols, x, token_weights, tokens, options));
  const size_t K = static_cast<size_t>(cols), R = static_cast<size_t>(rows);

  AwqResult result;
  result.input_scales.assign(K, 1.0f);
  std::vector<float> ws(R * K), candidate(R * K);
  if (options.search_scale) {
    // x_mean: the weighted mean |x| per input channel (reference get_act_scale).
    std::vector<double> x_mean(K, 0.0);
    double total = 0;
    for (size_t t = 0; t < tokens; ++t) {
      const double wt = token_weights[t];
      if (wt == 0) continue;
      total += wt;
      const float* xt = x + t * K;
      for (size_t j = 0; j < K; ++j) x_mean[j] += wt * std::fabs(xt[j]);
    }
    for (double& v : x_mean) v /= total;

    std::vector<float> s(K);
    double best_loss = std::numeric_limits<double>::infinity();
    bool found = false;
    result.ratio_losses.assign(static_cast<size_t>(options.n_grid), 0.0);
    for (int i = 0; i < options.n_grid; ++i) {
      const double ratio = static_cast<double>(i) / options.n_grid;
      double s_max = 0, s_min = std::numeric_limits<double>::infinity();
      std::vector<double> sd(K);
      for (size_t j = 0; j < K; ++j) {
        sd[j] = std::max(std::pow(x_mean[j], ratio), 1e-4);
        s_max = std::max(s_max, sd[j]);
        s_min = std::min(s_min, sd[j]);
      }
      const double norm = std::sqrt(s_max * s_min);
      for (size_t j = 0; j < K; ++j) s[j] = static_cast<float>(sd[j] / norm);
      for (size_t r = 0; r < R; ++r)
        for (size_t j = 0; j < K; ++j) ws[r * K + j] = w[r * K + j] * s[j];
      FakeQuantizeRtn(ws.data(), rows, cols, options.spec, nullptr, candidate.data());
      for (size_t r = 0; r < R; ++r)
        for (size_t j = 0; j < K; ++j) candidate[r * K + j] /= s[j];
      const double l = loss(candidate.data());
      result.ratio_losses[static_cast<size_t>(i)] = l;
      if (l < best_loss) {  // strict: the smallest ratio wins ties, as the reference
        best_loss = l;
        result.best_ratio = ratio;
        result.input_scales = s;
        found = true;
      }
    }
    if (!found) {
      return InvalidArgument(options.name + ": AWQ scale search found no ratio with a finite loss");
    }
  }

  const std::vector<float>& s = result.input_scales;
  for (size_t r = 0; r < R; ++r)
    for (size_t j = 0; j < K; ++j) ws[r * K + j] = w[r * K + j] * s[j];
  if (options.search_clip) {
    result.clip = SearchClip(ws.data(), rows, cols, x, token_weights, tokens, s, options);
  }
  FAMQ_ASSIGN_OR_RETURN(result.q, QuantizeRtn(ws.data(), rows, cols, options.spec,
                                              options.search_clip ? result.clip.data() : nullptr, options.name));
  return result;
}

}  // namespace famq::quant
