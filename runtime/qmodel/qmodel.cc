#include "qmodel/qmodel.h"

#include "engine/engine.h"

#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <new>

#include <sys/mman.h>
#include <unistd.h>

#include "core/checksum.h"
#include "model/dtype.h"
#include "qmodel/code_packing.h"

namespace famq {

bool RecordIsSymmetric(const fb::QuantLinear& l) {
  if (l.zeros() == nullptr) return true;
  for (int8_t z : *l.zeros()) {
    if (z != 0) return false;
  }
  return true;
}

std::string QLinearName(int layer, int slot) {
  return "layers." + std::to_string(layer) + "." + LinearSlotName(static_cast<LinearSlot>(slot));
}

namespace {

size_t CodeBytes(int bits, size_t count) { return PackedCodeBytes(bits, count); }

fb::TensorDType ToFb(DType d) {
  switch (d) {
    case DType::kF32: return fb::TensorDType::F32;
    case DType::kF16: return fb::TensorDType::F16;
    case DType::kBF16: return fb::TensorDType::BF16;
  }
  return fb::TensorDType::F32;
}

// --- integrity records (the layout is specified in qmodel.h) ---------------

enum RecordKind : uint64_t { kHeaderRecord = 1, kLinearRecord = 2, kFloatTensorRecord = 3 };
constexpr uint64_t kAbsent = ~uint64_t{0};

class Record {
 public:
  void U64(uint64_t v) {
    for (int i = 0; i < 8; ++i) buf_.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
  }
  void F32(float f) {
    uint32_t bits = 0;
    std::memcpy(&bits, &f, 4);
    U64(bits);
  }
  void Bytes(const uint8_t* data, size_t count, size_t bytes) {
    if (data == nullptr) return U64(kAbsent);
    U64(count);
    U64(Xxh64(data, bytes));
  }
  template <typename T>
  void Vec(const flatbuffers::Vector<T>* v) {
    if (v == nullptr) return U64(kAbsent);
    Bytes(v->Data(), v->size(), size_t{v->size()} * sizeof(T));
  }
  void Str(const flatbuffers::String* v) {
    if (v == nullptr) return U64(kAbsent);
    Bytes(reinterpret_cast<const uint8_t*>(v->data()), v->size(), v->size());
  }
  void Act(const fb::ActQuant* a) {
    if (a == nullptr) return U64(kAbsent);
    U64(1);
    F32(a->scale());
    U64(static_cast<uint32_t>(a->zero_point()));
  }
  uint64_t Digest(RecordKind kind) const { return Xxh64(buf_.data(), buf_.size(), kind); }

 private:
  std::string buf_;
};

uint64_t LinearDigest(const fb::QuantLinear& l) {
  Record r;
  r.Str(l.name());
  r.U64(l.bits());
  r.U64(l.rows());
  r.U64(l.cols());
  r.U64(l.group_size());
  r.Vec(l.codes());
  r.Vec(l.scales());
  r.Vec(l.zeros());
  r.Vec(l.bias());
  r.Vec(l.input_multiplier());
  r.Act(l.act_in());
  r.Act(l.act_out());
  if (l.scales_f16() != nullptr) r.Vec(l.scales_f16());  // absent: the record digests as before the field existed
  return r.Digest(kLinearRecord);
}

uint64_t FloatTensorDigest(const fb::FloatTensor& t) {
  Record r;
  r.Str(t.name());
  r.U64(static_cast<uint8_t>(t.dtype()));
  r.Vec(t.shape());
  r.Vec(t.f32());
  r.Vec(t.half());
  return r.Digest(kFloatTensorRecord);
}

// Every field of the root but the tensors' contents (each has its own record,
// and the header covers their digests) and the header digest itself.
uint64_t HeaderDigest(const fb::QModel& m) {
  Record r;
  r.U64(m.format_version());
  r.U64(static_cast<uint8_t>(m.scheme()));
  r.U64(m.wbits());
  r.U64(m.abits());
  r.U64(m.group_size());
  r.U64(m.symmetric() ? 1 : 0);
  for (const flatbuffers::String* str : {m.config_json(), m.tokenizer_json(), m.tokenizer_config_json(),
                                         m.generation_config_json(), m.source_config_sha256(), m.tokenizer_sha256(),
                                         m.source_name()}) {
    r.Str(str);
  }
  r.U64(m.float_tensors() == nullptr ? kAbsent : m.float_tensors()->size());
  r.U64(m.linears() == nullptr ? kAbsent : m.linears()->size());
  if (const fb::QProvenance* p = m.provenance()) {
    r.U64(1);
    r.Str(p->tool());
    r.U64(static_cast<uint8_t>(p->method()));
    r.Str(p->calibration());
    r.Str(p->bundle_payload_sha256());
    r.Str(p->bundle_key_id());
    r.Str(p->calib_source());
    r.U64(p->samples());
    r.U64(p->calib_tokens());
    r.F32(p->private_mix());
    r.U64(static_cast<uint8_t>(p->estimator()));
    r.F32(p->percentile());
    r.F32(p->smooth_alpha());
    r.F32(p->gptq_damp());
    r.U64(p->gptq_act_order() ? 1 : 0);
    r.F32(p->seconds());
    r.U64(p->peak_rss_bytes());
  } else {
    r.U64(kAbsent);
  }
  if (const fb::QIntegrity* in = m.integrity()) {
    r.Str(in->algorithm());
    r.Vec(in->linears());
    r.Vec(in->float_tensors());
    // The quantized embedding / head digests, only where such a record exists
    // (a version-2 file without them keeps its header digest).
    if (m.embedding() != nullptr || m.lm_head() != nullptr) {
      r.U64(m.embedding() != nullptr ? in->embedding() : kAbsent);
      r.U64(m.lm_head() != nullptr ? in->lm_head() : kAbsent);
    }
  } else {
    r.U64(kAbsent);
  }
  return r.Digest(kHeaderRecord);
}

std::string Hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016" PRIx64, v);
  return buf;
}

Status ChecksumMismatch(const std::string& at, uint64_t stored, uint64_t computed) {
  return InvalidFormat(at + ": checksum mismatch (stored " + Hex64(stored) + ", computed " + Hex64(computed) +
                       "): the file is corrupt or was modified after finalize");
}

}  // namespace

