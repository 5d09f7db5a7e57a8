#include "linear/fp32_linear.h"

#include <xnnpack.h>

#include <limits>
#include <mutex>

namespace famq {

Status InitXnnpack() {
  static std::once_flag once;
  static xnn_status status = xnn_status_success;
  std::call_once(once, [] { status = xnn_initialize(/*allocator=*/nullptr); });
  if (status != xnn_status_success) {
    return Internal("xnn_initialize failed with status " + std::to_string(static_cast<int>(status)) +
                    " (unsupported CPU?)");
  }
  return Status::Ok();
}

void Linear::OpDeleter::operator()(xnn_operator* op) const { xnn_delete_operator(op); }

Result<Linear> Linear::Create(const std::vector<const TensorView*>& blocks,
                              const std::vector<const std::optional<TensorView>*>& biases,
                              const std::string& name) {
  FAMQ_RETURN_IF_ERROR(InitXnnpack());
  if (blocks.empty()) return Internal(name + ": no weight blocks");
  Linear lin;
  lin.name_ = name;
  lin.in_ = static_cast<int>(blocks[0]->shape[1]);
  int64_t out = 0;
  for (const TensorView* b : blocks) {
    if (b->shape.size() != 2 || b->shape[1] != lin.in_) return Internal(name + ": mismatched weight blocks");
    out += b->shape[0];
  }
  lin.out_ = static_cast<int>(out);

  // fp32 staging copy; XNNPACK packs its own layout at create time and the
  // staging buffer is released right after.
  std::vector<float> w(static_cast<size_t>(out) * lin.in_);
  std::vector<float> bias;
  size_t row = 0;
  for (const TensorView* b : blocks) {
    ConvertToF32(b->dtype, b->data, static_cast<size_t>(b->numel()), w.data() + row * lin.in_);
    row += static_cast<size_t>(b->shape[0]);
  }
  bool has_bias = !biases.empty() && biases[0]->has_value();
  if (has_bias) {
    bias.resize(static_cast<size_t>(out));
    size_t o = 0;
    for (const auto* b : biases) {
      const TensorView& t = b->value();
      ConvertToF32(t.dtype, t.data, static_cast<size_t>(t.numel()), bias.data() + o);
      o += static_cast<size_t>(t.numel());
    }
  }
  xnn_operator_t op = nullptr;
  xnn_status st = xnn_create_fully_connected_nc_f32(
      static_cast<size_t>(lin.in_), static_cast<size_t>(out), static_cast<size_t>(lin.in_),
      static_cast<size_t>(out), w.data(), has_bias ? bias.data() : nullptr,
      -std::numeric_limits<float>::infinity(), std::numeric_limits<float>::infinity(), /*flags=*/0, &op);
  if (st != xnn_status_success) {
    return Internal(name + ": xnn_create_fully_connected_nc_f32 failed with status " +
                    std::to_string(static_cast<int>(st)));
  }
  lin.op_.reset(op);
  return lin;
}

Status Linear::Run(const float* x, float* y, size_t batch, pthreadpool_t pool) const {
  xnn_status st = xnn_setup_fully_connected_nc_f32(op_.get(), batch, x, y, pool);
  if (st == xnn_status_success) st = xnn_run_operator(op_.get(), pool);
  if (st != xnn_status_success) {
    return Internal(name_ + ": XNNPACK fully-connected failed with status " + std::to_string(static_cast<int>(st)));
  }
  return Status::Ok();
}

}  // namespace famq
