// An fp32 linear layer y = x W^T + b on XNNPACK's f32 fully-connected
// operator. Several checkpoint tensors can be stacked along the output
// dimension (q|k|v, gate|up) so one GEMM serves them all.
#pragma once

#include <pthreadpool.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "model/safetensors.h"

struct xnn_operator;

namespace famq {

// Initializes XNNPACK once per process (thread-safe).
Status InitXnnpack();

class Linear {
 public:
  // blocks: weights [out_i, in] stacked in order; biases: one per block or all empty.
  static Result<Linear> Create(const std::vector<const TensorView*>& blocks,
                               const std::vector<const std::optional<TensorView>*>& biases,
                               const std::string& name);

  // y[batch][out] = x[batch][in] W^T (+ b). Does not allocate.
  Status Run(const float* x, float* y, size_t batch, pthreadpool_t pool) const;

  int in_features() const { return in_; }
  int out_features() const { return out_; }

 private:
  struct OpDeleter {
    void operator()(xnn_operator* op) const;
  };
  std::unique_ptr<xnn_operator, OpDeleter> op_;
  int in_ = 0;
  int out_ = 0;
  std::string name_;
};

}  // namespace famq