void PackRecordCodes(QLinearContents* l) {
  if (l->w.codes.empty()) return;
  std::vector<uint8_t> packed(CodeBytes(l->w.bits, l->w.codes.size()), 0);
  PackCodes(l->w.bits, l->w.codes.data(), l->w.codes.size(), packed.data());
  l->packed_codes = std::move(packed);
  std::vector<int8_t>().swap(l->w.codes);
}

namespace {

flatbuffers::Offset<fb::QuantLinear> BuildLinear(flatbuffers::FlatBufferBuilder& b, const QLinearContents& l) {
  const QMatrix& w = l.w;
  const auto name = b.CreateString(l.name);
  // Packed straight into the buffer (no packed copy beside it); the pointer
  // is used before the next builder call can move the buffer.
  const bool prepacked = w.codes.empty() && !l.packed_codes.empty();
  const size_t packed_bytes = prepacked ? l.packed_codes.size() : CodeBytes(w.bits, w.codes.size());
  uint8_t* packed = nullptr;
  const auto codes = b.CreateUninitializedVector(packed_bytes, &packed);
  if (prepacked) {
    std::memcpy(packed, l.packed_codes.data(), packed_bytes);
  } else {
    std::memset(packed, 0, packed_bytes);
    PackCodes(w.bits, w.codes.data(), w.codes.size(), packed);
  }
  // fp16 scales when every scale is exactly one (finalize --scale-dtype f16
  // rounds them so): half the bytes, nothing lost; zero points only when
  // some group has one.
  bool f16 = true, symmetric = true;
  std::vector<uint16_t> half(w.scales.size());
  for (size_t i = 0; i < w.scales.size() && f16; ++i) {
    half[i] = F32ToF16(w.scales[i]);
    f16 = F16ToF32(half[i]) == w.scales[i];
  }
  for (int8_t z : w.zeros) symmetric = symmetric && z == 0;
  const auto scales = f16 ? 0 : b.CreateVector(w.scales);
  const auto scales_f16 = f16 ? b.CreateVector(half) : 0;
  const auto zeros = symmetric ? 0 : b.CreateVector(w.zeros);
  const auto bias = l.bias.empty() ? 0 : b.CreateVector(l.bias);
  const auto mult = l.input_multiplier.empty() ? 0 : b.CreateVector(l.input_multiplier);
  fb::QuantLinearBuilder lb(b);
  lb.add_name(name);
  lb.add_bits(static_cast<uint8_t>(w.bits));
  lb.add_rows(static_cast<uint32_t>(w.rows));
  lb.add_cols(static_cast<uint32_t>(w.cols));
  lb.add_group_size(static_cast<uint32_t>(w.group_size));
  lb.add_codes(codes);
  if (f16) lb.add_scales_f16(scales_f16);
  else lb.add_scales(scales);
  if (!symmetric) lb.add_zeros(zeros);
  if (!l.bias.empty()) lb.add_bias(bias);
  if (!l.input_multiplier.empty()) lb.add_input_multiplier(mult);
  const fb::ActQuant in(l.act_in.scale, l.act_in.zero_point), out(l.act_out.scale, l.act_out.zero_point);
  lb.add_act_in(&in);
  lb.add_act_out(&out);
  return lb.Finish();
}

}  // namespace

namespace {

Status Released(const std::string& at) {
  return InvalidArgument(at + ": released (its weights now live only in the engine built from this model)");
}

// Record states (QModel's *_ok_ flags): digest not checked yet, checked, released.
constexpr uint8_t kUnverified = 0, kVerified = 1, kReleased = 2;

// Marks a record released, then gives its codes' pages back (nullptr: absent, nothing to do).
void ReleaseRecord(const fb::QuantLinear* l, std::atomic<uint8_t>* state) {
  if (l == nullptr) return;
  state->store(kReleased, std::memory_order_release);
  // The model's bytes are private and anonymous (read, not mapped): the pages read as zeros afterwards.
  if (const auto* codes = l->codes()) ReleasePages(codes->data(), codes->size());
}

QMatrixView ViewOfRecord(const fb::QuantLinear& l) {
  QMatrixView v;
  v.bits = l.bits();
  v.rows = static_cast<int>(l.rows());
  v.cols = static_cast<int>(l.cols());
  v.group_size = static_cast<int>(l.group_size());
  v.codes = l.codes()->data();
  v.code_count = l.codes()->size();
  v.nibbles = l.bits() == 4;
  v.bitstream = IsBitStreamWidth(l.bits());
  if (l.scales_f16() != nullptr) {
    v.scales_f16 = l.scales_f16()->data();
    v.scale_count = l.scales_f16()->size();
  } else {
    v.scales = l.scales()->data();
    v.scale_count = l.scales()->size();
  }
  if (l.zeros() != nullptr) {
    v.zeros = l.zeros()->data();
    v.zero_count = l.zeros()->size();
  }
  return v;
}

// Every stored width is read in place (2, 3 and 6 bits as a bit stream); a
// width the kernels cannot run would be refused here (kUnsupported).
Result<QMatrixView> ViewIfKernelWidth(const fb::QuantLinear& l, const std::string& at) {
  if (!StoredCodeBitsSupported(l.bits())) {
    return Unsupported(at + ": " + std::to_string(l.bits()) + "-bit codes are read through Matrix(), not in place");
  }
  return ViewOfRecord(l);
}

}  // namespace

