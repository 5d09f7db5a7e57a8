// Weighted calibration statistics of one linear layer's input, accumulated
// over batches of tokens as the engine runs the calibration bundle.
//
// Token weights are those of docs/DESIGN.md §1.1, already combined per token:
// weight_t = w_c / |c| for a counted token of sample c, 0 for a masked one
// (attention sink, template tokens). So the Hessian is
// H = sum_c w_c (1/|c|) sum_t x_t x_t^T = sum_t weight_t x_t x_t^T.
// Tokens with weight 0 contribute nothing, to any statistic.
#pragma once

#include <pthreadpool.h>

#include <cstddef>
#include <vector>

#include "core/status.h"

namespace famq::quant {

// h [k][k] (row-major, double) += sum_t token_weights[t] * x_t x_t^T for
// x [tokens][k] (row-major). Tokens with weight 0 are skipped. The product
// runs in float (MatMulF32, cache-blocked) over chunks of at most 256 tokens
// and 256 x 256 output blocks on and above the diagonal; each chunk's partial
// sums are added into h in double and mirrored, so h is exactly symmetric and
// accurate to the float rounding of a 256-term sum (relative ~1e-6 on
// typical data).
// Errors (kInvalidArgument): k <= 0, or a negative or non-finite weight.
Status AccumulateHessian(const float* x, const float* token_weights, size_t tokens, int k, double* h);

// The same sums into the upper triangle of h only (j >= i; the strict lower
// triangle is left untouched), the 256 x 256 output blocks run on `pool`'s
// threads if given. Every upper element receives exactly the additions
// AccumulateHessian makes to it, so after MirrorUpperToLower a matrix that
// started symmetric equals AccumulateHessian's, bit for bit, whatever the
// thread count. For accumulating many batches: the lower half is written once.
Status AccumulateHessianUpper(const float* x, const float* token_weights, size_t tokens, int k, double* h,
                              pthreadpool_t pool = nullptr);

// AccumulateHessianUpper over many batches, with the same bits, faster:
// each Add splits its batch into chunks exactly as one AccumulateHessianUpper
// call would and keeps their (transposed, weighted) rows; Flush then runs
// every 256 x 256 block of h through all kept chunks in arrival order while
// the block is in cache, instead of sweeping the whole h once per batch
// (h of a 3,072-feature input is 75 MB; a batch is one 64-token window).
// Each element of h receives the same additions in the same order as with
// one AccumulateHessianUpper call per Add.
class UpperHessianBatcher {
 public:
  // h: [k][k] doubles, the upper triangle accumulated into; it must outlive
  // the batcher. pending_tokens: Add flushes once this many counted tokens
  // are kept (memory: 8 k bytes per token).
  UpperHessianBatcher(int k, double* h, pthreadpool_t pool, size_t pending_tokens = 1024);

  // x [tokens][k], weights as AccumulateHessianUpper.
  // Errors (kInvalidArgument): a negative or non-finite weight; nothing is kept then.
  Status Add(const float* x, const float* token_weights, size_t tokens);

  // Adds every kept chunk into h. Call before reading h.
  void Flush();

 private:
  struct Chunk {
    size_t offset, tokens;  // xt [k][tokens] at offset, then xw [tokens][k]
  };
  size_t k_;
  double* h_;
  pthreadpool_t pool_;
  size_t pending_limit_;
  size_t pending_ = 0;
  std::vector<Chunk> chunks_;
  std::vector<float> chunk_data_;
  std::vector<float> scratch_;
};

// h[j][i] = h[i][j] for j > i: h [k][k] becomes symmetric.
void MirrorUpperToLower(double* h, int k);

struct LinearInputStatsOptions {
  bool hessian = false;   // GPTQ: sum_t weight_t x_t x_t^T, [k][k] double (8 k^2 bytes)
  bool mean_abs = false;  // AWQ: sum_t weight_t |x_tj| / total weight, per channel j
  bool max_abs = false;   // SmoothQuant, activation ranges: max over tokens with weight > 0 of |x_tj|
};

class LinearInputStats {
 public:
  // k: input features. Allocates only what `options` asks for. k must be > 0.
  LinearInputStats(int k, const LinearInputStatsOptions& options);

  // Adds x [tokens][k] with per-token weights [tokens] (>= 0, finite).
  // Errors (kInvalidArgument): a negative or non-finite weight; nothing is
  // added then.
  Status Accumulate(const float* x, const float* token_weights, size_t tokens);

  int k() const { return k_; }
  double total_weight() const { return total_weight_; }
  size_t tokens_counted() const { return tokens_counted_; }  // tokens with weight > 0
  // [k][k], symmetric. Empty unless options.hessian.
  const std::vector<double>& hessian() const { return hessian_; }
  // Moves the Hessian out (e.g. into QuantizeGptq, which consumes it).
  std::vector<double> TakeHessian() { return std::move(hessian_); }
  // [k]: weighted mean |x| (0 before any weight arrived). Empty unless options.mean_abs.
  std::vector<double> mean_abs() const;
  // [k]: max |x| over counted tokens (0 before any). Empty unless options.max_abs.
  const std::vector<float>& max_abs() const { return max_abs_; }

 private:
  int k_;
  double total_weight_ = 0;
  size_t tokens_counted_ = 0;
  std::vector<double> hessian_;
  std::vector<double> sum_abs_;
  std::vector<float> max_abs_;
};

}  // namespace famq::quant
