// The quantized-model file's integrity data and its behaviour when the file
// changes: every corruption is refused with an error naming the file and the
// record (or provably changes nothing), format version 1 is refused, a file
// truncated after it was opened does not reach the running model.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdint>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "core/file.h"
#include "finalize/finalize.h"
#include "kernels/isa.h"
#include "model/dtype.h"
#include "qmodel/code_packing.h"
#include "qmodel/qmodel_engine.h"
#include "quant/rtn.h"

namespace famq {
namespace {

const std::string kSourceDir = FAMQ_SOURCE_DIR;

std::string CalibText() {
  auto t = ReadFile(kSourceDir + "/tests/data/tokenizer_corpus.jsonl");
  EXPECT_TRUE(t.ok());
  return t.ok() ? t->substr(0, 6000) : std::string();
}

// A small model finalized with RTN (fast) and serialized.
std::vector<uint8_t> Finalized(const std::string& dir, int wbits, int group, int head_bits = kDefaultHeadBits) {
  auto model = OpenModelDir(dir);
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  if (!model.ok()) return {};
  auto calib = CalibrationFromText(model->tokenizer, CalibText(), 32, "corpus");
  EXPECT_TRUE(calib.ok());
  FinalizeOptions o;
  o.method = QuantMethod::kRtn;
  o.wbits = wbits;
  o.group_size = group;
  o.num_threads = 1;
  o.isa = Isa::kRef;
  o.head_bits = head_bits;
  auto q = Finalize(*model, dir, *calib, o);
  EXPECT_TRUE(q.ok()) << q.status().ToString();
  if (!q.ok()) return {};
  auto bytes = SerializeQModel(*q);
  EXPECT_TRUE(bytes.ok());
  return bytes.ok() ? *bytes : std::vector<uint8_t>();
}

const std::vector<int32_t> kPrompt = {1, 7, 42, 99, 3, 250, 11, 5};

// Logits of every position of kPrompt, or the error that stopped them.
Result<std::vector<float>> Logits(const QModel& q) {
  EngineOptions eo;
  eo.num_threads = 1;
  eo.max_seq_len = 16;
  FAMQ_ASSIGN_OR_RETURN(std::unique_ptr<Engine> e, CreateQuantizedEngine(q, eo, Isa::kRef));
  std::vector<float> out(kPrompt.size() * static_cast<size_t>(e->vocab_size()));
  FAMQ_RETURN_IF_ERROR(e->Forward(kPrompt, 0, out.data(), true));
  return out;
}

// Field-by-field equality through the reader's accessors (not the digests):
// what "this mutation cannot change behaviour" means.
std::string Str(const flatbuffers::String* s) { return s == nullptr ? std::string("<absent>") : s->str(); }
template <typename T>
std::vector<T> Vec(const flatbuffers::Vector<T>* v) {
  return v == nullptr ? std::vector<T>() : std::vector<T>(v->begin(), v->end());
}

bool SameMatrix(const Result<QMatrix>& ma, const Result<QMatrix>& mb) {
  if (ma.ok() != mb.ok()) return false;
  if (!ma.ok()) return ma.status().code() == mb.status().code();
  return ma->codes == mb->codes && ma->scales == mb->scales && ma->zeros == mb->zeros && ma->rows == mb->rows &&
         ma->cols == mb->cols && ma->group_size == mb->group_size && ma->bits == mb->bits;
}

bool SameModel(const QModel& a, const QModel& b) {
  const fb::QModel& x = a.root();
  const fb::QModel& y = b.root();
  if (x.format_version() != y.format_version() || x.scheme() != y.scheme() || x.wbits() != y.wbits() ||
      x.abits() != y.abits() || x.group_size() != y.group_size() || x.symmetric() != y.symmetric()) {
    return false;
  }
  if (Str(x.config_json()) != Str(y.config_json()) || Str(x.tokenizer_json()) != Str(y.tokenizer_json()) ||
      Str(x.tokenizer_config_json()) != Str(y.tokenizer_config_json()) ||
      Str(x.generation_config_json()) != Str(y.generation_config_json()) ||
      Str(x.source_config_sha256()) != Str(y.source_config_sha256()) ||
      Str(x.tokenizer_sha256()) != Str(y.tokenizer_sha256()) || Str(x.source_name()) != Str(y.source_name())) {
    return false;
  }
  const fb::QProvenance* p = x.provenance();
  const fb::QProvenance* q = y.provenance();
  if ((p == nullptr) != (q == nullptr)) return false;
  if (p != nullptr &&
      (Str(p->tool()) != Str(q->tool()) || p->method() != q->method() || Str(p->calibration()) != Str(q->calibration()) ||
       Str(p->bundle_payload_sha256()) != Str(q->bundle_payload_sha256()) ||
       Str(p->bundle_key_id()) != Str(q->bundle_key_id()) || Str(p->calib_source()) != Str(q->calib_source()) ||
       p->samples() != q->samples() || p->calib_tokens() != q->calib_tokens() ||
       p->private_mix() != q->private_mix() || p->estimator() != q->estimator() ||
       p->percentile() != q->percentile() || p->smooth_alpha() != q->smooth_alpha() ||
       p->gptq_damp() != q->gptq_damp() || p->gptq_act_order() != q->gptq_act_order() ||
       p->seconds() != q->seconds() || p->peak_rss_bytes() != q->peak_rss_bytes())) {
    return false;
  }
  if (x.linears()->size() != y.linears()->size() || x.float_tensors()->size() != y.float_tensors()->size()) return false;
  for (uint32_t i = 0; i < x.linears()->size(); ++i) {
    auto ma = a.Matrix(static_cast<int>(i));
    auto mb = b.Matrix(static_cast<int>(i));
    if (!ma.ok() || !mb.ok()) return false;
    if (ma->codes != mb->codes || ma->scales != mb->scales || ma->zeros != mb->zeros || ma->rows != mb->rows ||
        ma->cols != mb->cols || ma->group_size != mb->group_size || ma->bits != mb->bits) {
      return false;
    }
    const fb::QuantLinear& la = *x.linears()->Get(i);
    const fb::QuantLinear& lb = *y.linears()->Get(i);
    if (Str(la.name()) != Str(lb.name()) || Vec(la.bias()) != Vec(lb.bias()) ||
        Vec(la.input_multiplier()) != Vec(lb.input_multiplier())) {
      return false;
    }
    for (auto [u, v] : {std::pair{la.act_in(), lb.act_in()}, std::pair{la.act_out(), lb.act_out()}}) {
      if ((u == nullptr) != (v == nullptr)) return false;
      if (u != nullptr && (u->scale() != v->scale() || u->zero_point() != v->zero_point())) return false;
    }
  }
  // The quantized embedding and head, where there are any.
  if ((x.embedding() == nullptr) != (y.embedding() == nullptr) || (x.lm_head() == nullptr) != (y.lm_head() == nullptr)) {
    return false;
  }
  if (!SameMatrix(a.EmbeddingMatrix(), b.EmbeddingMatrix()) || !SameMatrix(a.HeadMatrix(), b.HeadMatrix())) return false;
  for (const auto& [u, v] : {std::pair{x.embedding(), y.embedding()}, std::pair{x.lm_head(), y.lm_head()}}) {
    if (u != nullptr && (Str(u->name()) != Str(v->name()) || Vec(u->bias()) != Vec(v->bias()) ||
                         Vec(u->input_multiplier()) != Vec(v->input_multiplier()))) {
      return false;
    }
  }
  for (uint32_t i = 0; i < x.float_tensors()->size(); ++i) {
    const std::string name = Str(x.float_tensors()->Get(i)->name());
    auto ta = a.Tensor(name);
    auto tb = b.Tensor(Str(y.float_tensors()->Get(i)->name()));
    if (!ta.ok() || !tb.ok() || ta->name != tb->name || ta->dtype != tb->dtype || ta->shape != tb->shape ||
        ta->num_bytes != tb->num_bytes || std::memcmp(ta->data, tb->data, ta->num_bytes) != 0) {
      return false;
    }
  }
  return true;
}

// Serializing by rvalue writes the same bytes and frees every record's
// weights as it goes (finalize's peak memory), keeping the other fields.
TEST(QModelIntegrity, SerializingByRvalueGivesTheSameBytesAndFreesTheWeights) {
  const std::string dir = kSourceDir + "/tests/data/tiny-random-qwen3";
  auto model = OpenModelDir(dir);
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  auto calib = CalibrationFromText(model->tokenizer, CalibText(), 32, "corpus");
  ASSERT_TRUE(calib.ok());
  FinalizeOptions o;
  o.method = QuantMethod::kRtn;
  o.num_threads = 1;
  o.isa = Isa::kRef;
  auto q = Finalize(*model, dir, *calib, o);
  ASSERT_TRUE(q.ok()) << q.status().ToString();
  ASSERT_TRUE(q->embedding.has_value());  // the default W8 head
  auto copied = SerializeQModel(*q);
  ASSERT_TRUE(copied.ok());
  QModelContents c = std::move(*q);
  const std::string tool = c.provenance.tool;
  auto moved = SerializeQModel(std::move(c));
  ASSERT_TRUE(moved.ok());
  EXPECT_EQ(*moved, *copied);
  for (const QLinearContents& l : c.linears) {  // NOLINT(bugprone-use-after-move): documented to keep the rest
    EXPECT_TRUE(l.w.codes.empty() && l.w.scales.empty() && l.w.codes.capacity() == 0) << l.name;
    EXPECT_FALSE(l.name.empty());
  }
  EXPECT_TRUE(c.embedding->w.codes.empty());
  EXPECT_EQ(c.provenance.tool, tool);
}

TEST(QModelIntegrity, SerializedModelsAreSealedAndVerify) {
  const std::vector<uint8_t> bytes = Finalized(kSourceDir + "/tests/data/tiny-random-qwen3", 4, 32);
  ASSERT_FALSE(bytes.empty());
  auto q = QModel::FromBytes(bytes, "q.famq");
  ASSERT_TRUE(q.ok()) << q.status().ToString();
  EXPECT_EQ(q->root().format_version(), 2u);
  ASSERT_NE(q->root().integrity(), nullptr);
  EXPECT_EQ(q->root().integrity()->algorithm()->str(), "xxh64-records/1");
  EXPECT_TRUE(q->VerifyAll().ok());
  // Sealing is a pure function of the contents: resealing changes no byte.
  std::vector<uint8_t> again = bytes;
  ASSERT_TRUE(SealQModel(&again).ok());
  EXPECT_EQ(again, bytes);
  std::vector<uint8_t> junk(64, 0x5A);
  EXPECT_EQ(SealQModel(&junk).code(), StatusCode::kInvalidFormat);
  EXPECT_EQ(junk, std::vector<uint8_t>(64, 0x5A));
}

TEST(QModelIntegrity, Xoring60KBOfWeightCodesIsRefusedNamingTheTensor) {
  const std::vector<uint8_t> bytes = Finalized(kSourceDir + "/models/famq-tiny-s", 8, 32);
  ASSERT_FALSE(bytes.empty());
  auto clean = QModel::FromBytes(bytes, "clean.famq");
  ASSERT_TRUE(clean.ok());
  ASSERT_TRUE(Logits(*clean).ok());
  // 60 KB of the codes of layers.1.gate_up (768 x 128 at 8 bits = 96 KiB).
  // Offsets from an accessor over `bytes` itself (the QModel holds its own copy).
  const fb::QuantLinear& gate_up = *fb::GetSizePrefixedQModel(bytes.data())->linears()->Get(4 + 2);
  const size_t begin = static_cast<size_t>(gate_up.codes()->Data() - bytes.data());
  ASSERT_GE(gate_up.codes()->size(), 60000u);
  std::vector<uint8_t> bad = bytes;
  for (size_t i = 0; i < 60000; ++i) bad[begin + i] ^= 0xA5;
  auto q = QModel::FromBytes(bad, "xor.famq");
  ASSERT_TRUE(q.ok()) << "opening reads no weights; the engine's first use checks them: " << q.status().ToString();
  const Status st = Logits(*q).status();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), StatusCode::kInvalidFormat);
  EXPECT_NE(st.message().find("xor.famq: layers.1.gate_up: checksum mismatch"), std::string::npos) << st.ToString();
  EXPECT_NE(q->VerifyAll().message().find("layers.1.gate_up"), std::string::npos);

