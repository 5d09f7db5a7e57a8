// GPTQ (Frantar et al. 2022): quantizes a linear layer's weights column by
// column, spreading each column's rounding error over the columns not yet
// quantized through the inverse Hessian of the layer's calibration inputs.
//
// Matches `GPTQ.fasterquant` of IST-DASLab/gptq (gptq.py; AutoGPTQ's is the
// same) with the quantizer of rtn.h, step by step:
//   1. per-channel spec: each row's parameters come from the original row,
//      before dead columns are zeroed (the reference's `find_params(W)`);
//   2. dead columns (H[i][i] == 0): H[i][i] = 1 and W[:, i] = 0;
//   3. act_order: columns permuted by descending diag(H) (stable);
//   4. damping: damp_percent * mean(diag(H)) added to the diagonal;
//   5. Hinv = the upper Cholesky factor of H^-1 (computed as J L^-1 J, L the
//      lower Cholesky factor of the column-reversed J H J: the same matrix,
//      from one blocked factorization and one triangular inverse);
//   6. columns in lazy blocks of block_size: inside a block, the error
//      (w - q) / Hinv[i][i] of column i updates the block's later columns;
//      after the block, one update of all later columns;
//   7. groups (group_size < cols, no act_order): a group's parameters are
//      fitted when the loop reaches its first column, on the weights updated
//      so far, read from W as it stands at the start of the current lazy
//      block (the reference reads W, not the block's working copy W1, so
//      updates made earlier in the same block do not count);
//   8. act_order with groups: AutoGPTQ's static_groups: every group's
//      parameters come from the original weights (after step 2) of its
//      original contiguous columns, so stored groups stay contiguous and no
//      g_idx is needed; the permutation only orders the error propagation.
// Arithmetic is double throughout (the reference runs float32 on a GPU).
// Cost: cols^3 / 3 multiply-adds for Hinv plus rows * cols^2 / 2 for the
// updates; a 1024 x 3072 layer takes ~4 s on one x86-64 core (SSE2), and
// the work splits over threads (options.pool).
#pragma once

#include <pthreadpool.h>

#include <string>
#include <vector>

#include "core/status.h"
#include "core/qmatrix.h"
#include "quant/quant_spec.h"

namespace famq::quant {

struct GptqOptions {
  QuantSpec spec;
  double damp_percent = 0.01;  // reference percdamp; >= 0
  int block_size = 128;        // reference blocksize (lazy batch); > 0
  bool act_order = false;      // reference actorder (+ static_groups with groups)
  std::string name = "weight"; // the layer, for error messages
  // Optional threads: the factorization's products, the rows of each lazy
  // block and the lazy updates run on them. Codes, scales and zeros are
  // exactly those of a run without (only `loss` is summed in another order).
  pthreadpool_t pool = nullptr;
};

// What the reference prints and famq logs.
struct GptqInfo {
  double loss = 0;       // the reference's `torch.sum(Losses)`: sum of (w - q)^2 / Hinv[i][i]^2 / 2
  int dead_columns = 0;  // columns with H[i][i] == 0 (their weights are quantized as 0)
  double damp = 0;       // the value added to the diagonal
};

// Quantizes w [rows][cols] (row-major, finite).
//   hessian: [cols][cols] row-major, symmetric, the weighted input second
//            moment sum_t weight_t x_t x_t^T (input_stats.h); consumed. Its
//            overall scale does not change the result (only `loss`).
//   info:    optional, receives the loss and diagnostics.
// Errors (kInvalidArgument, naming options.name): ValidateQuantSpec's; a
// hessian of the wrong size; non-finite weights or Hessian entries;
// block_size <= 0 or damp_percent < 0; a Hessian that is not positive
// definite even after damping (the message gives the column and pivot).
Result<QMatrix> QuantizeGptq(const float* w, int rows, int cols, std::vector<double> hessian,
                             const GptqOptions& options, GptqInfo* info = nullptr);

}  // namespace famq::quant
