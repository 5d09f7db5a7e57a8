// Quantized models (schema/qmodel.fbs, identifier "FQMD"): written by
// finalize, read by every command that runs one. A file is verified before
// any field is used: size bounds, identifier, the FlatBuffers verifier,
// format version, then every invariant the engine relies on (config parses,
// one quantized linear per block slot with the shapes the config implies,
// code / scale / zero-point counts and ranges, finite scales, the fp tensors
// the architecture needs with the right shapes). Errors name the file and
// the tensor: "q.famq: layers.2.down_proj: 4-bit codes hold 24576 bytes, expected 49152".
//
// Integrity (format version 2; docs/SECURITY.md): every record carries an
// XXH64 digest (core/checksum.h) in QModel.integrity. A record is a fixed
// sequence of its field values, each scalar as 8 little-endian bytes and each
// string or vector as its element count and the XXH64 of its stored bytes
// (an absent one as 2^64-1, no digest); the record's digest is the XXH64 of
// that sequence, seeded by the record kind (1 header, 2 linear, 3 fp tensor).
// - The header record (every QModel field but the tensors, the provenance and
//   the two digest lists included) is checked when the file is opened.
// - A linear or fp tensor is checked when it is first used (Matrix(),
//   Tensor(), VerifyLinear()): opening does not read the weights, so the
//   check costs one pass over bytes the loader reads anyway.
// - A quantized embedding / head (QModel.embedding, QModel.lm_head) is a
//   linear record (kind 2) whose digest is QIntegrity.embedding / .lm_head.
//   When either record is present, the header record appends, after the
//   fields above, those two digests (each 2^64-1 when its record is absent);
//   files without them keep the version-2 header unchanged, so stripping the
//   records changes the header digest.
// A mismatch is kInvalidFormat naming the file and the record:
// "q.famq: layers.3.qkv: checksum mismatch (...): the file is corrupt or was modified".
// Files of format version 1 (no integrity data) are refused: finalize them again.
// The digest detects corruption and accidental edits, not a forger who
// recomputes it (SealQModel does exactly that): authenticity needs a signature.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/file.h"
#include "core/status.h"
#include "linear/int8_linear.h"
#include "model/config.h"
#include "model/dtype.h"
#include "model/safetensors.h"
#include "kernels/qgemm_pack.h"
#include "core/qmatrix.h"
#include "schema/qmodel_generated.h"

namespace famq {

inline constexpr uint32_t kQModelFormatVersion = 2;  // 2: integrity data required
inline constexpr char kQModelIntegrityAlgorithm[] = "xxh64-records/1";
inline constexpr size_t kMaxQModelBytes = (size_t{1} << 31) - 1;  // FlatBuffers' 2 GiB limit

// --- writing ---------------------------------------------------------------

struct QLinearContents {
  std::string name;                    // "layers.3.qkv"
  QMatrix w;
  // Set by PackRecordCodes: w's codes at their stored width (w.codes then
  // empty, w's other fields kept); serialized as they are.
  std::vector<uint8_t> packed_codes;
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
  // The quantized token embedding (name kQEmbeddingName; then float_tensors
  // holds no "model.embed_tokens.weight") and an untied head quantized too
  // (kQLmHeadName; then no "lm_head.weight"). Weight-only codes, no bias or
  // input multiplier.
  std::optional<QLinearContents> embedding, lm_head;
  QModelProvenanceContents provenance;
};

// Packs l->w.codes at the width l->w.bits stores them (what serialization
// would write) into l->packed_codes and frees w.codes. No-op when packed.
void PackRecordCodes(QLinearContents* l);

inline constexpr char kQEmbeddingName[] = "model.embed_tokens";
inline constexpr char kQLmHeadName[] = "lm_head";

// The file bytes of `contents` (no validation beyond what serialization needs),
// sealed with their integrity data.
Result<std::vector<uint8_t>> SerializeQModel(const QModelContents& contents);
// The same, freeing each record's weights of `contents` as soon as they are
// in the buffer being built (peak: the buffer and the copy returned, not the
// contents on top); `contents` keeps its other fields (provenance, names).
Result<std::vector<uint8_t>> SerializeQModel(QModelContents&& contents);

// A serialized model in the buffer it was built in: its bytes are
// buffer.get() + offset .. + size (FlatBuffers builds back to front, so the
// file sits at the buffer's end; the pages before it were never touched).
struct SerializedQModel {
  AlignedBuffer buffer;
  size_t offset = 0, size = 0;
  const uint8_t* data() const { return buffer.get() + offset; }
};

// SerializeQModel(&&) without the copy: the builder's own buffer is returned
// (peak: the remaining records and the buffer, never the file twice).
Result<SerializedQModel> SerializeQModelInPlace(QModelContents&& contents);

// Recomputes every integrity digest of a serialized model in place (the last
// step of SerializeQModel). `bytes` must pass the FlatBuffers verifier and
// carry a QIntegrity table whose lists match the tensor counts; otherwise
// kInvalidFormat and nothing is changed.
Status SealQModel(std::vector<uint8_t>* bytes);
Status SealQModel(uint8_t* data, size_t size);

// --- reading ---------------------------------------------------------------

// A verified quantized model. Move-only; accessors point into owned bytes.
class QModel {
 public:
  // Reads the whole file into private memory and verifies it. The running
  // model never reads the file again: truncating or rewriting it afterwards
  // changes nothing (a file that changes size while it is read is refused).
  static Result<QModel> Open(const std::string& path);
  // The same on bytes in memory; `origin` names them in errors.
  static Result<QModel> FromBytes(std::vector<uint8_t> bytes, const std::string& origin);
  // The same on a model just serialized (SerializeQModelInPlace), no copy.
  static Result<QModel> FromSerialized(SerializedQModel serialized, const std::string& origin);