  // The same through a file and the opener the commands use.
  const std::string path = testing::TempDir() + "famq_xor_" + std::to_string(::getpid()) + ".famq";
  ASSERT_TRUE(WriteFileAtomic(path, bad.data(), bad.size()).ok());
  auto m = OpenRunnableModel("", path);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  auto e = m->CreateEngine(EngineOptions{});
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find(path + ": layers.1.gate_up: checksum mismatch"), std::string::npos)
      << e.status().ToString();
  std::remove(path.c_str());
}

// `trials` random 16-byte overwrites of a finalized model of fixture `name`.
void MutateAndLoad(const std::string& name, int trials, uint64_t seed, int head_bits) {
  const std::vector<uint8_t> bytes = Finalized(kSourceDir + "/tests/data/" + name, 4, 32, head_bits);
  ASSERT_FALSE(bytes.empty());
  auto clean = QModel::FromBytes(bytes, "clean.famq");
  ASSERT_TRUE(clean.ok());
  auto clean_logits = Logits(*clean);
  ASSERT_TRUE(clean_logits.ok());
  std::mt19937_64 rng(seed);
  int refused = 0, unchanged = 0;
  for (int t = 0; t < trials; ++t) {
    std::vector<uint8_t> bad = bytes;
    const size_t at = std::uniform_int_distribution<size_t>(0, bytes.size() - 16)(rng);
    for (size_t i = 0; i < 16; ++i) bad[at + i] = static_cast<uint8_t>(rng());
    std::string origin = "m";  // appended: GCC 12's -Wrestrict misfires on "m" + std::string at -O3
    origin += std::to_string(t);
    origin += ".famq";
    auto q = QModel::FromBytes(bad, origin);
    Status st = q.ok() ? Logits(*q).status() : q.status();
    if (!st.ok()) {
      ++refused;
      EXPECT_NE(st.message().find(origin), std::string::npos) << "mutation at " << at << ": " << st.ToString();
      continue;
    }
    // Loaded: then it must be the same model (the 16 bytes hit padding or a
    // byte the reader never interprets), with the same logits.
    ++unchanged;
    EXPECT_TRUE(SameModel(*clean, *q)) << name << ": mutation at byte " << at << " loaded a different model";
    auto l = Logits(*q);
    ASSERT_TRUE(l.ok());
    EXPECT_EQ(*l, *clean_logits) << name << ": mutation at byte " << at;
  }
  EXPECT_EQ(refused + unchanged, trials);
  EXPECT_GT(refused, trials * 9 / 10);
  std::printf("[ info ] %s: %d random 16-byte mutations of a %zu-byte model: %d refused, %d load an identical model\n",
              name.c_str(), trials, bytes.size(), refused, unchanged);
}

TEST(QModelIntegrity, EveryRandom16ByteMutationIsRefusedOrChangesNothing) {
  MutateAndLoad("tiny-random-qwen3", 400, 15, 16);  // BF16, tied, fp embedding
  MutateAndLoad("tiny-random-llama", 200, 16, 16);  // F16, untied fp head
  MutateAndLoad("tiny-random-qwen3", 300, 17, 8);   // quantized embedding serving the head
  MutateAndLoad("tiny-random-llama", 200, 18, 4);   // quantized embedding and untied head
}