QMatrix UnpackQuantLinear(const fb::QuantLinear& l) {
  QMatrix m;
  m.bits = l.bits();
  m.rows = static_cast<int>(l.rows());
  m.cols = static_cast<int>(l.cols());
  m.group_size = static_cast<int>(l.group_size());
  const size_t count = static_cast<size_t>(m.rows) * static_cast<size_t>(m.cols);
  m.codes.resize(count);
  UnpackCodes(m.bits, l.codes()->data(), count, m.codes.data());
  // Scales and zero points as the kernels' packing reads them (fp16 widened, absent zero points 0).
  const QMatrixView v = ViewOfRecord(l);
  m.scales.resize(v.scale_count);
  m.zeros.resize(v.scale_count);
  for (size_t g = 0; g < v.scale_count; ++g) {
    m.scales[g] = QMatrixViewScale(v, g);
    m.zeros[g] = static_cast<int8_t>(QMatrixViewZero(v, g));
  }
  return m;
}

Status SealQModel(std::vector<uint8_t>* bytes) { return SealQModel(bytes->data(), bytes->size()); }

Status SealQModel(uint8_t* data, size_t size) {
  flatbuffers::Verifier v(data, size, /*max_depth=*/16, /*max_tables=*/1u << 22);
  if (size < 12 || !fb::VerifySizePrefixedQModelBuffer(v)) {
    return InvalidFormat("SealQModel: not a verifiable quantized model");
  }
  const fb::QModel& m = *fb::GetSizePrefixedQModel(data);
  const fb::QIntegrity* in = m.integrity();
  const size_t linears = m.linears() == nullptr ? 0 : m.linears()->size();
  const size_t tensors = m.float_tensors() == nullptr ? 0 : m.float_tensors()->size();
  if (in == nullptr || in->linears() == nullptr || in->float_tensors() == nullptr ||
      in->linears()->size() != linears || in->float_tensors()->size() != tensors) {
    return InvalidFormat("SealQModel: the integrity table is missing or does not match the tensor counts");
  }
  // The buffer is ours and mutable; the generated accessors are const only.
  auto* lin = const_cast<flatbuffers::Vector<uint64_t>*>(in->linears());
  auto* flt = const_cast<flatbuffers::Vector<uint64_t>*>(in->float_tensors());
  for (uint32_t i = 0; i < linears; ++i) lin->Mutate(i, LinearDigest(*m.linears()->Get(i)));
  for (uint32_t i = 0; i < tensors; ++i) flt->Mutate(i, FloatTensorDigest(*m.float_tensors()->Get(i)));
  auto* table = const_cast<flatbuffers::Table*>(reinterpret_cast<const flatbuffers::Table*>(in));
  if (m.embedding() != nullptr &&
      !table->SetField<uint64_t>(fb::QIntegrity::VT_EMBEDDING, LinearDigest(*m.embedding()), 0)) {
    return InvalidFormat("SealQModel: the integrity table has no embedding field to seal");
  }
  if (m.lm_head() != nullptr && !table->SetField<uint64_t>(fb::QIntegrity::VT_LM_HEAD, LinearDigest(*m.lm_head()), 0)) {
    return InvalidFormat("SealQModel: the integrity table has no lm_head field to seal");
  }
  if (!table->SetField<uint64_t>(fb::QIntegrity::VT_HEADER, HeaderDigest(m), 0)) {
    return InvalidFormat("SealQModel: the integrity table has no header field to seal");
  }
  return Status::Ok();
}

namespace {

// The FlatBuffers builder's memory as AllocateAligned buffers (untouched
// until written, huge pages), the last one handed out by Take() instead of
// being copied. Declared before the builder, so it outlives it.
class TakeableAllocator : public flatbuffers::Allocator {
 public:
  uint8_t* allocate(size_t size) override {
    uint8_t* p = AllocateAligned(size, /*huge_pages=*/true);
    if (p == nullptr) throw std::bad_alloc();  // as flatbuffers' default allocator (operator new)
    current_ = p;
    return p;
  }
  void deallocate(uint8_t* p, size_t) override {
    if (p == nullptr || p == taken_) return;
    if (p == current_) current_ = nullptr;
    std::free(p);
  }
  // The buffer the builder holds now (its end holds the finished bytes);
  // the builder's later deallocate of it does nothing.
  AlignedBuffer Take() {
    taken_ = current_;
    current_ = nullptr;
    return AlignedBuffer(taken_);
  }

