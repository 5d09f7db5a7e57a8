// MatMulF32 and GemmF64 with 64-byte vectors (runtime/quant/dense_tiles.h
// is the code and says why the bits equal the portable build's). Compiled
// with -mavx512f -ffp-contract=off: products are rounded before they are added.
#include "quant/dense_kernels.h"
#include "quant/dense_tiles.h"

namespace famq::quant {
namespace {

// 8 x 32 floats, 8 x 16 doubles: 16 accumulators of the 32 zmm registers.
void MatMulF32Avx512(const float* a, size_t lda, const float* b, size_t ldb, float* c, size_t ldc, size_t m,
                     size_t k, size_t n) {
  dense::MatMulF32Tiled<16, 8, 2>(a, lda, b, ldb, c, ldc, m, k, n);
}
void GemmF64BlockAvx512(double alpha, const double* a, size_t lda, const double* b, size_t ldb, double* c,
                        size_t ldc, size_t m, size_t k, size_t n0, size_t n1) {
  dense::GemmF64ColumnBlockTiled<8, 8, 2>(alpha, a, lda, b, ldb, c, ldc, m, k, n0, n1);
}

}  // namespace

DenseKernels famq_dense_kernels__avx512() { return DenseKernels{MatMulF32Avx512, GemmF64BlockAvx512, 8}; }

}  // namespace famq::quant