TEST(QModelIntegrity, ACorruptUntiedHeadIsRefusedNotReplacedByTheEmbedding) {
  const std::vector<uint8_t> bytes = Finalized(kSourceDir + "/tests/data/tiny-random-llama", 4, 32, 16);
  ASSERT_FALSE(bytes.empty());
  auto clean = QModel::FromBytes(bytes, "clean.famq");
  ASSERT_TRUE(clean.ok()) << clean.status().ToString();
  ASSERT_TRUE(Logits(*clean).ok());
  const fb::FloatTensor* head = nullptr;
  for (const fb::FloatTensor* t : *fb::GetSizePrefixedQModel(bytes.data())->float_tensors()) {  // offsets into `bytes`
    if (t->name()->str() == "lm_head.weight") head = t;
  }
  ASSERT_NE(head, nullptr) << "the llama fixture is untied";
  ASSERT_NE(head->half(), nullptr);
  std::vector<uint8_t> bad = bytes;
  bad[static_cast<size_t>(head->half()->Data() - bytes.data()) + 10] ^= 0x01;  // one bit of one value
  auto q = QModel::FromBytes(bad, "head.famq");
  ASSERT_TRUE(q.ok());
  const Status st = Logits(*q).status();
  EXPECT_NE(st.message().find("head.famq: tensor 'lm_head.weight': checksum mismatch"), std::string::npos)
      << st.ToString();
}

TEST(QModelIntegrity, FormatVersion1WithoutIntegrityDataIsRefused) {
  std::vector<uint8_t> bytes = Finalized(kSourceDir + "/tests/data/tiny-random-qwen3", 8, 0);
  ASSERT_FALSE(bytes.empty());
  const fb::QModel* root = fb::GetSizePrefixedQModel(bytes.data());
  auto* table = const_cast<flatbuffers::Table*>(reinterpret_cast<const flatbuffers::Table*>(root));
  ASSERT_TRUE(table->SetField<uint32_t>(fb::QModel::VT_FORMAT_VERSION, 1, 0));
  auto q = QModel::FromBytes(bytes, "old.famq");
  ASSERT_FALSE(q.ok());
  EXPECT_NE(q.status().message().find("old.famq: format version 1 carries no integrity data"), std::string::npos)
      << q.status().ToString();
  EXPECT_NE(q.status().message().find("finalize the model again"), std::string::npos);
}

TEST(QModelFile, ATruncationAfterOpenDoesNotReachTheRunningModel) {
  const std::vector<uint8_t> bytes = Finalized(kSourceDir + "/tests/data/tiny-random-qwen3", 4, 32);
  ASSERT_FALSE(bytes.empty());
  const std::string path = testing::TempDir() + "famq_trunc_" + std::to_string(::getpid()) + ".famq";
  ASSERT_TRUE(WriteFileAtomic(path, bytes.data(), bytes.size()).ok());
  auto q = QModel::Open(path);
  ASSERT_TRUE(q.ok()) << q.status().ToString();
  // Cut the file to 100 bytes, then overwrite what is left, as `cp other.famq q.famq` would.
  ASSERT_EQ(::truncate(path.c_str(), 100), 0);
  {
    std::FILE* f = std::fopen(path.c_str(), "r+b");
    ASSERT_NE(f, nullptr);
    std::fputs("garbage garbage garbage", f);
    std::fclose(f);
  }
  // The model already open runs unchanged (it was read, not mapped: no SIGBUS).
  auto from_file = Logits(*q);
  ASSERT_TRUE(from_file.ok()) << from_file.status().ToString();
  auto reference = QModel::FromBytes(bytes, "mem");
  ASSERT_TRUE(reference.ok());
  auto from_memory = Logits(*reference);
  ASSERT_TRUE(from_memory.ok());
  EXPECT_EQ(*from_file, *from_memory);
  // Opening it again: a clear error naming the file.
  auto again = OpenRunnableModel("", path);
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.status().message().find(path), std::string::npos) << again.status().ToString();
  std::remove(path.c_str());
}