 private:
  uint8_t* current_ = nullptr;
  uint8_t* taken_ = nullptr;
};

// owned: c itself, writable, when its records' weights are to be freed as
// they are added (SerializeQModel(&&)); nullptr otherwise. The finished,
// sealed bytes are at the end of the builder's buffer, which is returned.
Result<SerializedQModel> Serialize(const QModelContents& c, QModelContents* owned) {
  size_t estimate = c.config_json.size() + c.tokenizer_json.size() + c.tokenizer_config_json.size() + 4096;
  for (const auto& t : c.float_tensors) estimate += t.raw.size() + 256;
  std::vector<const QLinearContents*> all;
  for (const auto& l : c.linears) all.push_back(&l);
  if (c.embedding) all.push_back(&*c.embedding);
  if (c.lm_head) all.push_back(&*c.lm_head);
  for (const QLinearContents* lp : all) {
    const QLinearContents& l = *lp;
    estimate += l.packed_codes.size() + CodeBytes(l.w.bits, l.w.codes.size()) +
                5 * l.w.scales.size() +  // at most: fp32 scales, zeros
                4 * (l.bias.size() + l.input_multiplier.size()) + 256;
  }
  if (estimate > kMaxQModelBytes) {
    return Unsupported("the quantized model would take about " + std::to_string(estimate >> 20) +
                       " MiB, above the 2 GiB FlatBuffers limit of the qmodel format");
  }
  TakeableAllocator allocator;
  flatbuffers::FlatBufferBuilder b(estimate, &allocator);
  std::vector<flatbuffers::Offset<fb::FloatTensor>> tensors;
  for (const FloatTensorContents& t : c.float_tensors) {
    const auto name = b.CreateString(t.name);
    const auto shape = b.CreateVector(t.shape);
    flatbuffers::Offset<flatbuffers::Vector<float>> f32;
    flatbuffers::Offset<flatbuffers::Vector<uint16_t>> half;
    if (t.dtype == DType::kF32) {
      std::vector<float> v(t.raw.size() / 4);
      std::memcpy(v.data(), t.raw.data(), v.size() * 4);
      f32 = b.CreateVector(v);
    } else {
      std::vector<uint16_t> v(t.raw.size() / 2);
      std::memcpy(v.data(), t.raw.data(), v.size() * 2);
      half = b.CreateVector(v);
    }
    fb::FloatTensorBuilder tb(b);
    tb.add_name(name);
    tb.add_dtype(ToFb(t.dtype));
    tb.add_shape(shape);
    if (!f32.IsNull()) tb.add_f32(f32);
    if (!half.IsNull()) tb.add_half(half);
    tensors.push_back(tb.Finish());
  }
  std::vector<flatbuffers::Offset<fb::QuantLinear>> linears;
  for (size_t i = 0; i < c.linears.size(); ++i) {
    linears.push_back(BuildLinear(b, c.linears[i]));
    if (owned != nullptr) {
      owned->linears[i].w = QMatrix();  // frees the codes, scales and zero points
      std::vector<uint8_t>().swap(owned->linears[i].packed_codes);
      if (i % 4 == 3) ReturnFreedMemory();  // once per block's four records
    }
  }
  const auto embedding = c.embedding ? BuildLinear(b, *c.embedding) : 0;
  if (owned != nullptr && owned->embedding) {
    owned->embedding->w = QMatrix();
    ReturnFreedMemory();
  }
  const auto lm_head = c.lm_head ? BuildLinear(b, *c.lm_head) : 0;
  if (owned != nullptr && owned->lm_head) owned->lm_head->w = QMatrix();
  const QModelProvenanceContents& p = c.provenance;
  const auto prov = fb::CreateQProvenance(
      b, b.CreateString(p.tool), p.method, b.CreateString(p.calibration), b.CreateString(p.bundle_payload_sha256),
      b.CreateString(p.bundle_key_id), b.CreateString(p.calib_source), p.samples, p.calib_tokens, p.private_mix,
      p.estimator, p.percentile, p.smooth_alpha, p.gptq_damp, p.gptq_act_order, p.seconds, p.peak_rss_bytes);
  // Placeholders, sealed below once the buffer exists: the header one (and
  // those of the quantized embedding / head) must differ from the default 0
  // so that the field is stored.
  const auto integrity = fb::CreateQIntegrity(b, b.CreateString(kQModelIntegrityAlgorithm), ~uint64_t{0},
                                              b.CreateVector(std::vector<uint64_t>(linears.size(), 0)),
                                              b.CreateVector(std::vector<uint64_t>(tensors.size(), 0)),
                                              c.embedding ? ~uint64_t{0} : 0, c.lm_head ? ~uint64_t{0} : 0);
  const auto root = fb::CreateQModel(
      b, kQModelFormatVersion, c.scheme, static_cast<uint8_t>(c.wbits), static_cast<uint8_t>(c.abits),
      static_cast<uint32_t>(c.group_size), c.symmetric, b.CreateString(c.config_json), b.CreateString(c.tokenizer_json),
      b.CreateString(c.tokenizer_config_json), b.CreateString(c.generation_config_json),
      b.CreateString(c.source_config_sha256), b.CreateString(c.tokenizer_sha256), b.CreateString(c.source_name),
      b.CreateVector(tensors), b.CreateVector(linears), prov, integrity, embedding, lm_head);
  // Size-prefixed: a reader knows the exact length, so any truncation shows.
  fb::FinishSizePrefixedQModelBuffer(b, root);
  FAMQ_RETURN_IF_ERROR(SealQModel(b.GetBufferPointer(), b.GetSize()));
  SerializedQModel out;
  out.size = b.GetSize();
  const uint8_t* begin = b.GetBufferPointer();
  out.buffer = allocator.Take();
  out.offset = static_cast<size_t>(begin - out.buffer.get());
  return out;
}

std::vector<uint8_t> CopyOut(const SerializedQModel& s) { return std::vector<uint8_t>(s.data(), s.data() + s.size); }

}  // namespace

Result<std::vector<uint8_t>> SerializeQModel(const QModelContents& contents) {
  FAMQ_ASSIGN_OR_RETURN(const SerializedQModel s, Serialize(contents, nullptr));
  return CopyOut(s);
}

Result<std::vector<uint8_t>> SerializeQModel(QModelContents&& contents) {
  FAMQ_ASSIGN_OR_RETURN(const SerializedQModel s, Serialize(contents, &contents));
  return CopyOut(s);
}

Result<SerializedQModel> SerializeQModelInPlace(QModelContents&& contents) { return Serialize(contents, &contents); }

Result<QModel> QModel::Open(const std::string& path) {
  // Read, not mapped: a mapping dies of SIGBUS if the file is truncated underneath.
  FAMQ_ASSIGN_OR_RETURN(FileBytes f, ReadFileBytes(path, kMaxQModelBytes));
  QModel q;
  q.origin_ = path;
  q.owned_ = std::move(f.data);
  q.data_ = q.owned_.get();
  q.size_ = f.size;
  FAMQ_RETURN_IF_ERROR(q.Validate());
  return q;
}

