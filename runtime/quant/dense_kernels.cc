#include "quant/dense_kernels.h"

#include "quant/dense_tiles.h"

namespace famq::quant {
namespace {

// 16-byte vectors: 4 x 8 floats and 4 x 4 doubles per register tile (8
// accumulators: SSE2's 16 registers, NEON's 32).
void MatMulF32Portable(const float* a, size_t lda, const float* b, size_t ldb, float* c, size_t ldc, size_t m,
                       size_t k, size_t n) {
  dense::MatMulF32Tiled<4, 4, 2>(a, lda, b, ldb, c, ldc, m, k, n);
}
void GemmF64BlockPortable(double alpha, const double* a, size_t lda, const double* b, size_t ldb, double* c,
                          size_t ldc, size_t m, size_t k, size_t n0, size_t n1) {
  dense::GemmF64ColumnBlockTiled<2, 4, 2>(alpha, a, lda, b, ldb, c, ldc, m, k, n0, n1);
}

}  // namespace

DenseKernels GetDenseKernels(Isa isa) {
  switch (isa) {
#if defined(FAMQ_HAVE_X86_KERNELS)
    case Isa::kAvx2: return famq_dense_kernels__avx2();
    case Isa::kAvx512Vnni: return famq_dense_kernels__avx512();
#endif
    default: return DenseKernels{MatMulF32Portable, GemmF64BlockPortable, 4};
  }
}

DenseKernels ActiveDenseKernels() {
  const Result<Isa> isa = ActiveIsa();
  return GetDenseKernels(isa.ok() ? isa.value() : Isa::kRef);
}

}  // namespace famq::quant
