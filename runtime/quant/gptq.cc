#include "quant/gptq.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>

#include "quant/linalg_f64.h"
#include "quant/parallel_for.h"
#include "quant/rtn.h"

namespace famq::quant {
namespace {

using Index = size_t;

// Replaces the symmetric positive-definite a [n][n] with the upper Cholesky
// factor U of its inverse, a^-1 = U^T U: what the reference's cholesky ->
// cholesky_inverse -> cholesky(upper=True) produces. With J the reversal
// permutation, J a J = L L^T (lower Cholesky), so a = V V^T with V = J L J
// upper, and U = V^-1 = J L^-1 J (upper, positive diagonal, U^T U = a^-1).
// One blocked Cholesky and one blocked triangular inverse (n^3/3
// multiply-adds in all) instead of the reference's three factorizations.
// Returns false, with the failing (original) column and pivot, if a is not
// positive definite.
bool UpperCholeskyOfInverse(std::vector<double>& a, Index n, Index* bad_col, double* bad_pivot, pthreadpool_t pool) {
  std::vector<double> r(n * n);
  for (Index i = 0; i < n; ++i)
    for (Index j = 0; j < n; ++j) r[i * n + j] = a[(n - 1 - i) * n + (n - 1 - j)];
  Index col = 0;
  if (!CholeskyLowerInPlace(r.data(), n, &col, bad_pivot, pool)) {
    *bad_col = n - 1 - col;
    return false;
  }
  InvertLowerInPlace(r.data(), n, pool);
  for (Index i = 0; i < n; ++i)
    for (Index j = 0; j < n; ++j) a[i * n + j] = r[(n - 1 - i) * n + (n - 1 - j)];
  return true;
}

void RowMinMax(const double* v, Index n, double* lo, double* hi) {
  double mn = v[0], mx = v[0];
  for (Index i = 1; i < n; ++i) {
    mn = std::min(mn, v[i]);
    mx = std::max(mx, v[i]);
  }
  *lo = mn;
  *hi = mx;
}

std::string Num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

}  // namespace

Result<QMatrix> QuantizeGptq(const float* w, int rows, int cols, std::vector<double> hessian,
                             const GptqOptions& options, GptqInfo* info) {
  const std::string& name = options.name;
  const QuantSpec& spec = options.spec;
  FAMQ_RETURN_IF_ERROR(ValidateQuantSpec(spec, rows, cols, name));
  const Index R = static_cast<Index>(rows), K = static_cast<Index>(cols);
  if (hessian.size() != K * K) {
    return InvalidArgument(name + ": GPTQ Hessian has " + std::to_string(hessian.size()) + " entries, want " +
                           std::to_string(cols) + " x " + std::to_string(cols));
  }
  if (options.block_size <= 0) {
    return InvalidArgument(name + ": GPTQ block size " + std::to_string(options.block_size) + " is not positive");
  }
  if (!(options.damp_percent >= 0) || !std::isfinite(options.damp_percent)) {
    return InvalidArgument(name + ": GPTQ damp_percent " + Num(options.damp_percent) + " is not >= 0");
  }
  FAMQ_RETURN_IF_ERROR(CheckFinite(w, R * K, name));
  for (Index i = 0; i < K * K; ++i) {
    if (!std::isfinite(hessian[i])) {
      return InvalidArgument(name + ": GPTQ Hessian[" + std::to_string(i / K) + "][" + std::to_string(i % K) +
                             "] is not finite");
    }
  }

  const int bits = spec.bits;
  const int maxq = (1 << bits) - 1;
  const int offset = 1 << (bits - 1);
  const Index G = static_cast<Index>(EffectiveGroupSize(spec, cols));
  const Index groups = K / G;
  const bool per_channel = G == K;
  const bool static_groups = options.act_order && !per_channel;

  std::vector<double> W(R * K);  // [rows][cols], later in permuted column order
  for (Index i = 0; i < R * K; ++i) W[i] = w[i];
  std::vector<GroupParams> params(R * groups);  // [rows][groups], original group order

  // 1. Per-channel parameters come from the original rows (before step 2).
  if (per_channel) {
    for (Index r = 0; r < R; ++r) {
      double lo, hi;
      RowMinMax(W.data() + r * K, K, &lo, &hi);
      params[r] = FindGroupParams(lo, hi, bits, spec.symmetric, spec.f16_scales);
    }
  }
  // 2. Dead columns.
  GptqInfo stats;
  for (Index i = 0; i < K; ++i) {
    if (hessian[i * K + i] == 0) {
      hessian[i * K + i] = 1;
      for (Index r = 0; r < R; ++r) W[r * K + i] = 0;
      ++stats.dead_columns;
    }
  }
  // 8. Static groups: from the (dead-zeroed) original weights.
  if (static_groups) {
    for (Index r = 0; r < R; ++r) {
      for (Index g = 0; g < groups; ++g) {
        double lo, hi;
        RowMinMax(W.data() + r * K + g * G, G, &lo, &hi);
        params[r * groups + g] = FindGroupParams(lo, hi, bits, spec.symmetric, spec.f16_scales);
      }
    }
  }
  // 3. act_order: perm[j] = the original column quantized j-th.
  std::vector<Index> perm(K);
  std::iota(perm.begin(), perm.end(), Index{0});
  if (options.act_order) {
    std::stable_sort(perm.begin(), perm.end(),
                     [&](Index a, Index b) { return hessian[a * K + a] > hessian[b * K + b]; });
    std::vector<double> tmp(K * K);
    for (Index i = 0; i < K; ++i)
      for (Index j = 0; j < K; ++j) tmp[i * K + j] = hessian[perm[i] * K + perm[j]];
    hessian.swap(tmp);
    std::vector<double> row(K);
    for (Index r = 0; r < R; ++r) {
      double* wr = W.data() + r * K;
      for (Index j = 0; j < K; ++j) row[j] = wr[perm[j]];
      std::copy(row.begin(), row.end(), wr);
    }
  }
  // 4. Damping.
  double mean_diag = 0;
  for (Index i = 0; i < K; ++i) mean_diag += hessian[i * K + i];
  mean_diag /= static_cast<double>(K);
  stats.damp = options.damp_percent * mean_diag;
  for (Index i = 0; i < K; ++i) hessian[i * K + i] += stats.damp;
  // 5. Hinv.
  Index bad_col = 0;
  double bad_pivot = 0;
  if (!UpperCholeskyOfInverse(hessian, K, &bad_col, &bad_pivot, options.pool)) {
    return InvalidArgument(name + ": GPTQ Hessian is not positive definite after damping (column " +
                           std::to_string(perm[bad_col]) + ", pivot " + Num(bad_pivot) + ", damp " +
                           Num(stats.damp) + " = " + Num(options.damp_percent) +
                           " x mean diagonal); raise damp_percent or check the calibration statistics");
  }
  const std::vector<double>& hinv = hessian;  // upper triangular [K][K]

  QMatrix q;
  q.bits = bits;
  q.rows = rows;
  q.cols = cols;
  q.group_size = static_cast<int>(G);
  q.codes.resize(R * K);
  q.scales.resize(R * groups);
  q.zeros.resize(R * groups);

  // 6. Lazy blocks. W1/err1: [rows][block] working copy and scaled errors.
  // Rows are independent inside a block (each has its own parameters and
  // error), so bands of rows run as separate tasks; each row's arithmetic is
  // the same in any band.
  const Index B = static_cast<Index>(options.block_size);
  std::vector<double> W1(R * std::min(B, K)), err1(R * std::min(B, K));
  std::vector<double> row_loss(R, 0.0);  // per row, summed at the end
  constexpr Index kBandRows = 16;
  const Index bands = (R + kBandRows - 1) / kBandRows;
  for (Index i1 = 0; i1 < K; i1 += B) {
    const Index i2 = std::min(i1 + B, K), count = i2 - i1;
    ParallelFor(options.pool, bands, [&](size_t band) {
      const Index r0 = band * kBandRows, r1 = std::min(r0 + kBandRows, R);
      for (Index r = r0; r < r1; ++r) {
        std::copy(W.begin() + static_cast<std::ptrdiff_t>(r * K + i1),
                  W.begin() + static_cast<std::ptrdiff_t>(r * K + i2),
                  W1.begin() + static_cast<std::ptrdiff_t>(r * count));
        double* w1 = W1.data() + r * count;
        const GroupParams* current = nullptr;  // the parameters column i uses
        if (!per_channel && !static_groups && i1 % G != 0) {
          current = &params[r * groups + i1 / G];  // a group that began in an earlier lazy block
        }
        for (Index i = 0; i < count; ++i) {
          const Index col = i1 + i;  // position in quantization order
          const Index orig = perm[col];
          if (per_channel || static_groups) {
            current = &params[r * groups + (per_channel ? 0 : orig / G)];
          } else if (col % G == 0) {
            // 7. Refit on W (the block-start state), columns col .. col + G.
            double lo, hi;
            RowMinMax(W.data() + r * K + col, G, &lo, &hi);
            params[r * groups + col / G] = FindGroupParams(lo, hi, bits, spec.symmetric, spec.f16_scales);
            current = &params[r * groups + col / G];
          }
          const double* hrow = hinv.data() + col * K;  // Hinv[col][*]
          const double d = hrow[col];
          const double wv = w1[i];
          const int code = QuantizeToCode(wv, *current, maxq);
          const double qv = current->scale * (code - current->zero);
          q.codes[r * K + orig] = static_cast<int8_t>(code - offset);
          const double e = (wv - qv) / d;
          row_loss[r] += e * e / 2;
          err1[r * count + i] = e;
          for (Index l = i + 1; l < count; ++l) w1[l] -= e * hrow[i1 + l];
        }
      }
    });
    // The lazy update of every later column: W[:, i2:] -= err1 @ Hinv[i1:i2, i2:].
    if (i2 < K) {
      GemmF64(-1.0, err1.data(), count, hinv.data() + i1 * K + i2, K, W.data() + i2, K, R, count, K - i2,
              options.pool);
    }
  }
  double loss = 0;
  for (Index r = 0; r < R; ++r) loss += row_loss[r];

  for (Index i = 0; i < R * groups; ++i) {
    q.scales[i] = static_cast<float>(params[i].scale);
    q.zeros[i] = static_cast<int8_t>(params[i].zero - offset);
  }
  stats.loss = loss;
  if (info != nullptr) *info = stats;
  return q;
}

}  // namespace famq::quant