Result<QModel> QModel::FromSerialized(SerializedQModel serialized, const std::string& origin) {
  QModel q;
  q.origin_ = origin;
  q.owned_ = std::move(serialized.buffer);
  q.data_ = q.owned_.get() + serialized.offset;
  q.size_ = serialized.size;
  FAMQ_RETURN_IF_ERROR(q.Validate());
  return q;
}

Result<QModel> QModel::FromBytes(std::vector<uint8_t> bytes, const std::string& origin) {
  QModel q;
  q.origin_ = origin;
  q.bytes_ = std::move(bytes);
  q.data_ = q.bytes_.data();
  q.size_ = q.bytes_.size();
  FAMQ_RETURN_IF_ERROR(q.Validate());
  return q;
}

namespace {

template <typename T>
size_t Len(const flatbuffers::Vector<T>* v) {
  return v == nullptr ? 0 : v->size();
}

bool AllFinite(const flatbuffers::Vector<float>* v, bool non_negative) {
  if (v == nullptr) return true;
  for (float x : *v) {
    if (!std::isfinite(x) || (non_negative && x < 0.0f)) return false;
  }
  return true;
}

// The invariants every stored quantized linear keeps: its name, bits, the
// shape `shape`, group size, code / scale / zero-point counts and ranges,
// bias and input multiplier sizes. `at` prefixes every error.
Status CheckQuantLinear(const fb::QuantLinear& l, const std::string& name, LinearShape shape, const std::string& at) {
  if (l.name() == nullptr || l.name()->str() != name) return InvalidFormat(at + "missing or misnamed");
  if (!StoredCodeBitsSupported(l.bits())) {
    return InvalidFormat(at + std::to_string(l.bits()) + "-bit codes (this famq reads 2, 3, 4, 6 or 8)");
  }
  if (static_cast<int64_t>(l.rows()) != shape.rows || static_cast<int64_t>(l.cols()) != shape.cols) {
    return InvalidFormat(at + "shape [" + std::to_string(l.rows()) + ", " + std::to_string(l.cols()) +
                         "] does not match the config's [" + std::to_string(shape.rows) + ", " +
                         std::to_string(shape.cols) + "]");
  }
  if (l.group_size() == 0 || l.cols() % l.group_size() != 0) {
    return InvalidFormat(at + "group size " + std::to_string(l.group_size()) + " does not divide " +
                         std::to_string(l.cols()) + " input features");
  }
  const size_t count = size_t{l.rows()} * l.cols();
  const size_t groups = size_t{l.rows()} * (l.cols() / l.group_size());
  if (Len(l.codes()) != CodeBytes(l.bits(), count)) {
    return InvalidFormat(at + std::to_string(l.bits()) + "-bit codes hold " + std::to_string(Len(l.codes())) +
                         " bytes, expected " + std::to_string(CodeBytes(l.bits(), count)));
  }
  if ((l.scales() == nullptr) == (l.scales_f16() == nullptr)) {
    return InvalidFormat(at + "needs exactly one of fp32 and fp16 scales");
  }
  const size_t scale_count = l.scales() != nullptr ? Len(l.scales()) : Len(l.scales_f16());
  if (scale_count != groups || (l.zeros() != nullptr && Len(l.zeros()) != groups)) {
    return InvalidFormat(at + "scales / zero points hold " + std::to_string(scale_count) + " / " +
                         std::to_string(Len(l.zeros())) + " values, expected " + std::to_string(groups) +
                         " (zero points may be absent: all 0)");
  }
  if (l.scales() != nullptr && !AllFinite(l.scales(), true)) {
    return InvalidFormat(at + "a scale is negative, infinite or NaN");
  }
  if (l.scales_f16() != nullptr) {
    for (uint16_t h : *l.scales_f16()) {
      // binary16: exponent all ones is inf / NaN; the sign bit set is negative (but -0).
      if ((h & 0x7C00) == 0x7C00 || (h > 0x8000)) return InvalidFormat(at + "a scale is negative, infinite or NaN");
    }
  }
  const int zmin = -(1 << (l.bits() - 1)), zmax = (1 << (l.bits() - 1)) - 1;
  if (l.zeros() != nullptr) {
    for (int8_t z : *l.zeros()) {
      if (z < zmin || z > zmax) {
        return InvalidFormat(at + "zero point " + std::to_string(z) + " outside the code range");
      }
    }
  }
  if (l.bias() != nullptr && (l.bias()->size() != l.rows() || !AllFinite(l.bias(), false))) {
    return InvalidFormat(at + "bias has the wrong size or a non-finite value");
  }
  if (l.input_multiplier() != nullptr &&
      (l.input_multiplier()->size() != l.cols() || !AllFinite(l.input_multiplier(), false))) {
    return InvalidFormat(at + "input multiplier has the wrong size or a non-finite value");
  }
  return Status::Ok();
}

// A quantized embedding or head: [vocab][hidden] weight-only codes that
// famq's kernels run (groups of multiples of 32), no bias, no multiplier.
Status CheckQuantEmbedding(const fb::QuantLinear& l, const char* name, const ModelConfig& c, const std::string& o) {
  const std::string at = o + ": " + name + ": ";
  FAMQ_RETURN_IF_ERROR(CheckQuantLinear(l, name, LinearShape{c.vocab_size, c.hidden_size}, at));
  if (l.bits() != 4 && l.bits() != 6 && l.bits() != 8) {
    return InvalidFormat(at + std::to_string(l.bits()) +
                         "-bit codes: a quantized embedding or head is 4-, 6- or 8-bit");
  }
  if (l.cols() % 32 != 0 || l.group_size() % 32 != 0) {
    return InvalidFormat(at + "weight-only kernels need input features and group size in multiples of 32");
  }
  if (l.bias() != nullptr || l.input_multiplier() != nullptr) {
    return InvalidFormat(at + "a quantized embedding or head takes no bias and no input multiplier");
  }
  return Status::Ok();
}

}  // namespace