// The engine packs straight from the records (on several threads) and may
// release the file's copy: same logits as packing from unpacked matrices on
// one thread, and a released record is refused by name, never read as zeros.
TEST(QModelFile, ReleasingEngineHasTheSameLogitsAndRefusesReleasedRecords) {
  auto active = ActiveIsa();
  ASSERT_TRUE(active.ok());
  for (const char* fixture : {"tiny-random-qwen3", "tiny-random-llama"})
  for (int head_bits : {8, 4, 16}) {
    SCOPED_TRACE(std::string(fixture) + " head " + std::to_string(head_bits));
    const std::vector<uint8_t> bytes = Finalized(kSourceDir + "/tests/data/" + fixture, 4, 32, head_bits);
    auto kept = QModel::FromBytes(bytes, "kept.famq");
    auto released = QModel::FromBytes(bytes, "released.famq");
    ASSERT_TRUE(kept.ok() && released.ok());
    EngineOptions one;
    one.num_threads = 1;
    one.max_seq_len = 16;
    EngineOptions three = one;
    three.num_threads = 3;
    auto a = CreateQuantizedEngine(*kept, one, *active);
    auto b = CreateQuantizedEngineReleasing(*released, three, *active);
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    const size_t V = static_cast<size_t>((*a)->vocab_size());
    std::vector<float> la(kPrompt.size() * V), lb(kPrompt.size() * V);
    ASSERT_TRUE((*a)->Forward(kPrompt, 0, la.data(), true).ok());
    ASSERT_TRUE((*b)->Forward(kPrompt, 0, lb.data(), true).ok());
    EXPECT_EQ(la, lb);
    // The kept model still serves its records; the released one names them.
    EXPECT_TRUE(kept->Matrix(0).ok());
    auto m = released->Matrix(0);
    ASSERT_FALSE(m.ok());
    EXPECT_EQ(m.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(m.status().message().find("layers.0.qkv: released"), std::string::npos) << m.status().ToString();
    EXPECT_FALSE(released->VerifyAll().ok());
    if (head_bits != 16 && released->lm_head_record() == nullptr) {
      auto h = released->HeadMatrix();
      ASSERT_FALSE(h.ok());
      EXPECT_NE(h.status().message().find("released"), std::string::npos) << h.status().ToString();
    }
    // A second engine from the released model is refused, not built from zeros.
    EXPECT_FALSE(CreateQuantizedEngine(*released, one, *active).ok());
  }
}

// --- the quantized embedding and head (--head-bits) -----------------------

std::vector<float> F32(const TensorView& t) {
  std::vector<float> v(static_cast<size_t>(t.numel()));
  ConvertToF32(t.dtype, t.data, v.size(), v.data());
  return v;
}

// What finalize must store for a [vocab][hidden] tensor at `bits`: RTN,
// symmetric, groups of 32, computed here over the whole matrix at once.
QMatrix ExpectedRtn(const TensorView& t, int bits) {
  const std::vector<float> w = F32(t);
  auto m = quant::QuantizeRtn(w.data(), static_cast<int>(t.shape[0]), static_cast<int>(t.shape[1]),
                              quant::QuantSpec{bits, 32, true});
  EXPECT_TRUE(m.ok());
  return m.ok() ? *m : QMatrix();
}

Result<QModelContents> FinalizedContents(const std::string& dir, int head_bits) {
  FAMQ_ASSIGN_OR_RETURN(ModelDir model, OpenModelDir(dir));
  FAMQ_ASSIGN_OR_RETURN(CalibrationSet calib, CalibrationFromText(model.tokenizer, CalibText(), 32, "corpus"));
  FinalizeOptions o;
  o.method = QuantMethod::kRtn;
  o.wbits = 4;
  o.group_size = 32;
  o.num_threads = 1;
  o.head_bits = head_bits;
  return Finalize(model, dir, calib, o);
}

TEST(QModelQuantizedHead, TiedAndUntiedRoundTripAsRtnOfTheCheckpoint) {
  for (const auto& [fixture, tied] : {std::pair{"tiny-random-qwen3", true}, std::pair{"tiny-random-llama", false}}) {
    const std::string dir = kSourceDir + "/tests/data/" + fixture;
    auto model = OpenModelDir(dir);
    ASSERT_TRUE(model.ok());
    ASSERT_EQ(model->checkpoint.tied(), tied);
    for (int bits : {8, 6, 4}) {
      SCOPED_TRACE(std::string(fixture) + " head " + std::to_string(bits));
      const std::vector<uint8_t> bytes = Finalized(dir, 4, 32, bits);
      auto q = QModel::FromBytes(bytes, "h.famq");
      ASSERT_TRUE(q.ok()) << q.status().ToString();
      EXPECT_TRUE(q->VerifyAll().ok());
      std::vector<uint8_t> again = bytes;
      ASSERT_TRUE(SealQModel(&again).ok());
      EXPECT_EQ(again, bytes);
      // Stored once, quantized; the fp tensors are gone.
      ASSERT_NE(q->embedding_record(), nullptr);
      EXPECT_EQ(q->lm_head_record() != nullptr, !tied);
      // At true size: vocab x hidden x bits / 8 code bytes (6 bits: 3 bytes per 4 codes).
      const size_t count = static_cast<size_t>(q->config().vocab_size) * static_cast<size_t>(q->config().hidden_size);
      EXPECT_EQ(q->embedding_record()->codes()->size(), count * static_cast<size_t>(bits) / 8);
      EXPECT_EQ(q->Tensor("model.embed_tokens.weight").status().code(), StatusCode::kNotFound);
      EXPECT_EQ(q->Tensor("lm_head.weight").status().code(), StatusCode::kNotFound);
      const QMatrix embed = ExpectedRtn(model->checkpoint.embed_tokens(), bits);
      EXPECT_TRUE(SameMatrix(q->EmbeddingMatrix(), embed));
      EXPECT_TRUE(SameMatrix(q->HeadMatrix(), tied ? embed : ExpectedRtn(model->checkpoint.lm_head(), bits)));
      EXPECT_TRUE(std::all_of(embed.zeros.begin(), embed.zeros.end(), [](int8_t z) { return z == 0; }));
      const std::string scheme = "W" + std::to_string(bits) + " g32 symmetric";
      EXPECT_EQ(q->HeadDescription(), tied ? scheme + " (tied)" : scheme + " (untied; embedding " + scheme + ")");
    }
    // 16: as before, the fp tensors and no quantized record.
    auto q = QModel::FromBytes(Finalized(dir, 4, 32, 16), "fp.famq");
    ASSERT_TRUE(q.ok());
    EXPECT_EQ(q->embedding_record(), nullptr);
    EXPECT_EQ(q->lm_head_record(), nullptr);
    EXPECT_TRUE(q->Tensor("model.embed_tokens.weight").ok());
    EXPECT_EQ(q->Tensor("lm_head.weight").ok(), !tied);
    EXPECT_EQ(q->HeadMatrix().status().code(), StatusCode::kNotFound);
    EXPECT_EQ(q->root().format_version(), 2u);
  }
}

// A file written before the quantized head existed (the fuzz seed committed
// with the reader of format version 2) still opens, verifies and runs, with
// its fp embedding and head.
TEST(QModelQuantizedHead, AnOlderFpHeadFileStillLoadsAndRuns) {
  auto q = QModel::Open(kSourceDir + "/tests/fuzz/corpus/fuzz_qmodel/qwen3-rtn-w4-g32.famq");
  ASSERT_TRUE(q.ok()) << q.status().ToString();
  EXPECT_EQ(q->root().format_version(), 2u);
  EXPECT_EQ(q->embedding_record(), nullptr);
  EXPECT_TRUE(q->VerifyAll().ok());
  EXPECT_EQ(q->HeadDescription(), "fp BF16 (tied)");
  auto logits = Logits(*q);
  ASSERT_TRUE(logits.ok()) << logits.status().ToString();
  // The same model finalized today with --head-bits 16 gives the same logits
  // (RTN is deterministic; only the provenance differs).
  auto today = QModel::FromBytes(Finalized(kSourceDir + "/tests/data/tiny-random-qwen3", 4, 32, 16), "now.famq");
  ASSERT_TRUE(today.ok());
  auto now = Logits(*today);
  ASSERT_TRUE(now.ok());
  EXPECT_EQ(*now, *logits);
}

// Tied, the lookup reads the head's packed weights (each ISA's layout);
// untied, the embedding record in place (PackedQuantRows).
TEST(QModelQuantizedHead, EmbeddingLookupIsExactlyQMatrixDequant) {
  auto active = ActiveIsa();
  ASSERT_TRUE(active.ok());
  for (const char* fixture : {"tiny-random-qwen3", "tiny-random-llama"})
  for (int bits : {8, 6, 4})
  for (Isa isa : {Isa::kRef, *active}) {
    SCOPED_TRACE(std::string(fixture) + " " + IsaName(isa));
    auto q = QModel::FromBytes(Finalized(kSourceDir + "/tests/data/" + fixture, 4, 32, bits), "e.famq");
    ASSERT_TRUE(q.ok());
    EngineOptions eo;
    eo.num_threads = 1;
    eo.max_seq_len = 16;
    auto e = CreateQuantizedEngine(*q, eo, isa);
    ASSERT_TRUE(e.ok()) << e.status().ToString();
    const int V = q->config().vocab_size, H = q->config().hidden_size;
    std::vector<int32_t> tokens(static_cast<size_t>(V));
    for (int t = 0; t < V; ++t) tokens[static_cast<size_t>(t)] = t;
    std::vector<float> x(static_cast<size_t>(V) * static_cast<size_t>(H));
    ASSERT_TRUE((*e)->Embed(tokens, x.data()).ok());
    auto m = q->EmbeddingMatrix();
    ASSERT_TRUE(m.ok());
    int mismatches = 0;
    for (int t = 0; t < V; ++t) {
      for (int c = 0; c < H; ++c) mismatches += x[static_cast<size_t>(t) * H + c] != m->Dequant(t, c);
    }
    EXPECT_EQ(mismatches, 0) << "head " << bits;
    EXPECT_FALSE((*e)->Embed(std::vector<int32_t>{V}, x.data()).ok());
  }
}

// The head's logits against h . W^T in double, W the stored head dequantized
// and h the engine's own final hidden state: the weight-only kernels round
// the activations to int8 per block of 32 (kernels/qgemm.h: step amax / 127,
// so an error of at most amax / 254 per element), hence for row r
//   |logit - ref| <= sum_b (amax_b / 254) * sum_{c in b} |W[r][c]|
// plus float accumulation (1e-5 of sum |h||W|). A wrong row, scale, code
// order or nibble breaks the bound by orders of magnitude.
void CheckHeadLogits(const std::string& fixture, int bits, Isa isa) {
  SCOPED_TRACE(fixture + " head " + std::to_string(bits) + " " + IsaName(isa));
  auto q = QModel::FromBytes(Finalized(kSourceDir + "/tests/data/" + fixture, 4, 32, bits), "l.famq");
  ASSERT_TRUE(q.ok());
  EngineOptions eo;
  eo.num_threads = 1;
  eo.max_seq_len = 16;
  auto e = CreateQuantizedEngine(*q, eo, isa);
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  const int V = q->config().vocab_size, H = q->config().hidden_size;
  const size_t n = kPrompt.size();
  std::vector<float> logits(n * static_cast<size_t>(V)), hidden(n * static_cast<size_t>(H));
  ASSERT_TRUE((*e)->ForwardHidden(kPrompt, 0, logits.data(), hidden.data()).ok());
  auto w = q->HeadMatrix();
  ASSERT_TRUE(w.ok());
  double worst = 0.0;  // largest |error| / bound
  for (size_t t = 0; t < n; ++t) {
    const float* h = &hidden[t * static_cast<size_t>(H)];
    for (int r = 0; r < V; ++r) {
      double ref = 0.0, bound = 0.0, mag = 0.0;
      for (int b = 0; b < H / 32; ++b) {
        double amax = 0.0, wsum = 0.0;
        for (int c = 32 * b; c < 32 * b + 32; ++c) {
          const double wv = w->Dequant(r, c);
          ref += static_cast<double>(h[c]) * wv;
          mag += std::fabs(static_cast<double>(h[c]) * wv);
          amax = std::max(amax, std::fabs(static_cast<double>(h[c])));
          wsum += std::fabs(wv);
        }
        bound += amax / 254.0 * wsum;
      }
      bound = bound * 1.001 + 1e-5 * mag + 1e-30;
      const double err = std::fabs(static_cast<double>(logits[t * static_cast<size_t>(V) + r]) - ref);
      worst = std::max(worst, err / bound);
      ASSERT_LE(err, bound) << "position " << t << ", row " << r << ": logit " << logits[t * V + r] << ", h.W " << ref;
    }
  }
  std::printf("[ info ] %s head W%d (%s): largest |logit - h.W| is %.3f of its bound\n", fixture.c_str(), bits,
              IsaName(isa), worst);
}

TEST(QModelQuantizedHead, HeadLogitsAreTheDequantizedHeadWithinTheActivationRounding) {
  auto active = ActiveIsa();
  ASSERT_TRUE(active.ok());
  for (Isa isa : {Isa::kRef, *active}) {
    CheckHeadLogits("tiny-random-qwen3", 8, isa);
    CheckHeadLogits("tiny-random-qwen3", 4, isa);
    CheckHeadLogits("tiny-random-llama", 4, isa);
    CheckHeadLogits("tiny-random-qwen3", 6, isa);
    CheckHeadLogits("tiny-random-llama", 6, isa);
  }
}

// A 6-bit embedding / head (stored as a bit stream, decoded straight into the
// 8-bit packing) computes exactly what the same codes stored one per byte as
// an 8-bit record compute: the logits of every position are equal, tied
// (packed head serves the lookup) and untied (the embedding read in place).
TEST(QModelQuantizedHead, ASixBitHeadRunsExactlyAsTheSameCodesHeldAsEightBit) {
  auto active = ActiveIsa();
  ASSERT_TRUE(active.ok());
  for (const char* fixture : {"tiny-random-qwen3", "tiny-random-llama"}) {
    SCOPED_TRACE(fixture);
    auto six = FinalizedContents(kSourceDir + "/tests/data/" + fixture, 6);
    ASSERT_TRUE(six.ok()) << six.status().ToString();
    ASSERT_TRUE(six->embedding);
    QModelContents eight = *six;
    for (std::optional<QLinearContents>* rec : {&eight.embedding, &eight.lm_head}) {
      if (*rec) (*rec)->w.bits = 8;  // the same codes, scales and zero points as an 8-bit record
    }
    auto six_bytes = SerializeQModel(*six);
    auto eight_bytes = SerializeQModel(eight);
    ASSERT_TRUE(six_bytes.ok() && eight_bytes.ok());
    EXPECT_LT(six_bytes->size(), eight_bytes->size());
    auto q6 = QModel::FromBytes(*six_bytes, "six.famq");
    auto q8 = QModel::FromBytes(*eight_bytes, "eight.famq");
    ASSERT_TRUE(q6.ok()) << q6.status().ToString();
    ASSERT_TRUE(q8.ok()) << q8.status().ToString();
    EXPECT_EQ(q6->embedding_record()->bits(), 6);
    EXPECT_EQ(q8->embedding_record()->bits(), 8);
    for (Isa isa : {Isa::kRef, *active}) {
      SCOPED_TRACE(IsaName(isa));
      EngineOptions eo;
      eo.num_threads = 1;
      eo.max_seq_len = 16;
      auto e6 = CreateQuantizedEngine(*q6, eo, isa);
      auto e8 = CreateQuantizedEngine(*q8, eo, isa);
      ASSERT_TRUE(e6.ok()) << e6.status().ToString();
      ASSERT_TRUE(e8.ok()) << e8.status().ToString();
      const size_t V = static_cast<size_t>((*e6)->vocab_size());
      std::vector<float> l6(kPrompt.size() * V), l8(kPrompt.size() * V);
      ASSERT_TRUE((*e6)->Forward(kPrompt, 0, l6.data(), true).ok());
      ASSERT_TRUE((*e8)->Forward(kPrompt, 0, l8.data(), true).ok());
      EXPECT_EQ(l6, l8);
    }
  }
}

// Perplexity of `ids` (one window, every position predicting the next) on `q`.
Result<double> WindowPerplexity(const QModel& q, const std::vector<int32_t>& ids) {
  EngineOptions eo;
  eo.num_threads = 1;
  eo.max_seq_len = static_cast<int>(ids.size());
  eo.max_batch = static_cast<int>(ids.size());
  FAMQ_ASSIGN_OR_RETURN(std::unique_ptr<Engine> e, CreateQuantizedEngine(q, eo, Isa::kRef));
  const size_t V = static_cast<size_t>(e->vocab_size());
  std::vector<float> logits(ids.size() * V);
  FAMQ_RETURN_IF_ERROR(e->Forward(ids, 0, logits.data(), true));
  double nll = 0.0;
  for (size_t t = 0; t + 1 < ids.size(); ++t) {
    const float* l = &logits[t * V];
    const double mx = *std::max_element(l, l + V);
    double z = 0.0;
    for (size_t v = 0; v < V; ++v) z += std::exp(static_cast<double>(l[v]) - mx);
    nll -= static_cast<double>(l[static_cast<size_t>(ids[t + 1])]) - mx - std::log(z);
  }
  return std::exp(nll / static_cast<double>(ids.size() - 1));
}

// The default head on a trained model of the family against the head kept as
// stored, the same RTN W4 blocks, on the first 256 tokens of held-out text
// (models/eval/test/bible.jsonl, its JSON line read as text): the issue's
// gate for the default head (<= 0.5 % perplexity on every test domain of
// famq-tiny-m, measured with `famq eval` in docs/DEVICE.md) applied to one
// window of famq-tiny-s. W8 g32 keeps each weight within 1/254 of its group's
// largest magnitude, so the measured change is far inside the gate; W4
// (within 1/14) is printed, not gated.
TEST(QModelQuantizedHead, TheDefaultHeadCostsLessThanHalfAPercentOfPerplexity) {
  const std::string dir = kSourceDir + "/models/famq-tiny-s";
  auto model = OpenModelDir(dir);
  ASSERT_TRUE(model.ok());
  auto text = ReadFile(kSourceDir + "/models/eval/test/bible.jsonl");
  ASSERT_TRUE(text.ok());
  std::vector<int32_t> ids;
  ASSERT_TRUE(model->tokenizer.Encode(text->substr(0, 4000), &ids).ok());
  ASSERT_GE(ids.size(), 256u);
  ids.resize(256);
  double ppl[17] = {};
  for (int bits : {16, 8, 6, 4}) {
    auto q = QModel::FromBytes(Finalized(dir, 4, 32, bits), "tiny-s.famq");
    ASSERT_TRUE(q.ok());
    auto p = WindowPerplexity(*q, ids);
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    ppl[bits] = *p;
  }
  std::printf("[ info ] famq-tiny-s, RTN W4 g32 blocks, 256 tokens: ppl %.3f (head as stored), %.3f (W8, %+.3f%%), "
              "%.3f (W6, %+.3f%%), %.3f (W4, %+.3f%%)\n", ppl[16], ppl[8], 100 * (ppl[8] / ppl[16] - 1), ppl[6],
              100 * (ppl[6] / ppl[16] - 1), ppl[4], 100 * (ppl[4] / ppl[16] - 1));
  ASSERT_EQ(kDefaultHeadBits, 8);
  EXPECT_LE(std::fabs(ppl[8] / ppl[16] - 1), 0.005);
  EXPECT_NE(ppl[8], ppl[16]) << "the quantized head changed nothing: is it used at all?";
}

TEST(QModelQuantizedHead, ACorruptQuantizedHeadIsRefusedNamingIt) {
  const std::vector<uint8_t> bytes = Finalized(kSourceDir + "/tests/data/tiny-random-llama", 4, 32, 8);
  const fb::QModel* root = fb::GetSizePrefixedQModel(bytes.data());
  for (const auto& [record, name] : {std::pair{root->embedding(), std::string(kQEmbeddingName)},
                                     std::pair{root->lm_head(), std::string(kQLmHeadName)}}) {
    ASSERT_NE(record, nullptr);
    std::vector<uint8_t> bad = bytes;
    bad[static_cast<size_t>(record->codes()->Data() - bytes.data()) + 7] ^= 0x10;  // one bit of one code
    auto q = QModel::FromBytes(bad, "bit.famq");
    ASSERT_TRUE(q.ok()) << "opening reads no weights: " << q.status().ToString();
    const Status st = Logits(*q).status();
    EXPECT_EQ(st.code(), StatusCode::kInvalidFormat);
    EXPECT_NE(st.message().find("bit.famq: " + name + ": checksum mismatch"), std::string::npos) << st.ToString();
    EXPECT_NE(q->VerifyAll().message().find(name), std::string::npos);
  }
}

// `base` edited by `edit`, serialized and sealed, must be refused on open as
// kInvalidFormat with a message containing `expect`.
void ExpectRefusedOnOpen(const QModelContents& base, const std::function<void(QModelContents*)>& edit,
                         const std::string& expect) {
  QModelContents c = base;
  edit(&c);
  auto bytes = SerializeQModel(c);
  ASSERT_TRUE(bytes.ok()) << bytes.status().ToString();
  auto q = QModel::FromBytes(*bytes, "bad.famq");
  ASSERT_FALSE(q.ok()) << "accepted: " << expect;
  EXPECT_EQ(q.status().code(), StatusCode::kInvalidFormat);
  EXPECT_NE(q.status().message().find(expect), std::string::npos) << q.status().ToString();
}

// Records that are well-formed FlatBuffers, sealed with correct digests, but
// break an invariant: each refused on open with a message naming it.
TEST(QModelQuantizedHead, MalformedRecordsAreRefusedOnOpen) {
  auto base = FinalizedContents(kSourceDir + "/tests/data/tiny-random-llama", 8);
  ASSERT_TRUE(base.ok()) << base.status().ToString();
  ASSERT_TRUE(base->embedding && base->lm_head);
  auto refused = [&](const std::function<void(QModelContents*)>& edit, const std::string& expect) {
    ExpectRefusedOnOpen(*base, edit, expect);
  };
  {  // the untouched contents load
    auto bytes = SerializeQModel(*base);
    ASSERT_TRUE(bytes.ok());
    ASSERT_TRUE(QModel::FromBytes(*bytes, "ok.famq").ok());
  }
  refused(
      [](QModelContents* c) {  // one row short
        QMatrix& w = c->embedding->w;
        w.rows -= 1;
        w.codes.resize(w.codes.size() - static_cast<size_t>(w.cols));
        w.scales.resize(w.scales.size() - static_cast<size_t>(w.groups_per_row()));
        w.zeros.resize(w.zeros.size() - static_cast<size_t>(w.groups_per_row()));
      },
      "bad.famq: model.embed_tokens: shape [");
  refused([](QModelContents* c) { c->lm_head->w.cols /= 2; }, "bad.famq: lm_head: shape [");
  refused([](QModelContents* c) { c->lm_head->w.codes.resize(100); }, "bad.famq: lm_head: 8-bit codes hold 100 bytes");
  refused([](QModelContents* c) { c->embedding->w.scales.pop_back(); }, "scales / zero points hold");
  refused([](QModelContents* c) { c->embedding->w.scales[5] = std::nanf(""); }, "model.embed_tokens: a scale is");
  refused([](QModelContents* c) { c->embedding->w.bits = 5; }, "model.embed_tokens: 5-bit codes");
  refused([](QModelContents* c) { c->lm_head->bias.assign(static_cast<size_t>(c->lm_head->w.rows), 0.5f); },
          "lm_head: a quantized embedding or head takes no bias");
  refused([](QModelContents* c) { c->lm_head->name = "output"; }, "bad.famq: lm_head: missing or misnamed");
  refused(
      [](QModelContents* c) {  // consistent counts, but groups of 16: not what the kernels take
        QMatrix& w = c->embedding->w;
        w.group_size = 16;
        std::vector<float> s;
        std::vector<int8_t> z;
        for (size_t i = 0; i < w.scales.size(); ++i) {
          s.insert(s.end(), 2, w.scales[i]);
          z.insert(z.end(), 2, w.zeros[i]);
        }
        w.scales = s;
        w.zeros = z;
      },
      "model.embed_tokens: weight-only kernels need input features and group size in multiples of 32");
  refused(
      [](QModelContents* c) {
        FloatTensorContents t;
        t.name = "model.embed_tokens.weight";
        t.dtype = DType::kF32;
        t.shape = {static_cast<uint32_t>(c->embedding->w.rows), static_cast<uint32_t>(c->embedding->w.cols)};
        t.raw.assign(size_t{t.shape[0]} * t.shape[1] * 4, 0);
        c->float_tensors.push_back(std::move(t));
      },
      "bad.famq: both a quantized and an fp embedding");
  refused(
      [](QModelContents* c) {  // an untied model without its head is not tied to the embedding silently
        c->lm_head.reset();
        FloatTensorContents t;
        t.name = "lm_head.weight";
        t.dtype = DType::kF32;
        t.shape = {7, 3};
        t.raw.assign(21 * 4, 0);
        c->float_tensors.push_back(std::move(t));
      },
      "tensor 'lm_head.weight' has shape [7, 3]");
  // A sealed file whose embedding digest is changed: the header covers it.
  auto bytes = SerializeQModel(*base);
  ASSERT_TRUE(bytes.ok());
  const fb::QIntegrity* in = fb::GetSizePrefixedQModel(bytes->data())->integrity();
  auto* table = const_cast<flatbuffers::Table*>(reinterpret_cast<const flatbuffers::Table*>(in));
  ASSERT_TRUE(table->SetField<uint64_t>(fb::QIntegrity::VT_EMBEDDING, in->embedding() ^ 1, 0));
  auto q = QModel::FromBytes(*bytes, "dig.famq");
  ASSERT_FALSE(q.ok());
  EXPECT_NE(q.status().message().find("dig.famq: header"), std::string::npos) << q.status().ToString();
}


// ---------------------------------------------------------------- 3 and 2 bits

TEST(QModelCodePacking, DenseLayoutsRoundTripAndMatchTheSchemaComment) {
  EXPECT_EQ(PackedCodeBytes(8, 64), 64u);
  EXPECT_EQ(PackedCodeBytes(4, 64), 32u);
  EXPECT_EQ(PackedCodeBytes(3, 64), 24u);
  EXPECT_EQ(PackedCodeBytes(2, 64), 16u);
  EXPECT_EQ(PackedCodeBytes(3, 5), 2u);  // 15 bits
  // 3 bits, by hand: codes -4..3 are u = 0..7, low bit first in a
  // little-endian stream: sum u_i << 3i = 0xFAC688.
  const int8_t ramp[8] = {-4, -3, -2, -1, 0, 1, 2, 3};
  uint8_t three[3] = {0, 0, 0};
  PackCodes(3, ramp, 8, three);
  EXPECT_EQ(three[0], 0x88);
  EXPECT_EQ(three[1], 0xC6);
  EXPECT_EQ(three[2], 0xFA);
  // 2 bits: codes -2, -1, 0, 1 are u = 0..3: 0b11100100.
  uint8_t two = 0;
  PackCodes(2, ramp + 2, 4, &two);
  EXPECT_EQ(two, 0xE4);
  // 6 bits, by hand: codes -32, -1, 0, 31 are u = 0, 31, 32, 63:
  // 0 | 31 << 6 | 32 << 12 | 63 << 18 = 0xFE07C0, 4 codes in 3 bytes.
  EXPECT_EQ(PackedCodeBytes(6, 4), 3u);
  EXPECT_EQ(PackedCodeBytes(6, 5), 4u);  // 30 bits
  const int8_t six_codes[4] = {-32, -1, 0, 31};
  uint8_t six[3] = {0, 0, 0};
  PackCodes(6, six_codes, 4, six);
  EXPECT_EQ(six[0], 0xC0);
  EXPECT_EQ(six[1], 0x07);
  EXPECT_EQ(six[2], 0xFE);
  EXPECT_TRUE(StoredCodeBitsSupported(6));
  EXPECT_FALSE(StoredCodeBitsSupported(5));
  std::mt19937 rng(7);
  for (int bits : {2, 3, 4, 6, 8}) {
    for (size_t count : {size_t{1}, size_t{3}, size_t{5}, size_t{7}, size_t{8}, size_t{9}, size_t{1000}, size_t{1001},
                         size_t{4096}}) {
      std::uniform_int_distribution<int> code(-(1 << (bits - 1)), (1 << (bits - 1)) - 1);
      std::vector<int8_t> codes(count);
      for (int8_t& c : codes) c = static_cast<int8_t>(code(rng));
      std::vector<uint8_t> packed(PackedCodeBytes(bits, count), 0xFF);
      PackCodes(bits, codes.data(), count, packed.data());
      std::vector<int8_t> back(count, 99);
      UnpackCodes(bits, packed.data(), count, back.data());
      EXPECT_EQ(back, codes) << "bits " << bits << " count " << count;
    }
    // Every byte pattern decodes to codes in range.
    std::vector<uint8_t> noise(PackedCodeBytes(bits, 64));
    for (uint8_t& b : noise) b = static_cast<uint8_t>(rng());
    std::vector<int8_t> out(64);
    UnpackCodes(bits, noise.data(), 64, out.data());
    for (int8_t c : out) {
      EXPECT_GE(c, -(1 << (bits - 1)));
      EXPECT_LE(c, (1 << (bits - 1)) - 1);
    }
  }
}

// A model finalized with RTN (fast) on the reference kernels, not serialized.
Result<QModelContents> RtnContents(const std::string& dir, int wbits, int group, bool symmetric,
                                   bool f16_scales = false) {
  FAMQ_ASSIGN_OR_RETURN(ModelDir model, OpenModelDir(dir));
  FAMQ_ASSIGN_OR_RETURN(CalibrationSet calib, CalibrationFromText(model.tokenizer, CalibText(), 32, "corpus"));
  FinalizeOptions o;
  o.method = QuantMethod::kRtn;
  o.wbits = wbits;
  o.group_size = group;
  o.symmetric = symmetric;
  o.f16_scales = f16_scales;
  o.num_threads = 1;
  o.isa = Isa::kRef;
  return Finalize(model, dir, calib, o);
}

TEST(QModelLowBits, ThreeAndTwoBitModelsAreStoredAtTrueSizeAndRoundTrip) {
  const std::string dir = kSourceDir + "/tests/data/tiny-random-qwen3";
  auto w4 = RtnContents(dir, 4, 32, false);
  ASSERT_TRUE(w4.ok()) << w4.status().ToString();
  auto w4_bytes = SerializeQModel(*w4);
  ASSERT_TRUE(w4_bytes.ok());
  for (const auto& [bits, group, sym] : {std::tuple{3, 32, false}, std::tuple{2, 32, true}, std::tuple{3, 0, true},
                                         std::tuple{2, 0, false}}) {
    SCOPED_TRACE(testing::Message() << "W" << bits << " group " << group << " symmetric " << sym);
    auto c = RtnContents(dir, bits, group, sym);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    auto bytes = SerializeQModel(*c);
    ASSERT_TRUE(bytes.ok());
    auto q = QModel::FromBytes(*bytes, "low.famq");
    ASSERT_TRUE(q.ok()) << q.status().ToString();
    EXPECT_TRUE(q->VerifyAll().ok());
    EXPECT_EQ(q->root().wbits(), bits);
    ASSERT_EQ(q->root().linears()->size(), c->linears.size());
    size_t w4_code_bytes = 0, code_bytes = 0, w4_zero_bytes = 0;
    for (uint32_t i = 0; i < c->linears.size(); ++i) {
      const QMatrix& want = c->linears[i].w;
      const fb::QuantLinear& rec = *q->root().linears()->Get(i);
      // True size: ceil(rows * cols * bits / 8) code bytes in the file.
      const size_t count = static_cast<size_t>(want.rows) * static_cast<size_t>(want.cols);
      EXPECT_EQ(rec.bits(), bits);
      EXPECT_EQ(rec.codes()->size(), (count * static_cast<size_t>(bits) + 7) / 8) << c->linears[i].name;
      code_bytes += rec.codes()->size();
      const fb::QuantLinear& w4_rec = *fb::GetSizePrefixedQModel(w4_bytes->data())->linears()->Get(i);
      w4_code_bytes += w4_rec.codes()->size();
      ASSERT_NE(w4_rec.zeros(), nullptr);  // asymmetric: zero points stored
      w4_zero_bytes += w4_rec.zeros()->size();
      // Symmetric records store no zero points (all 0), asymmetric ones one per group.
      EXPECT_EQ(rec.zeros() == nullptr, sym) << c->linears[i].name;
      auto got = q->Matrix(static_cast<int>(i));
      ASSERT_TRUE(got.ok()) << got.status().ToString();
      EXPECT_EQ(got->bits, bits);
      EXPECT_EQ(got->codes, want.codes) << c->linears[i].name;
      EXPECT_EQ(got->scales, want.scales);
      EXPECT_EQ(got->zeros, want.zeros);
    }
    // The whole file shrinks against (asymmetric) W4 by the code bytes saved
    // and, symmetric, the zero points not stored, less the difference in scale
    // counts (per channel) and FlatBuffers alignment (at most 8 bytes per vector).
    EXPECT_EQ(code_bytes * 4, w4_code_bytes * static_cast<size_t>(bits));
    if (group == 32) {
      const double saved = static_cast<double>(w4_bytes->size()) - static_cast<double>(bytes->size());
      const size_t want_saved = w4_code_bytes - code_bytes + (sym ? w4_zero_bytes : 0);
      EXPECT_NEAR(saved, static_cast<double>(want_saved), 8.0 * 3 * c->linears.size());
    }
    // Sealing covers the bytes as stored, and the model runs.
    std::vector<uint8_t> again = *bytes;
    ASSERT_TRUE(SealQModel(&again).ok());
    EXPECT_EQ(again, *bytes);
    auto logits = Logits(*q);
    ASSERT_TRUE(logits.ok()) << logits.status().ToString();
    for (float v : *logits) ASSERT_TRUE(std::isfinite(v));
    // A flipped bit in the 3/2-bit codes is refused by the digest.
    std::vector<uint8_t> bad = *bytes;
    const fb::QuantLinear& first = *fb::GetSizePrefixedQModel(bad.data())->linears()->Get(0);
    bad[static_cast<size_t>(first.codes()->Data() - bad.data()) + 3] ^= 0x10;
    auto corrupt = QModel::FromBytes(bad, "flip.famq");
    const Status st = corrupt.ok() ? Logits(*corrupt).status() : corrupt.status();
    EXPECT_NE(st.message().find("flip.famq: layers.0.qkv: checksum mismatch"), std::string::npos) << st.ToString();
  }
}

TEST(QModelLowBits, WrongCodeCountsAndLowBitHeadsAreRefused) {
  auto base = RtnContents(kSourceDir + "/tests/data/tiny-random-qwen3", 3, 32, false);
  ASSERT_TRUE(base.ok()) << base.status().ToString();
  auto refused = [&](const std::function<void(QModelContents*)>& edit, const std::string& expect) {
    ExpectRefusedOnOpen(*base, edit, expect);
  };
  // 300 codes take 113 bytes at 3 bits, not what the shape needs.
  refused([](QModelContents* c) { c->linears[1].w.codes.resize(300); }, "layers.0.o_proj: 3-bit codes hold 113 bytes");
  refused([](QModelContents* c) { c->linears[1].w.bits = 5; },
          "layers.0.o_proj: 5-bit codes (this famq reads 2, 3, 4, 6 or 8)");
  // 6 bits is a stored width for the embedding / head only: a block linear
  // holding valid 6-bit codes at their true size is refused, naming it.
  refused([](QModelContents* c) { c->linears[1].w.bits = 6; },
          "layers.0.o_proj: 6-bit codes: only a quantized embedding or head is 6-bit");
  refused([](QModelContents* c) { c->linears[2].w.zeros[0] = 4; }, "layers.0.gate_up: zero point 4 outside the code range");
  // The embedding and head are looked up in place as 4- or 8-bit codes.
  auto with_head = FinalizedContents(kSourceDir + "/tests/data/tiny-random-qwen3", 8);
  ASSERT_TRUE(with_head.ok());
  ASSERT_TRUE(with_head->embedding);
  QModelContents c = *with_head;
  auto requant = quant::QuantizeRtn(std::vector<float>(c.embedding->w.codes.size(), 0.25f).data(), c.embedding->w.rows,
                                    c.embedding->w.cols, quant::QuantSpec{3, 32, true});
  ASSERT_TRUE(requant.ok());
  c.embedding->w = *requant;
  auto bytes = SerializeQModel(c);
  ASSERT_TRUE(bytes.ok());
  auto q = QModel::FromBytes(*bytes, "head3.famq");
  ASSERT_FALSE(q.ok());
  EXPECT_NE(
      q.status().message().find("model.embed_tokens: 3-bit codes: a quantized embedding or head is 4-, 6- or 8-bit"),
      std::string::npos)
      << q.status().ToString();
  // A 6-bit head whose codes hold a byte count other than vocab x hidden x 6 / 8.
  auto six = FinalizedContents(kSourceDir + "/tests/data/tiny-random-llama", 6);
  ASSERT_TRUE(six.ok());
  ExpectRefusedOnOpen(*six, [](QModelContents* m) { m->lm_head->w.codes.resize(1001); },
                      "bad.famq: lm_head: 6-bit codes hold 751 bytes, expected");
  ExpectRefusedOnOpen(*six, [](QModelContents* m) { m->embedding->w.zeros[3] = 32; },
                      "model.embed_tokens: zero point 32 outside the code range");
}

// ---------------------------------------------------------------- fp16 scales, absent zero points

// --scale-dtype f16: the quantizer rounds every scale to an fp16 value, the
// writer stores them in 2 bytes (and no zero points when all are 0), the
// reader widens them exactly: the matrices read back are the quantizer's,
// the embedding rows the engine looks up are their dequantization, and the
// file is smaller by 2 bytes per group (3 when symmetric).
TEST(QModelScales, Fp16ScalesAndAbsentZeroPointsRoundTripExactly) {
  for (const char* fixture : {"tiny-random-qwen3", "tiny-random-llama"})  // tied; untied (its own quantized head)
  for (bool sym : {false, true}) {
    SCOPED_TRACE(std::string(fixture) + (sym ? " symmetric" : " with zero points"));
    const std::string dir = kSourceDir + "/tests/data/" + fixture;
    auto c = RtnContents(dir, 4, 32, sym, true);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    auto c32 = RtnContents(dir, 4, 32, sym, false);
    ASSERT_TRUE(c32.ok()) << c32.status().ToString();
    std::vector<const QLinearContents*> all;
    for (const auto& l : c->linears) all.push_back(&l);
    if (c->embedding) all.push_back(&*c->embedding);
    if (c->lm_head) all.push_back(&*c->lm_head);
    size_t groups = 0, inexact32 = 0;
    for (const QLinearContents* l : all) {
      groups += l->w.scales.size();
      for (float v : l->w.scales) ASSERT_EQ(F16ToF32(F32ToF16(v)), v) << l->name << ": not an fp16 value";
    }
    for (const auto& l : c32->linears) {
      for (float v : l.w.scales) inexact32 += F16ToF32(F32ToF16(v)) != v;
    }
    EXPECT_GT(inexact32, 0u) << "fp32 scales happen to be fp16 values: the test would not tell the two apart";
    auto bytes = SerializeQModel(*c);
    ASSERT_TRUE(bytes.ok());
    auto bytes32 = SerializeQModel(*c32);
    ASSERT_TRUE(bytes32.ok());
    auto q = QModel::FromBytes(*bytes, "f16.famq");
    ASSERT_TRUE(q.ok()) << q.status().ToString();
    ASSERT_TRUE(q->VerifyAll().ok());
    for (uint32_t i = 0; i < c->linears.size(); ++i) {
      const fb::QuantLinear& rec = *q->root().linears()->Get(i);
      EXPECT_EQ(rec.scales(), nullptr);
      ASSERT_NE(rec.scales_f16(), nullptr);
      EXPECT_EQ(rec.zeros() == nullptr, sym);
      auto got = q->Matrix(static_cast<int>(i));
      ASSERT_TRUE(got.ok()) << got.status().ToString();
      EXPECT_EQ(got->codes, c->linears[i].w.codes);
      EXPECT_EQ(got->scales, c->linears[i].w.scales);
      EXPECT_EQ(got->zeros, c->linears[i].w.zeros);
    }
    // The embedding (and an untied head) are symmetric: no zero points stored.
    ASSERT_NE(q->root().embedding(), nullptr);
    EXPECT_EQ(q->root().embedding()->zeros(), nullptr);
    EXPECT_NE(q->root().embedding()->scales_f16(), nullptr);
    auto em = q->EmbeddingMatrix();
    ASSERT_TRUE(em.ok());
    EXPECT_EQ(em->scales, c->embedding->w.scales);
    // The rows the engine looks up: packed (tied head) or read in place (untied).
    EngineOptions eo;
    eo.num_threads = 1;
    eo.max_seq_len = 16;
    auto e = CreateQuantizedEngine(*q, eo, Isa::kRef);
    ASSERT_TRUE(e.ok()) << e.status().ToString();
    const int V = q->config().vocab_size, H = q->config().hidden_size;
    std::vector<int32_t> tokens(static_cast<size_t>(V));
    for (int t = 0; t < V; ++t) tokens[static_cast<size_t>(t)] = t;
    std::vector<float> x(static_cast<size_t>(V) * static_cast<size_t>(H));
    ASSERT_TRUE((*e)->Embed(tokens, x.data()).ok());
    int mismatches = 0;
    for (int t = 0; t < V; ++t) {
      for (int col = 0; col < H; ++col) mismatches += x[static_cast<size_t>(t) * H + col] != em->Dequant(t, col);
    }
    EXPECT_EQ(mismatches, 0);
    auto logits = Logits(*q);
    ASSERT_TRUE(logits.ok()) << logits.status().ToString();
    for (float v : *logits) ASSERT_TRUE(std::isfinite(v));
    // 2 bytes saved per scale (zero points: absent in both files when
    // symmetric; the embedding's and head's in both), FlatBuffers alignment aside.
    const double saved = static_cast<double>(bytes32->size()) - static_cast<double>(bytes->size());
    EXPECT_NEAR(saved, 2.0 * static_cast<double>(groups), 8.0 * static_cast<double>(all.size()));
  }
}

TEST(QModelScales, BadFp16ScalesAreRefusedOnOpen) {
  auto base = RtnContents(kSourceDir + "/tests/data/tiny-random-qwen3", 4, 32, true, true);
  ASSERT_TRUE(base.ok()) << base.status().ToString();
  auto ok = SerializeQModel(*base);
  ASSERT_TRUE(ok.ok());
  ASSERT_TRUE(QModel::FromBytes(*ok, "ok.famq").ok());
  // fp16 infinity and a negative value are stored as fp16 (exact) and refused.
  ExpectRefusedOnOpen(
      *base, [](QModelContents* c) { c->linears[0].w.scales[3] = INFINITY; }, "layers.0.qkv: a scale is negative");
  ExpectRefusedOnOpen(
      *base, [](QModelContents* c) { c->linears[1].w.scales[0] = -0.5f; }, "layers.0.o_proj: a scale is negative");
  // A zero point outside the code range still needs its vector (asymmetric record).
  ExpectRefusedOnOpen(
      *base, [](QModelContents* c) { c->linears[2].w.zeros[0] = 8; }, "layers.0.gate_up: zero point 8 outside");
}

}  // namespace
}  // namespace famq
