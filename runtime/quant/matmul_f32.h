// A small cache-blocked float matrix product for the quantization searches
// (AWQ's output losses): portable C++ whose inner loops the compiler
// vectorizes, not a BLAS. Internal to runtime/quant.
#pragma once

#include <cstddef>

namespace famq::quant {

// c[m][n] = a[m][k] * b[k][n]; row-major with leading dimensions lda, ldb,
// ldc (elements). c must not alias a or b. Sums run in float, in k order
// per output within blocks of 256.
void MatMulF32(const float* a, size_t lda, const float* b, size_t ldb, float* c, size_t ldc, size_t m, size_t k,
               size_t n);

}  // namespace famq::quant