Status QModel::Validate() {
  const std::string& o = origin_;
  if (size_ < 12) return InvalidFormat(o + ": " + std::to_string(size_) + " bytes is too short for a quantized model");
  if (size_ > kMaxQModelBytes) return InvalidFormat(o + ": larger than the 2 GiB the qmodel format allows");
  if (!flatbuffers::BufferHasIdentifier(data_, fb::QModelIdentifier(), /*size_prefixed=*/true)) {
    return InvalidFormat(o + ": not a famq quantized model (file identifier is not \"FQMD\")");
  }
  const uint32_t declared = flatbuffers::ReadScalar<uint32_t>(data_);
  if (size_t{declared} + sizeof(uint32_t) != size_) {
    return InvalidFormat(o + ": the file holds " + std::to_string(size_) + " bytes but declares " +
                         std::to_string(size_t{declared} + sizeof(uint32_t)) + " (truncated or padded)");
  }
  {
    flatbuffers::Verifier v(data_, size_, /*max_depth=*/16, /*max_tables=*/1u << 22);
    if (!fb::VerifySizePrefixedQModelBuffer(v)) {
      return InvalidFormat(o + ": the FlatBuffers verifier rejects the file (corrupt)");
    }
  }
  root_ = fb::GetSizePrefixedQModel(data_);
  const fb::QModel& r = *root_;
  if (r.format_version() == 1) {
    return InvalidFormat(o + ": format version 1 carries no integrity data and is no longer read (this famq reads " +
                         std::to_string(kQModelFormatVersion) + "): finalize the model again");
  }
  if (r.format_version() != kQModelFormatVersion) {
    return InvalidFormat(o + ": format version " + std::to_string(r.format_version()) + " (this famq reads " +
                         std::to_string(kQModelFormatVersion) + ")");
  }
  if (r.config_json() == nullptr || r.tokenizer_json() == nullptr || r.linears() == nullptr ||
      r.float_tensors() == nullptr || r.tokenizer_sha256() == nullptr) {
    return InvalidFormat(o + ": config, tokenizer, tensors or linear layers are missing");
  }
  FAMQ_ASSIGN_OR_RETURN(config_, ParseModelConfig(r.config_json()->string_view(), o + " (config.json)"));
  const ModelConfig& c = config_;
  const bool w8a8 = r.scheme() == fb::QScheme::W8A8Static;
  if (r.scheme() != fb::QScheme::WeightOnly && !w8a8) return InvalidFormat(o + ": unknown quantization scheme");

  const int H = c.hidden_size;
  if (r.linears()->size() != static_cast<size_t>(4 * c.num_layers)) {
    return InvalidFormat(o + ": " + std::to_string(r.linears()->size()) + " quantized linear layers, expected " +
                         std::to_string(4 * c.num_layers) + " (4 per block)");
  }
  for (uint32_t i = 0; i < r.linears()->size(); ++i) {
    const fb::QuantLinear& l = *r.linears()->Get(i);
    const int slot = static_cast<int>(i % 4);
    const std::string name = QLinearName(static_cast<int>(i / 4), slot);
    const std::string at = o + ": " + name + ": ";
    FAMQ_RETURN_IF_ERROR(CheckQuantLinear(l, name, LinearSlotShape(c, static_cast<LinearSlot>(slot)), at));
    if (l.bits() == 6) {
      return InvalidFormat(at + "6-bit codes: only a quantized embedding or head is 6-bit (block linears are 2, 3, 4 "
                                "or 8)");
    }
    if (w8a8) {
      if (l.bits() != 8 || l.group_size() != l.cols()) {
        return InvalidFormat(at + "W8A8 needs 8-bit per-channel weights");
      }
      if (!RecordIsSymmetric(l)) return InvalidFormat(at + "W8A8 weights must be symmetric");
      for (const fb::ActQuant* a : {l.act_in(), l.act_out()}) {
        if (a == nullptr || !std::isfinite(a->scale()) || a->scale() <= 0.0f || a->zero_point() < -128 ||
            a->zero_point() > 127) {
          return InvalidFormat(at + "missing or invalid activation scale / zero point");
        }
      }
    } else if (l.cols() % 32 != 0 || l.group_size() % 32 != 0) {
      return InvalidFormat(at + "weight-only kernels need input features and group size in multiples of 32");
    }
  }
  // Floating-point tensors: each one well-formed, and the ones the architecture needs present.
  for (const fb::FloatTensor* t : *r.float_tensors()) {
    const std::string name = t->name() == nullptr ? std::string("?") : t->name()->str();
    if (t->name() == nullptr || t->shape() == nullptr || t->shape()->size() == 0 || t->shape()->size() > 2) {
      return InvalidFormat(o + ": tensor '" + name + "' has no name or a bad shape");
    }
    size_t numel = 1;
    for (uint32_t d : *t->shape()) {
      if (d == 0 || d > (1u << 24)) return InvalidFormat(o + ": tensor '" + name + "' has an absurd dimension");
      numel *= d;
    }
    const bool is_f32 = t->dtype() == fb::TensorDType::F32;
    if ((t->dtype() != fb::TensorDType::F32 && t->dtype() != fb::TensorDType::F16 &&
         t->dtype() != fb::TensorDType::BF16) ||
        (is_f32 ? Len(t->f32()) : Len(t->half())) != numel) {
      return InvalidFormat(o + ": tensor '" + name + "' holds the wrong number of values for its shape and dtype");
    }
  }
  auto need = [&](const std::string& name, std::vector<int64_t> shape) -> Status {
    FAMQ_ASSIGN_OR_RETURN(const uint32_t index, FindTensor(name));
    const TensorView t = View(index);
    if (t.shape != shape) {
      return InvalidFormat(o + ": tensor '" + name + "' has shape " + t.ShapeString() + ", the config implies another");
    }
    return Status::Ok();
  };
  // The embedding: quantized (QModel.embedding) or fp, exactly one; the head:
  // quantized (QModel.lm_head), fp, or neither (tied to the embedding).
  const bool fp_embed = FindTensor("model.embed_tokens.weight").ok();
  const bool fp_head = FindTensor("lm_head.weight").ok();
  if (r.embedding() != nullptr) {
    if (fp_embed) return InvalidFormat(o + ": both a quantized and an fp embedding (model.embed_tokens.weight)");
    FAMQ_RETURN_IF_ERROR(CheckQuantEmbedding(*r.embedding(), kQEmbeddingName, c, o));
  } else {
    FAMQ_RETURN_IF_ERROR(need("model.embed_tokens.weight", {c.vocab_size, H}));
  }
  if (r.lm_head() != nullptr) {
    if (fp_head) return InvalidFormat(o + ": both a quantized and an fp head (lm_head.weight)");
    FAMQ_RETURN_IF_ERROR(CheckQuantEmbedding(*r.lm_head(), kQLmHeadName, c, o));
  }
  FAMQ_RETURN_IF_ERROR(need("model.norm.weight", {H}));
  if (fp_head) FAMQ_RETURN_IF_ERROR(need("lm_head.weight", {c.vocab_size, H}));
  for (int i = 0; i < c.num_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    FAMQ_RETURN_IF_ERROR(need(p + "input_layernorm.weight", {H}));
    FAMQ_RETURN_IF_ERROR(need(p + "post_attention_layernorm.weight", {H}));
    if (c.qk_norm) {
      FAMQ_RETURN_IF_ERROR(need(p + "self_attn.q_norm.weight", {c.head_dim}));
      FAMQ_RETURN_IF_ERROR(need(p + "self_attn.k_norm.weight", {c.head_dim}));
    }
  }
  // Integrity: the header now; each tensor when it is first used.
  const fb::QIntegrity* in = r.integrity();
  if (in == nullptr || in->algorithm() == nullptr || in->linears() == nullptr || in->float_tensors() == nullptr ||
      in->linears()->size() != r.linears()->size() || in->float_tensors()->size() != r.float_tensors()->size()) {
    return InvalidFormat(o + ": the integrity data is missing or does not match the tensor counts (corrupt)");
  }
  if (in->algorithm()->string_view() != kQModelIntegrityAlgorithm) {
    return InvalidFormat(o + ": integrity algorithm '" + in->algorithm()->str() + "' is unknown (this famq checks " +
                         kQModelIntegrityAlgorithm + ")");
  }
  if (const uint64_t computed = HeaderDigest(r); computed != in->header()) {
    return ChecksumMismatch(o + ": header (config, tokenizer, provenance, tensor digests)", in->header(), computed);
  }
  linear_ok_ = std::make_unique<std::atomic<uint8_t>[]>(r.linears()->size());
  tensor_ok_ = std::make_unique<std::atomic<uint8_t>[]>(r.float_tensors()->size());
  embedding_ok_ = std::make_unique<std::atomic<uint8_t>>(0);
  lm_head_ok_ = std::make_unique<std::atomic<uint8_t>>(0);
  return Status::Ok();
}

