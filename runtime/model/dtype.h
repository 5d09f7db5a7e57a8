// Element types of checkpoint tensors and their conversion to fp32.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

namespace famq {

enum class DType { kF32, kF16, kBF16 };

// "F32" / "F16" / "BF16" as written in safetensors headers.
std::optional<DType> ParseSafetensorsDType(std::string_view name);
const char* DTypeName(DType dtype);
size_t DTypeSize(DType dtype);

inline float Bf16ToF32(uint16_t h) {
  uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// IEEE 754 binary16 -> binary32, exact for every input (subnormals, inf, NaN).
float F16ToF32(uint16_t h);

// IEEE 754 binary32 -> binary16, round to nearest, ties to even; overflow to
// infinity (65520 and above round to it); NaN stays a quiet NaN with its top
// payload bits. The one conversion the KV cache, the GGUF writer and the
// quantized model's fp16 scales share.
uint16_t F32ToF16(float x);

// Converts n elements of `dtype` starting at `src` (any alignment) to fp32.
void ConvertToF32(DType dtype, const void* src, size_t n, float* dst);

}  // namespace famq
