#include "quant/quant_spec.h"

namespace famq::quant {

// The int8/int4 GEMM/GEMV kernels consume input features in blocks of 32
// (one block of int4 codes = 16 bytes, one dotprod/VNNI lane group = 4x8).
constexpr int kKernelBlock = 32;

Status ValidateQuantSpec(const QuantSpec& spec, int rows, int cols, const std::string& name) {
  if (spec.bits != 2 && spec.bits != 3 && spec.bits != 4 && spec.bits != 6 && spec.bits != 8) {
    return InvalidArgument(name + ": wbits " + std::to_string(spec.bits) + " is not supported (2, 3, 4, 6 or 8)");
  }
  if (rows <= 0 || cols <= 0) {
    return InvalidArgument(name + ": shape [" + std::to_string(rows) + ", " + std::to_string(cols) +
                           "] is empty");
  }
  if (cols % kKernelBlock != 0) {
    return InvalidArgument(name + "'s " + std::to_string(cols) + " input features are not a multiple of " +
                           std::to_string(kKernelBlock) + " (the quantized kernels' block)");
  }
  const int group = EffectiveGroupSize(spec, cols);
  if (group < 0 || group > cols || cols % group != 0) {
    return InvalidArgument("group " + std::to_string(spec.group_size) + " does not divide " + name + "'s " +
                           std::to_string(cols) + " input features");
  }
  if (group % kKernelBlock != 0) {
    return InvalidArgument("group " + std::to_string(group) + " of " + name + " is not a multiple of " +
                           std::to_string(kKernelBlock) + " (the quantized kernels' block)");
  }
  return Status::Ok();
}

}  // namespace famq::quant