Status QModel::VerifyLinear(int index) const {
  if (index < 0 || static_cast<uint32_t>(index) >= root_->linears()->size()) {
    return InvalidArgument(origin_ + ": no quantized linear " + std::to_string(index));
  }
  if (const uint8_t state = linear_ok_[index].load(std::memory_order_acquire); state != kUnverified) {
    return state == kVerified ? Status::Ok() : Released(origin_ + ": " + QLinearName(index / 4, index % 4));
  }
  const uint64_t stored = root_->integrity()->linears()->Get(static_cast<uint32_t>(index));
  const uint64_t computed = LinearDigest(*root_->linears()->Get(static_cast<uint32_t>(index)));
  if (computed != stored) return ChecksumMismatch(origin_ + ": " + QLinearName(index / 4, index % 4), stored, computed);
  linear_ok_[index].store(kVerified, std::memory_order_release);
  return Status::Ok();
}

Status QModel::VerifyFloatTensor(uint32_t index) const {
  if (tensor_ok_[index].load(std::memory_order_acquire) != kUnverified) return Status::Ok();
  const fb::FloatTensor& t = *root_->float_tensors()->Get(index);
  const uint64_t stored = root_->integrity()->float_tensors()->Get(index);
  const uint64_t computed = FloatTensorDigest(t);
  if (computed != stored) return ChecksumMismatch(origin_ + ": tensor '" + t.name()->str() + "'", stored, computed);
  tensor_ok_[index].store(kVerified, std::memory_order_release);
  return Status::Ok();
}

Status QModel::VerifyAll() const {
  for (uint32_t i = 0; i < root_->linears()->size(); ++i) FAMQ_RETURN_IF_ERROR(VerifyLinear(static_cast<int>(i)));
  for (uint32_t i = 0; i < root_->float_tensors()->size(); ++i) FAMQ_RETURN_IF_ERROR(VerifyFloatTensor(i));
  FAMQ_RETURN_IF_ERROR(VerifyEmbedding());
  return VerifyLmHead();
}

Result<QMatrix> QModel::Matrix(int index) const {
  FAMQ_RETURN_IF_ERROR(VerifyLinear(index));
  return UnpackQuantLinear(*root_->linears()->Get(static_cast<uint32_t>(index)));
}

