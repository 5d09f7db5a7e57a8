#include "quant/linalg_f64.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "quant/dense_kernels.h"
#include "quant/parallel_for.h"

namespace famq::quant {
namespace {

constexpr size_t kNc = 128;  // GemmF64 task width in columns (128 x 128 doubles of b = 128 KiB, L2)
constexpr size_t kNb = 64;   // factorization panel width

// The unblocked factorization of the diagonal block a[k0..k1)^2 and the
// panel below it (rows k1..n), once earlier panels' updates are applied.
bool FactorPanel(double* a, size_t n, size_t k0, size_t k1, size_t* bad_col, double* bad_pivot) {
  for (size_t j = k0; j < k1; ++j) {
    const double* aj = a + j * n;
    double d = aj[j];
    for (size_t p = k0; p < j; ++p) d -= aj[p] * aj[p];
    if (!(d > 0) || !std::isfinite(d)) {
      *bad_col = j;
      *bad_pivot = d;
      return false;
    }
    const double l_jj = std::sqrt(d);
    a[j * n + j] = l_jj;
    for (size_t i = j + 1; i < n; ++i) {
      double* ai = a + i * n;
      double s = ai[j];
      for (size_t p = k0; p < j; ++p) s -= ai[p] * aj[p];
      ai[j] = s / l_jj;
    }
  }
  return true;
}

}  // namespace

void GemmF64(double alpha, const double* a, size_t lda, const double* b, size_t ldb, double* c, size_t ldc, size_t m,
             size_t k, size_t n, pthreadpool_t pool) {
  // Tasks: row bands (a multiple of the register tile's rows, so the bands
  // split no tile) x column blocks of kNc.
  const DenseKernels kernels = ActiveDenseKernels();
  const size_t tile_rows = kernels.gemm_f64_rows;
  const size_t threads = pool != nullptr ? pthreadpool_get_threads_count(pool) : 1;
  const size_t col_blocks = (n + kNc - 1) / kNc;
  size_t band = m;
  if (threads > 1 && col_blocks < 4 * threads) {
    const size_t want_bands = (4 * threads + col_blocks - 1) / col_blocks;
    band = std::max(tile_rows, (m / want_bands + tile_rows - 1) / tile_rows * tile_rows);
  }
  const size_t bands = m == 0 ? 0 : (m + band - 1) / band;
  ParallelFor(threads > 1 ? pool : nullptr, bands * col_blocks, [&](size_t task) {
    const size_t r0 = (task / col_blocks) * band, n0 = (task % col_blocks) * kNc;
    kernels.gemm_f64_block(alpha, a + r0 * lda, lda, b, ldb, c + r0 * ldc, ldc, std::min(band, m - r0), k, n0,
                    std::min(n0 + kNc, n));
  });
}

bool CholeskyLowerInPlace(double* a, size_t n, size_t* bad_col, double* bad_pivot, pthreadpool_t pool) {
  std::vector<double> panel_t;  // the panel below the diagonal block, transposed: [kb][m]
  for (size_t k0 = 0; k0 < n; k0 += kNb) {
    const size_t k1 = std::min(k0 + kNb, n), kb = k1 - k0;
    if (!FactorPanel(a, n, k0, k1, bad_col, bad_pivot)) return false;
    const size_t m = n - k1;
    if (m == 0) break;
    // Trailing update A22 -= P P^T, P = L[k1..n)[k0..k1), one block row at a
    // time and only up to the diagonal (the strict upper triangle is never read).
    panel_t.resize(kb * m);
    for (size_t i = 0; i < m; ++i)
      for (size_t p = 0; p < kb; ++p) panel_t[p * m + i] = a[(k1 + i) * n + k0 + p];
    // Block rows own disjoint rows of a: one task each.
    ParallelFor(pool, (m + kNb - 1) / kNb, [&](size_t b) {
      const size_t r0 = b * kNb, r1 = std::min(r0 + kNb, m);
      GemmF64(-1.0, a + (k1 + r0) * n + k0, n, panel_t.data(), m, a + (k1 + r0) * n + k1, n, r1 - r0, kb, r1);
    });
  }
  for (size_t i = 0; i < n; ++i) std::fill(a + i * n + i + 1, a + (i + 1) * n, 0.0);
  return true;
}

void InvertLowerInPlace(double* l, size_t n, pthreadpool_t pool) {
  // Block row I of X = L^-1: X_II = L_II^-1 and, for J < I,
  // X_IJ = -X_II sum_{K=J..I-1} L_IK X_KJ, with the rows above already X.
  std::vector<double> t, xii(kNb * kNb);
  for (size_t i0 = 0; i0 < n; i0 += kNb) {
    const size_t i1 = std::min(i0 + kNb, n), ib = i1 - i0;
    // t = -L[I][0..i0) X[0..i0)[0..i0): X is lower triangular with zeros above.
    t.assign(ib * i0, 0.0);
    // Block columns own disjoint columns of t: one task each.
    ParallelFor(pool, (i0 + kNb - 1) / kNb, [&](size_t b) {
      const size_t j0 = b * kNb, j1 = std::min(j0 + kNb, i0);
      GemmF64(-1.0, l + i0 * n + j0, n, l + j0 * n + j0, n, t.data() + j0, i0, ib, i0 - j0, j1 - j0);
    });
    // X_II: the unblocked inverse of the diagonal block.
    std::fill(xii.begin(), xii.end(), 0.0);
    for (size_t i = 0; i < ib; ++i) {
      const double* li = l + (i0 + i) * n + i0;
      xii[i * kNb + i] = 1.0 / li[i];
      for (size_t j = 0; j < i; ++j) {
        double s = 0;
        for (size_t k = j; k < i; ++k) s += li[k] * xii[k * kNb + j];
        xii[i * kNb + j] = -s / li[i];
      }
    }
    // X[I][0..i0) = X_II t, then X_II in place.
    for (size_t i = 0; i < ib; ++i) std::fill(l + (i0 + i) * n, l + (i0 + i) * n + i0, 0.0);
    if (i0 > 0) GemmF64(1.0, xii.data(), kNb, t.data(), i0, l + i0 * n, n, ib, ib, i0, pool);
    for (size_t i = 0; i < ib; ++i)
      for (size_t j = 0; j <= i; ++j) l[(i0 + i) * n + i0 + j] = xii[i * kNb + j];
  }
}

}  // namespace famq::quant
