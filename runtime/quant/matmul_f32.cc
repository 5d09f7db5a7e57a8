#include "quant/matmul_f32.h"

#include "quant/dense_kernels.h"

namespace famq::quant {

void MatMulF32(const float* a, size_t lda, const float* b, size_t ldb, float* c, size_t ldc, size_t m, size_t k,
               size_t n) {
  ActiveDenseKernels().matmul_f32(a, lda, b, ldb, c, ldc, m, k, n);
}

}  // namespace famq::quant
