#include "linear/int8_linear.h"

#include <xnnpack.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "linear/fp32_linear.h"

namespace famq {

void StaticInt8Linear::OpDeleter::operator()(xnn_operator* op) const { xnn_delete_operator(op); }

namespace {

Status CheckAct(const ActQuantParams& a, const std::string& what) {
  if (!std::isfinite(a.scale) || a.scale <= 0.0f || a.zero_point < -128 || a.zero_point > 127) {
    return InvalidArgument(what + " activation quantization (scale " + std::to_string(a.scale) + ", zero point " +
                           std::to_string(a.zero_point) + ") is invalid");
  }
  return Status::Ok();
}

Status XnnError(const std::string& name, const char* call, xnn_status st) {
  return Internal(name + ": " + call + " failed with XNNPACK status " + std::to_string(static_cast<int>(st)));
}

}  // namespace

Result<StaticInt8Linear> StaticInt8Linear::Create(const QMatrix& w, std::span<const float> bias, ActQuantParams input,
                                                  ActQuantParams output, int max_batch, const std::string& name) {
  FAMQ_RETURN_IF_ERROR(InitXnnpack());
  if (w.bits != 8 || w.group_size != w.cols) {
    return InvalidArgument(name + ": W8A8 needs 8-bit per-channel weights (got " + std::to_string(w.bits) +
                           " bits, group " + std::to_string(w.group_size) + ")");
  }
  for (int8_t z : w.zeros) {
    if (z != 0) return InvalidArgument(name + ": W8A8 weights must be symmetric (XNNPACK qc8 has no weight zero point)");
  }
  if (!bias.empty() && bias.size() != static_cast<size_t>(w.rows)) return InvalidArgument(name + ": bias size mismatch");
  if (max_batch <= 0) return InvalidArgument(name + ": max_batch must be positive");
  FAMQ_RETURN_IF_ERROR(CheckAct(input, name + ": input"));
  FAMQ_RETURN_IF_ERROR(CheckAct(output, name + ": output"));

  StaticInt8Linear lin;
  lin.in_ = w.cols;
  lin.out_ = w.rows;
  lin.max_batch_ = max_batch;
  lin.name_ = name;
  const size_t in = static_cast<size_t>(w.cols), out = static_cast<size_t>(w.rows);

  // A zero weight scale (an all-zero row) would make XNNPACK's requantization
  // scale zero, which it refuses: any positive scale reproduces zeros.
  std::vector<float> kernel_scale(w.scales.begin(), w.scales.end());
  for (float& s : kernel_scale) {
    if (!(s > 0.0f)) s = 1.0f;
  }
  std::vector<int32_t> qbias;
  if (!bias.empty()) {
    qbias.resize(out);
    for (size_t r = 0; r < out; ++r) {
      const double q = std::nearbyint(static_cast<double>(bias[r]) / (static_cast<double>(input.scale) * kernel_scale[r]));
      qbias[r] = static_cast<int32_t>(std::clamp(q, -2147483648.0, 2147483647.0));
    }
  }

  xnn_operator_t op = nullptr;
  xnn_status st = xnn_create_convert_nc_f32_qs8(in, in, in, input.scale, static_cast<int8_t>(input.zero_point), -128,
                                                127, 0, &op);
  if (st != xnn_status_success) return XnnError(name, "xnn_create_convert_nc_f32_qs8", st);
  lin.quantize_.reset(op);

  st = xnn_create_convolution2d_nhwc_qc8(
      /*padding*/ 0, 0, 0, 0, /*kernel*/ 1, 1, /*subsampling*/ 1, 1, /*dilation*/ 1, 1, /*groups*/ 1, in, out,
      /*input_channel_stride*/ in, /*output_channel_stride*/ out, static_cast<int8_t>(input.zero_point), input.scale,
      kernel_scale.data(), w.codes.data(), qbias.empty() ? nullptr : qbias.data(),
      static_cast<int8_t>(output.zero_point), output.scale, -128, 127, 0, &op);
  if (st != xnn_status_success) return XnnError(name, "xnn_create_convolution2d_nhwc_qc8", st);
  lin.conv_.reset(op);

  st = xnn_create_convert_nc_qs8_f32(out, out, out, output.scale, static_cast<int8_t>(output.zero_point), 0, &op);
  if (st != xnn_status_success) return XnnError(name, "xnn_create_convert_nc_qs8_f32", st);
  lin.dequantize_.reset(op);

  lin.in_q_ = std::make_unique<std::vector<int8_t>>(static_cast<size_t>(max_batch) * in);
  lin.out_q_ = std::make_unique<std::vector<int8_t>>(static_cast<size_t>(max_batch) * out);
  return lin;
}

Status StaticInt8Linear::Run(const float* x, float* y, size_t batch, pthreadpool_t pool) const {
  if (batch == 0 || batch > static_cast<size_t>(max_batch_)) {
    return InvalidArgument(name_ + ": batch " + std::to_string(batch) + " outside [1, " + std::to_string(max_batch_) + "]");
  }
  int8_t* xq = in_q_->data();
  int8_t* yq = out_q_->data();
  xnn_status st = xnn_setup_convert_nc_f32_qs8(quantize_.get(), batch, x, xq, pool);
  if (st == xnn_status_success) st = xnn_run_operator(quantize_.get(), pool);
  if (st != xnn_status_success) return XnnError(name_, "f32 -> qs8", st);
  // The tokens are the width of a 1 x batch image.
  st = xnn_setup_convolution2d_nhwc_qc8(conv_.get(), 1, 1, batch, xq, yq, pool);
  if (st == xnn_status_success) st = xnn_run_operator(conv_.get(), pool);
  if (st != xnn_status_success) return XnnError(name_, "qc8 convolution", st);
  st = xnn_setup_convert_nc_qs8_f32(dequantize_.get(), batch, yq, y, pool);
  if (st == xnn_status_success) st = xnn_run_operator(dequantize_.get(), pool);
  if (st != xnn_status_success) return XnnError(name_, "qs8 -> f32", st);
  return Status::Ok();
}

}  // namespace famq
