// Which instantiation of the dense tiles (dense_tiles.h) runs MatMulF32 and
// GemmF64: the portable one, or the AVX2 / AVX-512 files' (x86/dense_*.cc)
// when the ISA dispatch (kernels/isa.h) picks that level. All give the same
// bits (dense_tiles.h says why); the wider ones are faster. Internal to
// runtime/quant.
#pragma once

#include <cstddef>

#include "kernels/isa.h"

namespace famq::quant {

// c[m][n] = a[m][k] b[k][n] (MatMulF32's contract).
using MatMulF32Fn = void (*)(const float* a, size_t lda, const float* b, size_t ldb, float* c, size_t ldc, size_t m,
                             size_t k, size_t n);
// c[m][n0..n1) += alpha a[m][k] b[k][n0..n1): one column block of GemmF64.
using GemmF64BlockFn = void (*)(double alpha, const double* a, size_t lda, const double* b, size_t ldb, double* c,
                                size_t ldc, size_t m, size_t k, size_t n0, size_t n1);

struct DenseKernels {
  MatMulF32Fn matmul_f32;
  GemmF64BlockFn gemm_f64_block;
  size_t gemm_f64_rows;  // rows per register tile: GemmF64 splits rows in multiples of it
};

// The kernels compiled for `isa` (the portable ones for levels without their
// own). The CPU is not consulted: check IsaAvailable first.
DenseKernels GetDenseKernels(Isa isa);

// GetDenseKernels(ActiveIsa()), the portable ones when ActiveIsa fails (an
// invalid FAMQ_FORCE_ISA is reported where models are loaded, not here).
DenseKernels ActiveDenseKernels();

#if defined(FAMQ_HAVE_X86_KERNELS)
DenseKernels famq_dense_kernels__avx2();
DenseKernels famq_dense_kernels__avx512();
#endif

}  // namespace famq::quant
