// Dense double-precision kernels for GPTQ: a cache-blocked matrix product,
// a blocked Cholesky factorization and a blocked inverse of a lower
// triangular matrix (right-looking, LAPACK potrf/trtri style, written for
// this use, not a BLAS). Row-major throughout. Internal to runtime/quant.
#pragma once

#include <pthreadpool.h>

#include <cstddef>

namespace famq::quant {

// c[m][n] += alpha * a[m][k] * b[k][n]; leading dimensions in elements. c
// must not alias a or b. With a pool, tiles of rows and columns run on its
// threads; every element is computed exactly as without one.
void GemmF64(double alpha, const double* a, size_t lda, const double* b, size_t ldb, double* c, size_t ldc, size_t m,
             size_t k, size_t n, pthreadpool_t pool = nullptr);

// Overwrites the lower triangle of the symmetric a [n][n] (only the lower
// triangle is read) with L, a = L L^T, and zeroes the strict upper triangle.
// Returns false if a is not positive definite: *bad_col is the column whose
// pivot *bad_pivot was not > 0 (a is then partly overwritten).
// The trailing updates run on `pool` if given (the same result).
bool CholeskyLowerInPlace(double* a, size_t n, size_t* bad_col, double* bad_pivot, pthreadpool_t pool = nullptr);

// Overwrites the lower triangular l [n][n] (non-zero diagonal; the strict
// upper triangle must be 0) with its inverse, also lower triangular.
// Its products run on `pool` if given (the same result).
void InvertLowerInPlace(double* l, size_t n, pthreadpool_t pool = nullptr);

}  // namespace famq::quant
