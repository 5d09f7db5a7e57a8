// famq-rt export --gguf (runtime/export): the fp16 rounding, the block
// layouts, the container, and an export read back and decoded here against
// the .famq's dequantized weights. llama.cpp itself checks the files in
// tests/gguf/run_gguf_test.sh (ctest gguf_llama_cpp).
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "core/file.h"
#include "export/gguf_export.h"
#include "famq/famq.h"
#include "export/gguf_writer.h"
#include "finalize/calibration_set.h"
#include "finalize/finalize.h"
#include "model/dtype.h"
#include "model/model_dir.h"
#include "qmodel/qmodel.h"
#include "tokenizer/tokenizer.h"

namespace famq {
namespace {

using gguf::F32ToF16;

const std::string kData = std::string(FAMQ_SOURCE_DIR) + "/tests/data";

TEST(Gguf, F16RoundsToNearestEven) {
  EXPECT_EQ(F32ToF16(1.0f), 0x3c00);
  EXPECT_EQ(F32ToF16(-2.0f), 0xc000);
  EXPECT_EQ(F32ToF16(0.0f), 0x0000);
  EXPECT_EQ(F32ToF16(65504.0f), 0x7bff);
  EXPECT_EQ(F32ToF16(65519.0f), 0x7bff);
  EXPECT_EQ(F32ToF16(65520.0f), 0x7c00);                // rounds up to infinity
  EXPECT_EQ(F32ToF16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);      // tie -> even
  EXPECT_EQ(F32ToF16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);  // tie -> even (up)
  EXPECT_EQ(F32ToF16(std::ldexp(1.0f, -24)), 0x0001);   // smallest subnormal
  EXPECT_EQ(F32ToF16(std::ldexp(1.0f, -25)), 0x0000);   // tie -> even (zero)
  EXPECT_EQ(F32ToF16(std::ldexp(3.0f, -25)), 0x0002);   // 1.5 units -> 2
  EXPECT_EQ(F32ToF16(std::ldexp(1.0f, -14)), 0x0400);   // smallest normal
  EXPECT_EQ(F32ToF16(0.1f), 0x2e66);
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> e(-14.0f, 15.9f);
  for (int i = 0; i < 100000; ++i) {
    const float x = std::exp2(e(rng));
    const float back = F16ToF32(F32ToF16(x));
    ASSERT_LE(std::fabs(back - x), std::ldexp(x, -11) * 1.0001f) << x;  // half an ulp: 2^-11 relative
  }
}

TEST(Gguf, BlockLayoutsAreGgmls) {
  uint8_t nib[32];
  for (int j = 0; j < 32; ++j) nib[j] = static_cast<uint8_t>(j % 16);
  gguf::BlockQ4_0 b0;
  gguf::PackQ4_0(nib, 0.5f, &b0);
  EXPECT_EQ(b0.d, 0x3800);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(b0.qs[j] & 0x0f, nib[j]);       // weight j: low nibble
    EXPECT_EQ(b0.qs[j] >> 4, nib[j + 16]);    // weight j + 16: high nibble
  }
  gguf::BlockQ4_1 b1;
  gguf::PackQ4_1(nib, 1.0f, -8.0f, &b1);
  EXPECT_EQ(b1.d, 0x3c00);
  EXPECT_EQ(b1.m, 0xc800);
  int8_t codes[32];
  for (int j = 0; j < 32; ++j) codes[j] = static_cast<int8_t>(j * 8 - 128);
  gguf::BlockQ8_0 b8;
  gguf::PackQ8_0(codes, 2.0f, &b8);
  EXPECT_EQ(b8.d, 0x4000);
  EXPECT_EQ(std::memcmp(b8.qs, codes, 32), 0);
}

// A minimal GGUF reader for the checks below: metadata keys with their raw
// value offsets, tensors with type, shape and data.
struct ReadTensor {
  uint32_t type = 0;
  std::vector<uint64_t> ne;
  const uint8_t* data = nullptr;
};
struct ReadGguf {
  std::string bytes;
  std::map<std::string, uint32_t> kv_type;
  std::map<std::string, std::string> strings;
  std::map<std::string, ReadTensor> tensors;
};

ReadGguf Parse(const std::string& path) {
  ReadGguf g;
  auto f = ReadFile(path);
  EXPECT_TRUE(f.ok());
  g.bytes = *f;
  size_t p = 0;
  auto take = [&](void* dst, size_t n) {
    EXPECT_LE(p + n, g.bytes.size());
    std::memcpy(dst, g.bytes.data() + p, n);
    p += n;
  };
  auto u32 = [&] { uint32_t v; take(&v, 4); return v; };
  auto u64 = [&] { uint64_t v; take(&v, 8); return v; };
  auto str = [&] { std::string s(u64(), '\0'); take(s.data(), s.size()); return s; };
  EXPECT_EQ(g.bytes.substr(0, 4), "GGUF");
  p = 4;
  EXPECT_EQ(u32(), 3u);
  const uint64_t nt = u64(), nkv = u64();
  const size_t scalar[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
  for (uint64_t i = 0; i < nkv; ++i) {
    const std::string key = str();
    const uint32_t t = u32();
    g.kv_type[key] = t;
    if (t == 8) {
      g.strings[key] = str();
    } else if (t == 9) {
      const uint32_t et = u32();
      const uint64_t n = u64();
      for (uint64_t k = 0; k < n; ++k) {
        if (et == 8) (void)str(); else p += scalar[et];
      }
    } else {
      p += scalar[t];
    }
  }
  std::vector<std::pair<std::string, uint64_t>> offsets;
  for (uint64_t i = 0; i < nt; ++i) {
    ReadTensor t;
    const std::string name = str();
    const uint32_t nd = u32();
    for (uint32_t d = 0; d < nd; ++d) t.ne.push_back(u64());
    t.type = u32();
    offsets.emplace_back(name, u64());
    g.tensors[name] = t;
  }
  const size_t data = (p + 31) / 32 * 32;
  for (auto& [name, off] : offsets) {
    EXPECT_EQ(off % 32, 0u) << name;
    g.tensors[name].data = reinterpret_cast<const uint8_t*>(g.bytes.data()) + data + off;
  }
  return g;
}

TEST(Gguf, WriterStreamsAndIsAtomic) {
  const std::string dir = ::testing::TempDir();
  const std::string path = dir + "/w.gguf";
  gguf::Writer w;
  w.AddString("general.architecture", "qwen3");
  w.AddU32("qwen3.block_count", 1);
  ASSERT_TRUE(w.AddTensor("a", {3}, gguf::GgmlType::kF32, [](std::vector<uint8_t>* b) {
                 const float v[3] = {1, 2, 3};
                 b->assign(reinterpret_cast<const uint8_t*>(v), reinterpret_cast<const uint8_t*>(v) + 12);
                 return Status::Ok();
               }).ok());
  ASSERT_TRUE(w.AddTensor("b", {32, 2}, gguf::GgmlType::kQ8_0, [](std::vector<uint8_t>* b) {
                 b->assign(68, 7);
                 return Status::Ok();
               }).ok());
  EXPECT_FALSE(w.AddTensor("c", {33}, gguf::GgmlType::kQ4_0, nullptr).ok());  // not whole blocks
  auto n = w.WriteAtomic(path);
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  ReadGguf g = Parse(path);
  EXPECT_EQ(g.bytes.size(), *n);
  EXPECT_EQ(g.strings["general.architecture"], "qwen3");
  ASSERT_EQ(g.tensors.size(), 2u);
  float a[3];
  std::memcpy(a, g.tensors["a"].data, 12);
  EXPECT_EQ(a[2], 3.0f);
  EXPECT_EQ(g.tensors["b"].data[67], 7);
  EXPECT_EQ(g.tensors["b"].ne, (std::vector<uint64_t>{32, 2}));

  // A producer that fails or produces the wrong size: no file, no temporary.
  gguf::Writer bad;
  ASSERT_TRUE(bad.AddTensor("x", {4}, gguf::GgmlType::kF32, [](std::vector<uint8_t>* b) {
                   b->assign(8, 0);
                   return Status::Ok();
                 }).ok());
  EXPECT_FALSE(bad.WriteAtomic(dir + "/bad.gguf").ok());
  EXPECT_FALSE(FileExists(dir + "/bad.gguf"));
  EXPECT_FALSE(FileExists(dir + "/bad.gguf.tmp." + std::to_string(::getpid())));
}

// Finalizes tiny-random-<arch> with RTN (calibration-free).
QModelContents FinalizeRtnContents(const std::string& arch, int wbits, bool symmetric,
                                   int head_bits = kDefaultHeadBits) {
  const std::string dir = kData + "/tiny-random-" + arch;
  auto m = OpenModelDir(dir);
  EXPECT_TRUE(m.ok());
  auto text = ReadFile(kData + "/tokenizer_corpus.jsonl");
  auto calib = CalibrationFromText(m->tokenizer, text->substr(0, 4000), 64, "corpus");
  EXPECT_TRUE(calib.ok());
  FinalizeOptions o;
  o.method = QuantMethod::kRtn;
  o.wbits = wbits;
  o.group_size = 32;
  o.symmetric = symmetric;
  o.num_threads = 1;
  o.head_bits = head_bits;
  auto q = Finalize(*m, dir, *calib, o);
  EXPECT_TRUE(q.ok()) << q.status().ToString();
  return std::move(*q);
}

std::string WriteQModel(const QModelContents& q, const std::string& out) {
  auto bytes = SerializeQModel(q);
  EXPECT_TRUE(bytes.ok());
  EXPECT_TRUE(WriteFileAtomic(out, bytes->data(), bytes->size()).ok());
  return out;
}

std::string FinalizeRtn(const std::string& arch, int wbits, bool symmetric, const std::string& out,
                        int head_bits = kDefaultHeadBits) {
  return WriteQModel(FinalizeRtnContents(arch, wbits, symmetric, head_bits), out);
}

// Every weight of blk.L.<name> decodes (ggml's formula) to the .famq's
// dequantized weight up to the fp16 rounding of the block's scale(s).
void ExpectMatrixMatches(const ReadGguf& g, Result<QMatrix> matrix, int row0, const std::string& name,
                         const std::function<int(int)>& perm) {
  ASSERT_TRUE(matrix.ok()) << matrix.status().ToString();
  const QMatrix& m = *matrix;
  const ReadTensor& t = g.tensors.at(name);
  ASSERT_EQ(t.ne[0], static_cast<uint64_t>(m.cols)) << name;
  const int rows = static_cast<int>(t.ne[1]);
  const int blocks = m.cols / 32;
  const size_t bsize = t.type == 2 ? 18 : t.type == 3 ? 20 : 34;
  double worst = 0;
  for (int r = 0; r < rows; ++r) {
    for (int b = 0; b < blocks; ++b) {
      const uint8_t* blk = t.data + (static_cast<size_t>(r) * blocks + b) * bsize;
      uint16_t dh, mh = 0;
      std::memcpy(&dh, blk, 2);
      if (t.type == 3) std::memcpy(&mh, blk + 2, 2);
      const float d = F16ToF32(dh), mn = F16ToF32(mh);
      for (int j = 0; j < 32; ++j) {
        float v;
        if (t.type == 8) {
          v = d * static_cast<float>(static_cast<int8_t>(blk[2 + j]));
        } else {
          const uint8_t byte = blk[(t.type == 3 ? 4 : 2) + (j % 16)];
          const int nib = j < 16 ? (byte & 0x0f) : (byte >> 4);
          v = t.type == 2 ? d * static_cast<float>(nib - 8) : d * static_cast<float>(nib) + mn;
        }
        const int src = row0 + (perm ? perm(r) : r);
        const float want = m.Dequant(src, b * 32 + j);
        const float scale = m.scales[static_cast<size_t>(src) * m.groups_per_row() + (b * 32) / m.group_size];
        // fp16 rounding: |d - scale| <= 2^-11 scale, times |code - zero| <= 2^bits
        worst = std::max(worst, std::fabs(double(v) - want) / (double(scale) * (1 << m.bits)));
      }
    }
  }
  EXPECT_LE(worst, std::ldexp(1.0, -10)) << name;
}

void ExpectWeightsMatch(const ReadGguf& g, const QModel& q, int linear, int row0, const std::string& name,
                        const std::function<int(int)>& perm) {
  ExpectMatrixMatches(g, q.Matrix(linear), row0, name, perm);
}

TEST(Gguf, ExportMapsWeightsExactlyUpToFp16Scales) {
  const std::string dir = ::testing::TempDir();
  struct Case {
    std::string arch;
    int wbits;
    bool symmetric;
    uint32_t type;
    int head_bits;
    uint32_t head_type;  // of token_embd (and output): Q8_0 8, Q4_0 2; 16: the checkpoint's F16 1 / BF16 30
  };
  for (const Case& c : {Case{"qwen3", 4, true, 2, 8, 8}, Case{"qwen2", 4, false, 3, 4, 2},
                        Case{"llama", 8, true, 8, 16, 1}, Case{"llama", 4, true, 2, 4, 2},
                        Case{"llama", 4, false, 3, 8, 8}, Case{"qwen3", 4, false, 3, 6, 8},
                        Case{"llama", 4, true, 2, 6, 8}}) {
    SCOPED_TRACE(c.arch + " W" + std::to_string(c.wbits) + " head " + std::to_string(c.head_bits));
    const std::string famq = FinalizeRtn(c.arch, c.wbits, c.symmetric, dir + "/x.famq", c.head_bits);
    auto rep = ExportGguf(famq, dir + "/x.gguf");
    ASSERT_TRUE(rep.ok()) << rep.status().ToString();
    auto q = QModel::Open(famq);
    ASSERT_TRUE(q.ok());
    const ModelConfig& cfg = q->config();
    ReadGguf g = Parse(dir + "/x.gguf");
    EXPECT_EQ(g.strings["general.architecture"], c.arch);
    EXPECT_EQ(g.strings["tokenizer.ggml.model"], "gpt2");
    EXPECT_EQ(g.tensors.at("blk.0.attn_q.weight").type, c.type);
    EXPECT_EQ(g.tensors.count("output.weight"), cfg.tie_word_embeddings ? 0u : 1u);
    // The embedding / head: its own GGUF type, the same weights.
    EXPECT_EQ(g.tensors.at("token_embd.weight").type, c.head_type);
    EXPECT_EQ(g.tensors.at("token_embd.weight").ne, (std::vector<uint64_t>{uint64_t(cfg.hidden_size), uint64_t(cfg.vocab_size)}));
    if (c.head_bits != 16) {
      ExpectMatrixMatches(g, q->EmbeddingMatrix(), 0, "token_embd.weight", nullptr);
      if (!cfg.tie_word_embeddings) {
        EXPECT_EQ(g.tensors.at("output.weight").type, c.head_type);
        ExpectMatrixMatches(g, q->HeadMatrix(), 0, "output.weight", nullptr);
      }
    }
    EXPECT_EQ(g.tensors.at("blk.1.attn_norm.weight").type, 0u);  // F32
    const int D = cfg.head_dim, QD = cfg.q_dim(), KV = cfg.kv_dim();
    std::function<int(int)> rot;
    if (c.arch == "llama") rot = [D](int r) { return r / D * D + (r % D % 2) * (D / 2) + r % D / 2; };
    for (int l = 0; l < cfg.num_layers; ++l) {
      const std::string b = "blk." + std::to_string(l) + ".";
      ExpectWeightsMatch(g, *q, 4 * l, 0, b + "attn_q.weight", rot);
      ExpectWeightsMatch(g, *q, 4 * l, QD, b + "attn_k.weight", rot);
      ExpectWeightsMatch(g, *q, 4 * l, QD + KV, b + "attn_v.weight", nullptr);
      ExpectWeightsMatch(g, *q, 4 * l + 1, 0, b + "attn_output.weight", nullptr);
      ExpectWeightsMatch(g, *q, 4 * l + 2, 0, b + "ffn_gate.weight", nullptr);
      ExpectWeightsMatch(g, *q, 4 * l + 2, cfg.intermediate_size, b + "ffn_up.weight", nullptr);
      ExpectWeightsMatch(g, *q, 4 * l + 3, 0, b + "ffn_down.weight", nullptr);
    }
    EXPECT_EQ(g.tensors.count("blk.0.attn_q.bias"), c.arch == "qwen2" ? 1u : 0u);
    EXPECT_EQ(g.tensors.count("blk.0.attn_q_norm.weight"), c.arch == "qwen3" ? 1u : 0u);
  }
}

// A 6-bit embedding / head becomes Q8_0 (its codes are int8 codes, a g32
// group one block); with fp16 scales (--scale-dtype f16) every weight ggml
// decodes is the .famq's dequantized weight bit for bit, tied and untied.
TEST(Gguf, ASixBitHeadWithFp16ScalesIsQ8_0Exactly) {
  const std::string dir = ::testing::TempDir();
  for (const char* arch_name : {"qwen3", "llama"}) {
    const std::string arch = arch_name;
    SCOPED_TRACE(arch);
    const std::string src = kData + "/tiny-random-" + arch;
    auto m = OpenModelDir(src);
    ASSERT_TRUE(m.ok());
    auto text = ReadFile(kData + "/tokenizer_corpus.jsonl");
    ASSERT_TRUE(text.ok());
    auto calib = CalibrationFromText(m->tokenizer, text->substr(0, 4000), 64, "corpus");
    ASSERT_TRUE(calib.ok());
    FinalizeOptions o;
    o.method = QuantMethod::kRtn;
    o.wbits = 4;
    o.group_size = 32;
    o.symmetric = true;
    o.f16_scales = true;
    o.num_threads = 1;
    o.head_bits = 6;
    auto contents = Finalize(*m, src, *calib, o);
    ASSERT_TRUE(contents.ok()) << contents.status().ToString();
    const std::string famq = WriteQModel(*contents, dir + "/six.famq");
    auto rep = ExportGguf(famq, dir + "/six.gguf");
    ASSERT_TRUE(rep.ok()) << rep.status().ToString();
    auto q = QModel::Open(famq);
    ASSERT_TRUE(q.ok());
    ASSERT_EQ(q->embedding_record()->bits(), 6);
    ReadGguf g = Parse(dir + "/six.gguf");
    std::vector<std::pair<std::string, Result<QMatrix>>> heads;
    heads.emplace_back("token_embd.weight", q->EmbeddingMatrix());
    if (!q->config().tie_word_embeddings) heads.emplace_back("output.weight", q->HeadMatrix());
    for (const auto& [name, matrix] : heads) {
      ASSERT_TRUE(matrix.ok()) << matrix.status().ToString();
      const ReadTensor& t = g.tensors.at(name);
      ASSERT_EQ(t.type, 8u) << name;  // Q8_0
      const int blocks = matrix->cols / 32;
      size_t mismatches = 0;
      for (int r = 0; r < matrix->rows; ++r) {
        for (int b = 0; b < blocks; ++b) {
          const uint8_t* blk = t.data + (static_cast<size_t>(r) * blocks + b) * 34;
          uint16_t dh;
          std::memcpy(&dh, blk, 2);
          for (int j = 0; j < 32; ++j) {
            const float v = F16ToF32(dh) * static_cast<float>(static_cast<int8_t>(blk[2 + j]));
            mismatches += v != matrix->Dequant(r, b * 32 + j);
          }
        }
      }
      EXPECT_EQ(mismatches, 0u) << name;
    }
  }
}

TEST(Gguf, RefusalsWriteNothing) {
  const std::string dir = ::testing::TempDir();
  const std::string out = dir + "/refused.gguf";
  const std::string w8 = FinalizeRtn("qwen3", 8, false, dir + "/w8asym.famq");
  auto r = ExportGguf(w8, out);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(r.status().message().find("W8 with zero points"), std::string::npos) << r.status().ToString();
  EXPECT_FALSE(FileExists(out));
  // Truncated and foreign inputs: the verifier refuses them first.
  auto bytes = ReadFile(w8);
  ASSERT_TRUE(bytes.ok());
  ASSERT_TRUE(WriteFileAtomic(dir + "/cut.famq", bytes->data(), bytes->size() / 2).ok());
  r = ExportGguf(dir + "/cut.famq", out);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidFormat) << r.status().ToString();
  r = ExportGguf(kData + "/tiny-random-qwen3/config.json", out);
  EXPECT_FALSE(r.ok());
  EXPECT_FALSE(FileExists(out));
  EXPECT_FALSE(ExportGguf(dir + "/missing.famq", out).ok());
  EXPECT_FALSE(FileExists(out));
}

TEST(Gguf, RefusesATokenizerLlamaCppCannotReproduce) {
  // famq applies an NFD normalizer; llama.cpp applies none.
  const std::string dir = ::testing::TempDir();
  QModelContents q = FinalizeRtnContents("qwen3", 4, true);
  nlohmann::json t = nlohmann::json::parse(q.tokenizer_json);
  t["normalizer"] = {{"type", "NFD"}};
  q.tokenizer_json = t.dump();
  auto tok = Tokenizer::LoadJson(q.tokenizer_json, "nfd");
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  q.tokenizer_sha256 = tok->ContentHash();
  const std::string famq = WriteQModel(q, dir + "/nfd.famq");
  auto r = ExportGguf(famq, dir + "/nfd.gguf");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(r.status().message().find("normalizer 'NFD'"), std::string::npos) << r.status().ToString();
  EXPECT_FALSE(FileExists(dir + "/nfd.gguf"));
}

TEST(Gguf, CApiExports) {
  const std::string dir = ::testing::TempDir();
  EXPECT_EQ(famq_export_gguf(nullptr, "x.gguf"), FAMQ_INVALID_ARGUMENT);
  EXPECT_EQ(famq_export_gguf("x.famq", ""), FAMQ_INVALID_ARGUMENT);
  const std::string q4 = FinalizeRtn("qwen3", 4, true, dir + "/c4.famq");
  ASSERT_EQ(famq_export_gguf(q4.c_str(), (dir + "/c4.gguf").c_str()), FAMQ_OK) << famq_last_error();
  EXPECT_EQ(Parse(dir + "/c4.gguf").tensors.at("blk.0.ffn_down.weight").type, 2u);
  const std::string w8 = FinalizeRtn("qwen3", 8, false, dir + "/c8.famq");
  EXPECT_EQ(famq_export_gguf(w8.c_str(), (dir + "/c8.gguf").c_str()), FAMQ_UNSUPPORTED);
  EXPECT_NE(std::string(famq_last_error()).find("zero points"), std::string::npos) << famq_last_error();
  EXPECT_FALSE(FileExists(dir + "/c8.gguf"));
}

}  // namespace
}  // namespace famq
