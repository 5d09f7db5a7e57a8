// The quantized-model file's integrity data and its behaviour when the file
// changes: every corruption is refused with an error naming the file and the
// record (or provably changes nothing), format version 1 is refused, a file
// truncated after it was opened does not reach the running model.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/file.h"
#include "finalize/finalize.h"
#include "kernels/isa.h"
#include "qmodel/qmodel_engine.h"

namespace famq {
namespace {

const std::string kSourceDir = FAMQ_SOURCE_DIR;

std::string CalibText() {
  auto t = ReadFile(kSourceDir + "/tests/data/tokenizer_corpus.jsonl");
  EXPECT_TRUE(t.ok());
  return t.ok() ? t->substr(0, 6000) : std::string();
}

// A small model finalized with RTN (fast) and serialized.
std::vector<uint8_t> Finalized(const std::string& dir, int wbits, int group) {
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
void MutateAndLoad(const std::string& name, int trials, uint64_t seed) {
  const std::vector<uint8_t> bytes = Finalized(kSourceDir + "/tests/data/" + name, 4, 32);
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
  MutateAndLoad("tiny-random-qwen3", 400, 15);  // BF16, tied
  MutateAndLoad("tiny-random-llama", 200, 16);  // F16, untied head
}

TEST(QModelIntegrity, ACorruptUntiedHeadIsRefusedNotReplacedByTheEmbedding) {
  const std::vector<uint8_t> bytes = Finalized(kSourceDir + "/tests/data/tiny-random-llama", 4, 32);
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

}  // namespace
}  // namespace famq
