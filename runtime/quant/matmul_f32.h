// A small cache-blocked float matrix product for the quantization searches
// (AWQ's output losses) and the Hessians (input_stats.h): register tiles of
// GNU vector code (dense_tiles.h), 16-byte vectors in the portable build and
// 32 / 64-byte ones on AVX2 / AVX-512 (dense_kernels.h), not a BLAS.
// Internal to runtime/quant.
#pragma once

#include <cstddef>

namespace famq::quant {

// c[m][n] = a[m][k] * b[k][n]; row-major with leading dimensions lda, ldb,
// ldc (elements). c must not alias a or b. Each output is one float sum in
// k order, each product rounded before it is added: the same bits on every
// ISA level of one architecture.
void MatMulF32(const float* a, size_t lda, const float* b, size_t ldb, float* c, size_t ldc, size_t m, size_t k,
               size_t n);

}  // namespace famq::quant
