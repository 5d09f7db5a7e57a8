// Quantized models (schema/qmodel.fbs, identifier "FQMD"): written by
// finalize, read by every command that runs one. A file is verified before
// any field is used: size bounds, identifier, the FlatBuffers verifier,
// format version, then every invariant the engine relies on (config parses,
// one quantized linear per block slot with the shapes the config implies,
// code / scale / zero-point counts and ranges, finite scales, the fp tensors
// the architecture needs with the right shapes). Errors name the file and
// the tensor: "q.famq: layers.2.down_proj: 4-bit codes hold 24576 bytes, expected 49152".
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/file.h"
#include "core/status.h"
#include "engine/int8_linear.h"
#include "model/config.h"
#include "model/dtype.h"
#include "model/safetensors.h"
#include "quant/qmatrix.h"
#include "schema/qmodel_generated.h"

namespace famq {

inline constexpr uint32_t kQModelFormatVersion = 1;
inline constexpr size_t kMaxQModelBytes = (size_t{1} << 31) - 1;  // FlatBuffers' 2 GiB limit

// --- writing ---------------------------------------------------------------

struct QLinearContents {
  std::string name;                    // "layers.3.qkv"
  QMatrix w;
  std::vector<float> bias;             // [rows] or empty
  std::vector<float> input_multiplier; // [cols] or empty
  ActQuantParams act_in, act_out;      // W8A8 static only
};

struct FloatTensorContents {
  std::string name;                    // Hugging Face name
  DType dtype = DType::kF32;
  std::vector<uint32_t> shape;
  std::vector<uint8_t> raw;            // little-endian values of dtype
};

struct QModelProvenanceContents {
  std::string tool, calibration, bundle_payload_sha256, bundle_key_id, calib_source;
  fb::QMethod method = fb::QMethod::Rtn;
  uint32_t samples = 0;
  uint64_t calib_tokens = 0;
  float private_mix = 0.0f;
  fb::ActEstimator estimator = fb::ActEstimator::MinMax;
  float percentile = 0.0f, smooth_alpha = 0.0f, gptq_damp = 0.0f;
  bool gptq_act_order = false;
  float seconds = 0.0f;
  uint64_t peak_rss_bytes = 0;
};

struct QModelContents {
  fb::QScheme scheme = fb::QScheme::WeightOnly;
  int wbits = 4, abits = 0, group_size = 0;  // group 0: per channel
  bool symmetric = false;
  std::string config_json, tokenizer_json, tokenizer_config_json, generation_config_json;
  std::string source_config_sha256, tokenizer_sha256, source_name;
  std::vector<FloatTensorContents> float_tensors;
  std::vector<QLinearContents> linears;  // 4 per layer: qkv, o_proj, gate_up, down_proj
  QModelProvenanceContents provenance;
};

// The file bytes of `contents` (no validation beyond what serialization needs).
Result<std::vector<uint8_t>> SerializeQModel(const QModelContents& contents);

// --- reading ---------------------------------------------------------------

// A verified quantized model. Move-only; accessors point into owned bytes.
class QModel {
 public:
  static Result<QModel> Open(const std::string& path);
  // The same on bytes in memory; `origin` names them in errors.
  static Result<QModel> FromBytes(std::vector<uint8_t> bytes, const std::string& origin);

  const fb::QModel& root() const { return *root_; }
  const ModelConfig& config() const { return config_; }
  const std::string& origin() const { return origin_; }
  size_t file_size() const { return size_; }

  // Linear `index` (4 per layer) unpacked to the canonical form.
  QMatrix Matrix(int index) const;
  // A floating-point tensor by its Hugging Face name (data points into the file).
  Result<TensorView> Tensor(const std::string& name) const;

 private:
  Status Validate();
  std::unique_ptr<MappedFile> file_;
  std::vector<uint8_t> bytes_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string origin_;
  const fb::QModel* root_ = nullptr;
  ModelConfig config_;
};

// The block slot names of linear i: "layers.<i/4>.<qkv|o_proj|gate_up|down_proj>".
std::string QLinearName(int layer, int slot);

}  // namespace famq
