// The register-tiled loops of MatMulF32 (matmul_f32.h) and GemmF64
// (linalg_f64.h), written once over the vector width: the portable build
// instantiates them with 16-byte vectors (SSE2 on x86-64, NEON on AArch64),
// x86/dense_avx2.cc and x86/dense_avx512.cc with 32- and 64-byte vectors and
// larger tiles. Internal to runtime/quant and those files.
//
// Why every instantiation gives the same bits (on one architecture): each
// output element is computed by the same operations in the same order
// whatever the tile, the vector width or the edge path —
//   MatMulF32: c[i][j] = ((0 + a[i][0] b[0][j]) + a[i][1] b[1][j]) + ...
//     (each product rounded, then added; c is reloaded between k blocks, so
//     the blocking does not split the chain);
//   GemmF64:   per k block of kGemmF64Kc (fixed: it changes the rounding),
//     s = ((0 + a[i][k0] b[k0][j]) + ...), then c[i][j] = c[i][j] + alpha s.
// Vector lanes are independent elements, never partial sums of one element.
// The x86 files are compiled with -ffp-contract=off (the portable x86-64
// baseline has no FMA, so nothing is fused there either); on AArch64 only the
// portable instantiation exists. quant_tests compares every ISA's results
// with the portable ones bit for bit.
#pragma once

#include <cstddef>
#include <cstring>

#include "quant/dense_kernels.h"