Result<QMatrixView> QModel::MatrixView(int index) const {
  FAMQ_RETURN_IF_ERROR(VerifyLinear(index));
  return ViewIfKernelWidth(*root_->linears()->Get(static_cast<uint32_t>(index)),
                           origin_ + ": " + QLinearName(index / 4, index % 4));
}

void QModel::ReleaseLinear(int index) {
  if (index < 0 || static_cast<uint32_t>(index) >= root_->linears()->size()) return;
  ReleaseRecord(root_->linears()->Get(static_cast<uint32_t>(index)), &linear_ok_[index]);
}

void QModel::ReleaseEmbedding() { ReleaseRecord(root_->embedding(), embedding_ok_.get()); }

void QModel::ReleaseLmHead() { ReleaseRecord(root_->lm_head(), lm_head_ok_.get()); }

namespace {

Status VerifyExtra(const fb::QuantLinear* l, uint64_t stored, std::atomic<uint8_t>* ok, const std::string& at) {
  if (l == nullptr) return Status::Ok();
  if (const uint8_t state = ok->load(std::memory_order_acquire); state != kUnverified) {
    return state == kVerified ? Status::Ok() : Released(at);
  }
  const uint64_t computed = LinearDigest(*l);
  if (computed != stored) return ChecksumMismatch(at, stored, computed);
  ok->store(kVerified, std::memory_order_release);
  return Status::Ok();
}

std::string SchemeOf(const fb::QuantLinear& l) {
  const bool symmetric = RecordIsSymmetric(l);
  std::string s = "W";
  s += std::to_string(l.bits());
  s += " g";
  s += std::to_string(l.group_size());
  s += symmetric ? " symmetric" : " asymmetric";
  return s;
}

}  // namespace

Status QModel::VerifyEmbedding() const {
  return VerifyExtra(root_->embedding(), root_->integrity()->embedding(), embedding_ok_.get(),
                     origin_ + ": " + kQEmbeddingName);
}

Status QModel::VerifyLmHead() const {
  return VerifyExtra(root_->lm_head(), root_->integrity()->lm_head(), lm_head_ok_.get(), origin_ + ": " + kQLmHeadName);
}

Result<QMatrix> QModel::EmbeddingMatrix() const {
  if (root_->embedding() == nullptr) return NotFound(origin_ + ": the embedding is not quantized");
  FAMQ_RETURN_IF_ERROR(VerifyEmbedding());
  return UnpackQuantLinear(*root_->embedding());
}

Result<QMatrix> QModel::HeadMatrix() const {
  if (root_->lm_head() != nullptr) {
    FAMQ_RETURN_IF_ERROR(VerifyLmHead());
    return UnpackQuantLinear(*root_->lm_head());
  }
  if (FindTensor("lm_head.weight").ok()) return NotFound(origin_ + ": the head is not quantized");
  return EmbeddingMatrix();
}

Result<QMatrixView> QModel::HeadView() const {
  if (root_->lm_head() != nullptr) {
    FAMQ_RETURN_IF_ERROR(VerifyLmHead());
    return ViewIfKernelWidth(*root_->lm_head(), origin_ + ": " + kQLmHeadName);
  }
  if (FindTensor("lm_head.weight").ok()) return NotFound(origin_ + ": the head is not quantized");
  if (root_->embedding() == nullptr) return NotFound(origin_ + ": the embedding is not quantized");
  FAMQ_RETURN_IF_ERROR(VerifyEmbedding());
  return ViewIfKernelWidth(*root_->embedding(), origin_ + ": " + kQEmbeddingName);
}

std::string QModel::HeadDescription() const {
  auto fp = [&](const std::string& name) {
    std::string s = "fp ";
    auto i = FindTensor(name);
    s += i.ok() ? fb::EnumNameTensorDType(root_->float_tensors()->Get(*i)->dtype()) : "?";
    return s;
  };
  const std::string embed = root_->embedding() != nullptr ? SchemeOf(*root_->embedding()) : fp("model.embed_tokens.weight");
  std::string s;
  if (root_->lm_head() != nullptr) {
    s = SchemeOf(*root_->lm_head());
  } else if (FindTensor("lm_head.weight").ok()) {
    s = fp("lm_head.weight");
  } else {
    s = embed;
    s += " (tied)";
    return s;
  }
  s += " (untied; embedding ";
  s += embed;
  s += ")";
  return s;
}

Result<uint32_t> QModel::FindTensor(const std::string& name) const {
  const auto* tensors = root_->float_tensors();
  for (uint32_t i = 0; i < tensors->size(); ++i) {
    if (tensors->Get(i)->name()->string_view() == name) return i;
  }
  return NotFound(origin_ + ": no tensor '" + name + "'");
}

TensorView QModel::View(uint32_t index) const {
  const fb::FloatTensor* t = root_->float_tensors()->Get(index);
  TensorView v;
  v.name = t->name()->str();
  v.file = origin_;
  for (uint32_t d : *t->shape()) v.shape.push_back(d);
  if (t->dtype() == fb::TensorDType::F32) {
    v.dtype = DType::kF32;
    v.data = reinterpret_cast<const uint8_t*>(t->f32()->data());
    v.num_bytes = t->f32()->size() * 4ull;
  } else {
    v.dtype = t->dtype() == fb::TensorDType::F16 ? DType::kF16 : DType::kBF16;
    v.data = reinterpret_cast<const uint8_t*>(t->half()->data());
    v.num_bytes = t->half()->size() * 2ull;
  }
  return v;
}

Result<TensorView> QModel::Tensor(const std::string& name) const {
  FAMQ_ASSIGN_OR_RETURN(const uint32_t index, FindTensor(name));
  FAMQ_RETURN_IF_ERROR(VerifyFloatTensor(index));
  return View(index);
}

}  // namespace famq
