// MatMulF32 and GemmF64 with 32-byte vectors (runtime/quant/dense_tiles.h
// is the code and says why the bits equal the portable build's). Compiled
// with -mavx2 -ffp-contract=off: products are rounded before they are added.
#include "quant/dense_kernels.h"
#include "quant/dense_tiles.h"

namespace famq::quant {
namespace {

// 4 x 16 floats, 4 x 8 doubles: 8 accumulators of the 16 ymm registers.
void MatMulF32Avx2(const float* a, size_t lda, const float* b, size_t ldb, float* c, size_t ldc, size_t m, size_t k,
                   size_t n) {
  dense::MatMulF32Tiled<8, 4, 2>(a, lda, b, ldb, c, ldc, m, k, n);
}
void GemmF64BlockAvx2(double alpha, const double* a, size_t lda, const double* b, size_t ldb, double* c, size_t ldc,
                      size_t m, size_t k, size_t n0, size_t n1) {
  dense::GemmF64ColumnBlockTiled<4, 4, 2>(alpha, a, lda, b, ldb, c, ldc, m, k, n0, n1);
}

}  // namespace

DenseKernels famq_dense_kernels__avx2() { return DenseKernels{MatMulF32Avx2, GemmF64BlockAvx2, 4}; }

}  // namespace famq::quant