// Everything here has internal linkage and uses no inline C++ library code
// (memcpy is a builtin): the AVX2 / AVX-512 files' copies must never become
// the ones the linker keeps for the baseline code (x86/README.md).
namespace famq::quant::dense {
namespace {  // NOLINT(google-build-namespaces): internal linkage per file, see above

inline size_t Min(size_t a, size_t b) { return a < b ? a : b; }

template <class T, size_t W>
struct VecOf {
  typedef T type __attribute__((vector_size(W * sizeof(T))));
};

template <class V, class T>
inline V LoadV(const T* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <class V, class T>
inline void StoreV(T* p, V v) {
  std::memcpy(p, &v, sizeof v);
}

constexpr size_t kMatMulF32Kc = 256;  // depth of a b block (256 x 256 floats stay in L2)
constexpr size_t kMatMulF32Nc = 256;
constexpr size_t kGemmF64Kc = 128;    // part of GemmF64's definition (see above)

// ------------------------------------------------------------- MatMulF32

// c[0..Mr)[0..Nv W) += a[0..Mr)[0..kc) * b[0..kc)[0..Nv W): accumulators
// held in registers across the k loop.
template <size_t W, size_t Mr, size_t Nv>
inline void MatMulF32Tile(const float* a, size_t lda, const float* b, size_t ldb, float* c, size_t ldc, size_t kc) {
  using V = typename VecOf<float, W>::type;
  V acc[Mr][Nv];
  for (size_t r = 0; r < Mr; ++r)
    for (size_t v = 0; v < Nv; ++v) acc[r][v] = LoadV<V>(c + r * ldc + v * W);
  for (size_t p = 0; p < kc; ++p) {
    V bv[Nv];
    for (size_t v = 0; v < Nv; ++v) bv[v] = LoadV<V>(b + p * ldb + v * W);
    for (size_t r = 0; r < Mr; ++r) {
      const float av = a[r * lda + p];
      for (size_t v = 0; v < Nv; ++v) acc[r][v] += av * bv[v];
    }
  }
  for (size_t r = 0; r < Mr; ++r)
    for (size_t v = 0; v < Nv; ++v) StoreV(c + r * ldc + v * W, acc[r][v]);
}

// A partial tile (mr rows, nr columns): one row at a time, whole vectors
// first, then the columns left one by one.
template <size_t W>
inline void MatMulF32Edge(const float* a, size_t lda, const float* b, size_t ldb, float* c, size_t ldc, size_t kc,
                          size_t mr, size_t nr) {
  using V = typename VecOf<float, W>::type;
  for (size_t r = 0; r < mr; ++r) {
    const float* ar = a + r * lda;
    float* cr = c + r * ldc;
    size_t j = 0;
    for (; j + W <= nr; j += W) {
      V acc = LoadV<V>(cr + j);
      for (size_t p = 0; p < kc; ++p) acc += ar[p] * LoadV<V>(b + p * ldb + j);
      StoreV(cr + j, acc);
    }
    for (size_t p = 0; p < kc; ++p) {
      const float av = ar[p];
      const float* bp = b + p * ldb;
      for (size_t jj = j; jj < nr; ++jj) cr[jj] += av * bp[jj];
    }
  }
}

// c[m][n] = a[m][k] * b[k][n] (the contract of MatMulF32).
template <size_t W, size_t Mr, size_t Nv>
void MatMulF32Tiled(const float* a, size_t lda, const float* b, size_t ldb, float* c, size_t ldc, size_t m, size_t k,
                    size_t n) {
  constexpr size_t Nr = W * Nv;
  for (size_t i = 0; i < m; ++i)
    for (size_t j = 0; j < n; ++j) c[i * ldc + j] = 0.0f;
  for (size_t n0 = 0; n0 < n; n0 += kMatMulF32Nc) {
    const size_t n1 = Min(n0 + kMatMulF32Nc, n);
    for (size_t k0 = 0; k0 < k; k0 += kMatMulF32Kc) {
      const size_t kc = Min(kMatMulF32Kc, k - k0);
      for (size_t i0 = 0; i0 < m; i0 += Mr) {
        const size_t mr = Min(Mr, m - i0);
        for (size_t j0 = n0; j0 < n1; j0 += Nr) {
          const size_t nr = Min(Nr, n1 - j0);
          const float* at = a + i0 * lda + k0;
          const float* bt = b + k0 * ldb + j0;
          float* ct = c + i0 * ldc + j0;
          if (mr == Mr && nr == Nr) {
            MatMulF32Tile<W, Mr, Nv>(at, lda, bt, ldb, ct, ldc, kc);
          } else {
            MatMulF32Edge<W>(at, lda, bt, ldb, ct, ldc, kc, mr, nr);
          }
        }
      }
    }
  }
}

// --------------------------------------------------------------- GemmF64

// c[0..Mr)[0..Nv W) += alpha * a[0..Mr)[0..kc) * b[0..kc)[0..Nv W).
template <size_t W, size_t Mr, size_t Nv>
inline void GemmF64Tile(double alpha, const double* a, size_t lda, const double* b, size_t ldb, double* c, size_t ldc,
                        size_t kc) {
  using V = typename VecOf<double, W>::type;
  V acc[Mr][Nv] = {};
  for (size_t p = 0; p < kc; ++p) {
    V bv[Nv];
    for (size_t v = 0; v < Nv; ++v) bv[v] = LoadV<V>(b + p * ldb + v * W);
    for (size_t r = 0; r < Mr; ++r) {
      const double av = a[r * lda + p];
      for (size_t v = 0; v < Nv; ++v) acc[r][v] += av * bv[v];
    }
  }
  for (size_t r = 0; r < Mr; ++r)
    for (size_t v = 0; v < Nv; ++v) {
      double* cp = c + r * ldc + v * W;
      StoreV(cp, LoadV<V>(cp) + alpha * acc[r][v]);
    }
}

inline void GemmF64Edge(double alpha, const double* a, size_t lda, const double* b, size_t ldb, double* c, size_t ldc,
                        size_t kc, size_t mr, size_t nr) {
  for (size_t r = 0; r < mr; ++r) {
    for (size_t j = 0; j < nr; ++j) {
      double sum = 0;
      for (size_t p = 0; p < kc; ++p) sum += a[r * lda + p] * b[p * ldb + j];
      c[r * ldc + j] += alpha * sum;
    }
  }
}

// c[m][n0..n1) += alpha * a b[.][n0..n1): one column block, all of k.
template <size_t W, size_t Mr, size_t Nv>
void GemmF64ColumnBlockTiled(double alpha, const double* a, size_t lda, const double* b, size_t ldb, double* c,
                             size_t ldc, size_t m, size_t k, size_t n0, size_t n1) {
  constexpr size_t Nr = W * Nv;
  for (size_t k0 = 0; k0 < k; k0 += kGemmF64Kc) {
    const size_t kc = Min(kGemmF64Kc, k - k0);
    for (size_t i0 = 0; i0 < m; i0 += Mr) {
      const size_t mr = Min(Mr, m - i0);
      for (size_t j0 = n0; j0 < n1; j0 += Nr) {
        const size_t nr = Min(Nr, n1 - j0);
        const double* at = a + i0 * lda + k0;
        const double* bt = b + k0 * ldb + j0;
        double* ct = c + i0 * ldc + j0;
        if (mr == Mr && nr == Nr) {
          GemmF64Tile<W, Mr, Nv>(alpha, at, lda, bt, ldb, ct, ldc, kc);
        } else {
          GemmF64Edge(alpha, at, lda, bt, ldb, ct, ldc, kc, mr, nr);
        }
      }
    }
  }
}

// The DenseKernels of one instantiation: float tiles of MrF rows x NvF
// vectors of Wf floats, double tiles of MrD rows x NvD vectors of Wd doubles.
template <size_t Wf, size_t MrF, size_t NvF, size_t Wd, size_t MrD, size_t NvD>
DenseKernels Instantiate() {
  return DenseKernels{&MatMulF32Tiled<Wf, MrF, NvF>, &GemmF64ColumnBlockTiled<Wd, MrD, NvD>, MrD};
}

}  // namespace
}  // namespace famq::quant::dense