  const fb::QModel& root() const { return *root_; }
  const ModelConfig& config() const { return config_; }
  const std::string& origin() const { return origin_; }
  size_t file_size() const { return size_; }
  // The model's bytes as read or given (what FinalizeToFile writes once they verify).
  std::span<const uint8_t> bytes() const { return {data_, size_}; }

  // Checks linear `index`'s digest (once; later calls are free). Fields of
  // root().linears()->Get(index) may be used after it returns Ok.
  Status VerifyLinear(int index) const;
  // Linear `index` (4 per layer), verified and unpacked to the canonical form.
  Result<QMatrix> Matrix(int index) const;
  // Linear `index` verified and read in place (every stored width: 4 bits as
  // nibbles, 2 and 3 as a bit stream, 8 one per byte); valid while this model
  // lives and the record is not released.
  Result<QMatrixView> MatrixView(int index) const;
  // A floating-point tensor by its Hugging Face name, verified (data points into the model's bytes).
  Result<TensorView> Tensor(const std::string& name) const;
  // Every record's digest (what Open leaves to first use), e.g. for `famq-rt info --verify`.
  Status VerifyAll() const;

  // The quantized embedding / untied head records (null when the file keeps
  // them in floating point), shapes and ranges validated; their weights are
  // digest-checked by the accessors below.
  const fb::QuantLinear* embedding_record() const { return root_->embedding(); }
  const fb::QuantLinear* lm_head_record() const { return root_->lm_head(); }
  // The quantized embedding, verified and unpacked (kNotFound when absent).
  Result<QMatrix> EmbeddingMatrix() const;
  // The quantized head: the untied record, else the tied quantized
  // embedding (kNotFound when the head is kept in floating point).
  Result<QMatrix> HeadMatrix() const;
  // The quantized head read in place (as HeadMatrix; 4, 6 or 8 bits).
  Result<QMatrixView> HeadView() const;
  // Releases the memory of a record's codes once its weights live elsewhere
  // (packed by the engine): the pages go back to the system, and any later
  // use of the record (Matrix, MatrixView, Verify*, the export) is refused
  // with kInvalidArgument ("released"). Header fields stay readable. Lowers a
  // running model's memory to one copy of its weights (docs/DEVICE.md).
  void ReleaseLinear(int index);
  void ReleaseEmbedding();  // the quantized embedding record (the tied head's too)
  void ReleaseLmHead();
  // Checks the quantized embedding's / head's digest (once); Ok when absent.
  Status VerifyEmbedding() const;
  Status VerifyLmHead() const;
  // "fp BF16 (tied)", "W8 g32 symmetric (tied)", "W4 g32 symmetric (untied; embedding W4 g32 symmetric)".
  std::string HeadDescription() const;

 private:
  Status Validate();
  Status VerifyFloatTensor(uint32_t index) const;
  Result<uint32_t> FindTensor(const std::string& name) const;  // unverified
  TensorView View(uint32_t index) const;

  AlignedBuffer owned_;  // Open: the file's bytes; FromSerialized: the builder's buffer
  std::vector<uint8_t> bytes_;         // FromBytes
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string origin_;
  const fb::QModel* root_ = nullptr;
  ModelConfig config_;
  // 1 once the record's digest matched, 2 once released; written by const
  // accessors, possibly from several threads.
  std::unique_ptr<std::atomic<uint8_t>[]> linear_ok_, tensor_ok_;
  std::unique_ptr<std::atomic<uint8_t>> embedding_ok_, lm_head_ok_;
};

// Unpacks a stored quantized linear (codes, scales, zero points) to the canonical form.
QMatrix UnpackQuantLinear(const fb::QuantLinear& l);

// Whether every zero point of a stored quantized linear is 0 (absent zero points: yes).
bool RecordIsSymmetric(const fb::QuantLinear& l);

// The block slot names of linear i: "layers.<i/4>.<qkv|o_proj|gate_up|down_proj>".
std::string QLinearName(int layer, int slot);

}  // namespace famq
