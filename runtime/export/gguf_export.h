// famq-rt export: a finalized weight-only .famq as a GGUF file that llama.cpp
// (and ollama, LM Studio, node-llama-cpp, llama.rn) runs. docs/GGUF.md.
//
// Mappings (per-file; refused otherwise, before anything is written):
//   W4 symmetric, group a multiple of 32 or per channel -> Q4_0: nibble =
//     code + 8, d = the group's scale, repeated in every 32-block of the group;
//   W4 with zero points -> Q4_1: nibble = code + 8, d = scale,
//     m = -scale * (8 + zero) (so d * nibble + m = scale * (code - zero));
//   W8 symmetric -> Q8_0: qs = code, d = scale.
// The one inexact step: d and m are stored as fp16 (round to nearest even),
// a relative change of at most 2^-11 of each scale (and of m), and scales
// below 2^-14 (fp16 subnormals) lose more; a scale above 65504 is refused.
// Refused: static W8A8 (GGUF has no static int8 activations), W8 with zero
// points, W3/W2, groups that are not a multiple of 32, llama3 rope scaling,
// tokenizers llama.cpp cannot reproduce (the reason is named).
//
// AWQ input multipliers are folded: the q|k|v one into attn_norm, the
// gate|up one into ffn_norm (an RMSNorm weight times the multiplier), the
// down_proj one into up_proj's rows (each row's scales, and Q4_1's m, times the
// multiplier of that row), the o_proj one into v_proj's rows when every query
// head has its own value head. Under grouped-query attention two query heads
// read one value row, so an o_proj multiplier that is not all ones cannot be
// folded and the model is refused (famq's AWQ does not scale o_proj under GQA).
//
// A quantized embedding / untied head (finalize --head-bits 8, 6 or 4) becomes
// token_embd / output in its own type (W8 and W6 -> Q8_0, W4 -> Q4_0, or Q4_1
// with zero points), as exact as the blocks; kept in floating point they keep the
// .famq's dtype (BF16 stays BF16, F16 F16, F32 F32); norms and biases are F32. Llama's q/k rows are permuted
// to llama.cpp's rotary layout (pairs (i, i + d/2) of a head become (2i, 2i+1));
// Qwen2/Qwen3 use llama.cpp's NEOX rope and need none.
#pragma once

#include <cstdint>
#include <string>

#include "core/status.h"

namespace famq {

struct GgufExportReport {
  std::string architecture;   // "qwen3", "qwen2", "llama"
  std::string weight_type;    // "Q4_0", "Q4_1", "Q8_0"
  std::string pre_tokenizer;  // "qwen2", "llama-bpe", "gpt-2"
  uint64_t tensors = 0;
  uint64_t bytes = 0;
  bool folded_multipliers = false;  // AWQ input multipliers were folded
};

// Reads and verifies `qmodel_path` (the full .famq verifier), checks that it
// maps onto GGUF exactly (see above) and writes `out_path` atomically.
// kInvalidFormat / kIoError / kNotFound: the input; kUnsupported: a scheme,
// architecture or tokenizer GGUF cannot hold exactly (nothing is written).
Result<GgufExportReport> ExportGguf(const std::string& qmodel_path, const std::string& out_path);

}  // namespace famq
