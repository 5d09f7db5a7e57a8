// Elementwise and attention building blocks of the fp32 forward pass.
// Plain loops written for the compiler's auto-vectorizer; they are also the
// scalar specification for any hand-written SIMD variant in arm/ or x86/.
#pragma once

#include <cstddef>

namespace famq::ops {

// out[i] = x[i] / sqrt(mean(x^2) + eps) * weight[i], for i < n. out may alias x.
void RmsNorm(const float* x, const float* weight, float eps, size_t n, float* out);

// Rotates x (one head, head_dim = 2 * half) in place, HF "rotate_half" layout:
// x[i], x[i + half] pair with angle pos * inv_freq[i].
void ApplyRope(float* x, const float* cos, const float* sin, size_t half);

// out[i] = silu(gate[i]) * up[i].
void SiluMul(const float* gate, const float* up, size_t n, float* out);

// y[i] += x[i].
void AddInPlace(float* y, const float* x, size_t n);

float Dot(const float* a, const float* b, size_t n);

// In-place softmax of x[0..n); returns nothing, x sums to 1.
void Softmax(float* x, size_t n);

// log(sum(exp(x))) over n values, computed stably.
double LogSumExp(const float* x, size_t n);

}  // namespace famq::ops
