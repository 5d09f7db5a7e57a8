#include "quant/matmul_f32.h"

#include <algorithm>
#include <cstring>

namespace famq::quant {
namespace {

constexpr size_t kMr = 4;    // rows of c per micro-tile (MicroTile names them)
constexpr size_t kNr = 8;    // columns of c per micro-tile (4 x 8 accumulators fit 16 SSE registers)
constexpr size_t kKc = 256;  // depth of a b block (256 x kNc floats stay in L2)
constexpr size_t kNc = 256;

// c[0..kMr)[0..kNr) += a[0..kMr)[0..kc) * b[0..kc)[0..kNr): the full tile,
// accumulators held in registers across the k loop.
// GNU vector extension (GCC and Clang): 4 floats, lowered to SSE on x86-64
// and NEON on AArch64/ARMv7; portable C++ where the auto-vectorizer
// reorders this loop nest badly.
typedef float V4 __attribute__((vector_size(16)));

inline V4 Load(const float* p) {
  V4 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void Store(float* p, V4 v) { std::memcpy(p, &v, sizeof v); }

inline void MicroTile(const float* a, size_t lda, const float* b, size_t ldb, float* c, size_t ldc, size_t kc) {
  static_assert(kMr == 4 && kNr == 8, "MicroTile holds 4 x 8 accumulators");
  V4 acc[kMr][2];
  for (size_t r = 0; r < kMr; ++r) {
    acc[r][0] = Load(c + r * ldc);
    acc[r][1] = Load(c + r * ldc + 4);
  }
  for (size_t p = 0; p < kc; ++p) {
    const V4 b0 = Load(b + p * ldb), b1 = Load(b + p * ldb + 4);
    for (size_t r = 0; r < kMr; ++r) {
      const float av = a[r * lda + p];
      acc[r][0] += av * b0;
      acc[r][1] += av * b1;
    }
  }
  for (size_t r = 0; r < kMr; ++r) {
    Store(c + r * ldc, acc[r][0]);
    Store(c + r * ldc + 4, acc[r][1]);
  }
}

// The same for a partial tile (mr <= kMr, nr <= kNr) at the edges: one row
// at a time, vectorized when the tile is full width.
void EdgeTile(const float* a, size_t lda, const float* b, size_t ldb, float* c, size_t ldc, size_t kc, size_t mr,
              size_t nr) {
  for (size_t r = 0; r < mr; ++r) {
    const float* ar = a + r * lda;
    float* cr = c + r * ldc;
    if (nr == kNr) {
      V4 acc0 = Load(cr), acc1 = Load(cr + 4);
      for (size_t p = 0; p < kc; ++p) {
        acc0 += ar[p] * Load(b + p * ldb);
        acc1 += ar[p] * Load(b + p * ldb + 4);
      }
      Store(cr, acc0);
      Store(cr + 4, acc1);
      continue;
    }
    for (size_t p = 0; p < kc; ++p) {
      const float av = ar[p];
      const float* bp = b + p * ldb;
      for (size_t j = 0; j < nr; ++j) cr[j] += av * bp[j];
    }
  }
}

}  // namespace

void MatMulF32(const float* a, size_t lda, const float* b, size_t ldb, float* c, size_t ldc, size_t m, size_t k,
               size_t n) {
  for (size_t i = 0; i < m; ++i) std::fill(c + i * ldc, c + i * ldc + n, 0.0f);
  for (size_t n0 = 0; n0 < n; n0 += kNc) {
    const size_t n1 = std::min(n0 + kNc, n);
    for (size_t k0 = 0; k0 < k; k0 += kKc) {
      const size_t kc = std::min(kKc, k - k0);
      for (size_t i0 = 0; i0 < m; i0 += kMr) {
        const size_t mr = std::min(kMr, m - i0);
        for (size_t j0 = n0; j0 < n1; j0 += kNr) {
          const size_t nr = std::min(kNr, n1 - j0);
          const float* at = a + i0 * lda + k0;
          const float* bt = b + k0 * ldb + j0;
          float* ct = c + i0 * ldc + j0;
          if (mr == kMr && nr == kNr) {
            MicroTile(at, lda, bt, ldb, ct, ldc, kc);
          } else {
            EdgeTile(at, lda, bt, ldb, ct, ldc, kc, mr, nr);
          }
        }
      }
    }
  }
}

}  // namespace famq::quant
