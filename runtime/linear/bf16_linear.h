// A linear layer y = x W^T (+ b) whose weights are BF16 tensors read in place
// from a mapped checkpoint: no copy, 2 bytes per weight (the fp32 layer,
// linear/fp32_linear.h, packs its own 4-byte copy). x, y and b are fp32 and
// the sums are fp32 (specification: kernels/bf16gemm.h). Several tensors can
// be stacked along the output dimension (q|k|v, gate|up): each block keeps
// its own pointer and writes its own output columns.
//
// Create plans the work split (tiles of output rows) once; Run then never
// allocates and holds no mutable state, so it is reentrant.
#pragma once

#include <pthreadpool.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "kernels/bf16gemm.h"
#include "kernels/isa.h"
#include "model/safetensors.h"

namespace famq {

class Bf16Linear {
 public:
  // blocks: weights [out_i, in] of dtype BF16, stacked in order; referenced,
  //   not copied: their storage (the mapped checkpoint) must outlive the layer.
  // biases: one per block (any floating dtype, converted to fp32 once) or
  //   empty / all without a value for none.
  // isa: whose kernel to use, normally ActiveIsa().
  // name: the layer's name, prefixed to every error message.
  // Returns: the layer; InvalidArgument when a block is not BF16 (the message
  // names its dtype), is not 2-D, the blocks disagree on `in`, or a bias has
  // the wrong length; Unsupported when isa is not available here.
  static Result<Bf16Linear> Create(const std::vector<const TensorView*>& blocks,
                                   const std::vector<const std::optional<TensorView>*>& biases, Isa isa,
                                   const std::string& name);

  // x: [batch][in_features]; y: [batch][out_features], written in full; they
  // must not overlap. pool: parallelizes over tiles of output rows; nullptr
  // runs inline. Does not allocate.
  // Returns: Ok; InvalidArgument when x or y is null (batch > 0).
  Status Run(const float* x, float* y, size_t batch, pthreadpool_t pool) const;

  int in_features() const { return in_; }
  int out_features() const { return out_; }
  Isa isa() const { return isa_; }
  // Bytes one run reads: 2 per weight, 4 per bias value.
  size_t weight_bytes() const;

 private:
  struct Block {
    const uint8_t* w;   // row 0 of the tensor, in the mapped file
    size_t rows;
    size_t col;         // first output column of this block
  };
  struct Tile {
    size_t block;
    size_t r0, r1;  // rows of that block
  };

  std::vector<Block> blocks_;
  std::vector<Tile> tiles_;
  std::vector<float> bias_;  // [out] or empty
  Bf16GemmFn gemm_ = nullptr;
  Isa isa_ = Isa::kRef;
  int in_ = 0;
  int out_ = 0;
  std::string name_;
};

}  // namespace famq
