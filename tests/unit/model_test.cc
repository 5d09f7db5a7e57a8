// Hostile-input tests of the model loaders: safetensors headers, config.json
// and whole checkpoint directories. Every failure must be a clear status that
// names the file (and the tensor, where there is one), never a crash.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "core/file.h"
#include "model/checkpoint.h"
#include "model/config.h"
#include "model/model_dir.h"
#include "model/safetensors.h"

namespace famq {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Builds a safetensors image: 8-byte length, header, then `payload` bytes.
std::string MakeSafetensors(const json& header, size_t payload_bytes) {
  const std::string h = header.dump();
  std::string out(8, '\0');
  const uint64_t n = h.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  out += h;
  out.append(payload_bytes, '\x01');
  return out;
}

Result<std::map<std::string, TensorView>> Parse(const std::string& image) {
  return ParseSafetensors(reinterpret_cast<const uint8_t*>(image.data()), image.size(), "x.safetensors");
}

json Entry(const std::string& dtype, std::vector<int64_t> shape, uint64_t begin, uint64_t end) {
  return json{{"dtype", dtype}, {"shape", shape}, {"data_offsets", {begin, end}}};
}

TEST(Safetensors, ParsesValidHeader) {
  json h;
  h["a"] = Entry("F32", {2, 3}, 0, 24);
  h["b"] = Entry("BF16", {4}, 24, 32);
  h["__metadata__"] = {{"format", "pt"}};
  auto r = Parse(MakeSafetensors(h, 32));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ(r->at("a").numel(), 6);
  EXPECT_EQ(r->at("a").ShapeString(), "[2, 3]");
  EXPECT_EQ(r->at("b").dtype, DType::kBF16);
  EXPECT_EQ(r->at("b").num_bytes, 8u);
}

void ExpectError(const std::string& image, const std::string& needle) {
  auto r = Parse(image);
  ASSERT_FALSE(r.ok()) << "accepted: " << needle;
  EXPECT_NE(r.status().message().find("x.safetensors"), std::string::npos) << r.status().ToString();
  EXPECT_NE(r.status().message().find(needle), std::string::npos) << r.status().ToString();
}

TEST(Safetensors, RejectsTruncatedAndGarbage) {
  ExpectError("", "");
  ExpectError("abc", "");
  json h;
  h["w"] = Entry("F32", {4}, 0, 16);
  const std::string good = MakeSafetensors(h, 16);
  for (size_t cut : {size_t{4}, size_t{8}, size_t{20}, good.size() - 1}) {
    ExpectError(good.substr(0, cut), "");
  }
  std::string garbage = good;
  for (size_t i = 8; i < 20; ++i) garbage[i] = '\x7f';
  ExpectError(garbage, "");
  std::string huge_len = good;
  huge_len[7] = '\x7f';  // header length ~ 2^63
  ExpectError(huge_len, "");
}

TEST(Safetensors, RejectsBadEntries) {
  {
    json h;
    h["w"] = Entry("F64", {2}, 0, 16);
    ExpectError(MakeSafetensors(h, 16), "w");
  }
  {
    json h;
    h["w"] = Entry("F32", {4}, 0, 32);  // beyond the file
    ExpectError(MakeSafetensors(h, 16), "w");
  }
  {
    json h;
    h["w"] = Entry("F32", {5}, 0, 16);  // size disagrees with shape
    ExpectError(MakeSafetensors(h, 16), "w");
  }
  {
    json h;
    h["a"] = Entry("F32", {4}, 0, 16);
    h["b"] = Entry("F32", {4}, 8, 24);  // overlaps a
    ExpectError(MakeSafetensors(h, 24), "");
  }
  {
    json h;
    h["w"] = Entry("F32", {1ll << 40, 1ll << 40}, 0, 16);  // absurd shape
    ExpectError(MakeSafetensors(h, 16), "w");
  }
  {
    json h;
    h["w"] = Entry("F32", {-1}, 0, 16);
    ExpectError(MakeSafetensors(h, 16), "w");
  }
  {
    json h;
    h["w"] = {{"dtype", "F32"}, {"shape", {4}}};  // no offsets
    ExpectError(MakeSafetensors(h, 16), "w");
  }
}

// --- config.json ------------------------------------------------------------

json Qwen3Config() {
  return json{{"architectures", {"Qwen3ForCausalLM"}},
              {"hidden_size", 64},
              {"num_hidden_layers", 2},
              {"num_attention_heads", 4},
              {"num_key_value_heads", 2},
              {"head_dim", 16},
              {"intermediate_size", 160},
              {"vocab_size", 384},
              {"max_position_embeddings", 512},
              {"rope_theta", 1000000.0},
              {"rms_norm_eps", 1e-6},
              {"tie_word_embeddings", true},
              {"hidden_act", "silu"},
              {"eos_token_id", 1}};
}

TEST(Config, ParsesQwen3) {
  auto r = ParseModelConfig(Qwen3Config().dump(), "config.json");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->arch, ModelArch::kQwen3);
  EXPECT_TRUE(r->qk_norm);
  EXPECT_FALSE(r->attention_bias);
  EXPECT_EQ(r->q_dim(), 64);
  EXPECT_EQ(r->kv_dim(), 32);
  EXPECT_EQ(r->eos_token_ids, std::vector<int32_t>{1});
}

TEST(Config, Qwen2HasBiasLlamaHasNeither) {
  json c = Qwen3Config();
  c["architectures"] = {"Qwen2ForCausalLM"};
  c.erase("head_dim");
  auto q2 = ParseModelConfig(c.dump(), "config.json");
  ASSERT_TRUE(q2.ok()) << q2.status().ToString();
  EXPECT_TRUE(q2->attention_bias);
  EXPECT_FALSE(q2->qk_norm);
  EXPECT_EQ(q2->head_dim, 16);  // hidden / heads
  c["architectures"] = {"LlamaForCausalLM"};
  auto ll = ParseModelConfig(c.dump(), "config.json");
  ASSERT_TRUE(ll.ok()) << ll.status().ToString();
  EXPECT_FALSE(ll->attention_bias);
  EXPECT_FALSE(ll->qk_norm);
}

TEST(Config, RejectsBadValues) {
  auto expect_bad = [](const json& c, const std::string& needle) {
    auto r = ParseModelConfig(c.dump(), "dir/config.json");
    ASSERT_FALSE(r.ok()) << "accepted config with " << needle;
    EXPECT_NE(r.status().message().find("dir/config.json"), std::string::npos) << r.status().ToString();
    EXPECT_NE(r.status().message().find(needle), std::string::npos) << r.status().ToString();
  };
  json c = Qwen3Config();
  c["architectures"] = {"MambaForCausalLM"};
  expect_bad(c, "MambaForCausalLM");
  c = Qwen3Config();
  c["num_key_value_heads"] = 3;  // does not divide 4 heads
  expect_bad(c, "num_key_value_heads");
  c = Qwen3Config();
  c["hidden_size"] = -64;
  expect_bad(c, "hidden_size");
  c = Qwen3Config();
  c["vocab_size"] = 1ll << 40;
  expect_bad(c, "vocab_size");
  c = Qwen3Config();
  c["num_hidden_layers"] = "two";
  expect_bad(c, "num_hidden_layers");
  c = Qwen3Config();
  c.erase("intermediate_size");
  expect_bad(c, "intermediate_size");
  c = Qwen3Config();
  c.erase("head_dim");
  c["num_attention_heads"] = 128;  // hidden 64 / 128 heads: no usable head_dim (found by fuzz_config_json)
  c["num_key_value_heads"] = 128;
  expect_bad(c, "head_dim");
  c = Qwen3Config();
  c["hidden_act"] = "gelu";
  expect_bad(c, "hidden_act");
  EXPECT_FALSE(ParseModelConfig("{not json", "config.json").ok());
  EXPECT_FALSE(ParseModelConfig("[1,2,3]", "config.json").ok());
  EXPECT_FALSE(ParseModelConfig("", "config.json").ok());
}

// --- checkpoint directories ----------------------------------------------------

// A scratch copy of the committed tiny checkpoint that a test may damage.
class CheckpointDir : public ::testing::Test {
 protected:
  void SetUp() override {
    src_ = fs::path(FAMQ_SOURCE_DIR) / "tests/data/tiny-random-qwen3";
    dir_ = fs::temp_directory_path() /
           ("famq-model-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    for (const auto& e : fs::directory_iterator(src_)) fs::copy_file(e.path(), dir_ / e.path().filename());
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Read(const std::string& name) {
    std::ifstream f(dir_ / name, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
  }
  void Write(const std::string& name, const std::string& bytes) {
    std::ofstream f(dir_ / name, std::ios::binary | std::ios::trunc);
    f << bytes;
  }
  // Rewrites model.safetensors with header edited by `edit` (payload kept).
  void EditHeader(const std::function<void(json&)>& edit) {
    std::string image = Read("model.safetensors");
    uint64_t n = 0;
    for (int i = 0; i < 8; ++i) n |= uint64_t(uint8_t(image[i])) << (8 * i);
    json h = json::parse(image.substr(8, n));
    edit(h);
    std::string payload = image.substr(8 + n);
    std::string hs = h.dump();
    std::string out(8, '\0');
    for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((hs.size() >> (8 * i)) & 0xff);
    Write("model.safetensors", out + hs + payload);
  }
  Status OpenStatus() {
    auto r = Checkpoint::Open(dir_.string());
    return r.ok() ? Status::Ok() : r.status();
  }

  fs::path src_, dir_;
};

TEST_F(CheckpointDir, OpensCommittedFixture) {
  auto r = Checkpoint::Open(dir_.string());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->layers().size(), 2u);
  EXPECT_TRUE(r->tied());
  EXPECT_EQ(r->WeightDTypeName(), "BF16");
}

TEST_F(CheckpointDir, MissingTensorIsNamed) {
  EditHeader([](json& h) { h.erase("model.layers.1.mlp.down_proj.weight"); });
  Status s = OpenStatus();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("model.layers.1.mlp.down_proj.weight"), std::string::npos) << s.ToString();
}

TEST_F(CheckpointDir, ShapeMismatchNamesFileAndTensor) {
  // The tensor keeps its byte size but claims another shape.
  EditHeader([](json& h) {
    auto& e = h["model.layers.0.self_attn.k_proj.weight"];  // [32, 64]: not square
    const int64_t rows = e["shape"][0], cols = e["shape"][1];
    e["shape"] = {cols, rows};
  });
  Status s = OpenStatus();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("model.layers.0.self_attn.k_proj.weight"), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find("model.safetensors"), std::string::npos) << s.ToString();
}

TEST_F(CheckpointDir, UnknownDtypeIsNamed) {
  EditHeader([](json& h) { h["model.norm.weight"]["dtype"] = "F8_E4M3"; });
  Status s = OpenStatus();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("model.norm.weight"), std::string::npos) << s.ToString();
}

TEST_F(CheckpointDir, TensorOutsideFileIsNamed) {
  EditHeader([](json& h) {
    auto& e = h["model.embed_tokens.weight"];
    const uint64_t begin = e["data_offsets"][0], end = e["data_offsets"][1];
    e["data_offsets"] = {begin + (1u << 30), end + (1u << 30)};
  });
  Status s = OpenStatus();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("model.embed_tokens.weight"), std::string::npos) << s.ToString();
}

TEST_F(CheckpointDir, TruncatedWeightsFail) {
  const std::string image = Read("model.safetensors");
  for (size_t cut : {size_t{0}, size_t{7}, size_t{100}, image.size() / 2, image.size() - 1}) {
    Write("model.safetensors", image.substr(0, cut));
    Status s = OpenStatus();
    EXPECT_FALSE(s.ok()) << "accepted a file cut at " << cut;
    EXPECT_NE(s.message().find("model.safetensors"), std::string::npos) << s.ToString();
  }
}

TEST_F(CheckpointDir, ConfigDisagreeingWithWeightsFails) {
  json c = json::parse(Read("config.json"));
  c["intermediate_size"] = c["intermediate_size"].get<int>() + 32;
  Write("config.json", c.dump());
  Status s = OpenStatus();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("mlp"), std::string::npos) << s.ToString();
}

TEST_F(CheckpointDir, MissingFilesAreNamed) {
  fs::remove(dir_ / "model.safetensors");
  Status s = OpenStatus();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("safetensors"), std::string::npos) << s.ToString();
  fs::remove(dir_ / "config.json");
  s = OpenStatus();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("config.json"), std::string::npos) << s.ToString();
}

TEST_F(CheckpointDir, GarbageFilesFail) {
  Write("config.json", std::string("\x89PNG\r\n\x1a\n", 8));
  EXPECT_FALSE(OpenStatus().ok());
}

TEST_F(CheckpointDir, ShardIndexCannotEscapeTheDirectory) {
  json index;
  index["weight_map"]["model.embed_tokens.weight"] = "../../etc/passwd";
  Write("model.safetensors.index.json", index.dump());
  fs::remove(dir_ / "model.safetensors");
  Status s = OpenStatus();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("../../etc/passwd"), std::string::npos) << s.ToString();
}

// --- deeply nested JSON (issue 15) ---------------------------------------------
// Each file below used to crash `famq-rt info --model DIR` (exit 139): the
// value was dumped or copied in an error path, and nlohmann recurses once per
// level. Now the nesting is refused before the value exists, with the file named.

std::string Deep(size_t levels) { return std::string(levels, '[') + std::string(levels, ']'); }

// Concatenation piece by piece (gcc 12 -O3 warns -Wrestrict on "lit" + std::string).
std::string Cat(std::initializer_list<std::string_view> parts) {
  std::string out;
  for (std::string_view p : parts) out.append(p);
  return out;
}

// config.json text with `field` set to the raw JSON `value`.
std::string WithRawField(const std::string& json_text, const std::string& field, const std::string& value) {
  json c = json::parse(json_text);
  c.erase(field);
  std::string text = c.dump();
  return Cat({"{\"", field, "\": ", value, ",", std::string_view(text).substr(1)});
}

constexpr size_t kHostileDepth = 300000;

TEST_F(CheckpointDir, DeepHiddenActIsRefusedNotACrash) {
  Write("config.json", WithRawField(Read("config.json"), "hidden_act", Deep(kHostileDepth)));
  Status s = OpenStatus();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kInvalidFormat) << s.ToString();
  EXPECT_NE(s.message().find("config.json"), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find("nested deeper"), std::string::npos) << s.ToString();
  EXPECT_EQ(ConfigSha256(Read("config.json")), "");
}

TEST_F(CheckpointDir, ShallowWrongHiddenActIsExcerptedNotDumped) {
  // Within the depth limit, but a value of unknown size is still never dumped.
  Write("config.json", WithRawField(Read("config.json"), "hidden_act",
                                    Cat({"[", std::string(60, '['), "\"", std::string(100000, 'x'), "\"",
                                         std::string(61, ']')})));
  Status s = OpenStatus();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("hidden_act an array of 1 items"), std::string::npos) << s.ToString();
  EXPECT_LT(s.message().size(), 300u);
  Write("config.json", WithRawField(Read("config.json"), "hidden_act", Cat({"\"", std::string(100000, 'g'), "\""})));
  s = OpenStatus();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("hidden_act \"gggg"), std::string::npos) << s.ToString();
  EXPECT_LT(s.message().size(), 300u);
}

TEST_F(CheckpointDir, DeepEosTokenIdIsRefusedNotACrash) {
  Write("generation_config.json", Cat({"{\"eos_token_id\": ", Deep(kHostileDepth), "}"}));
  auto r = OpenModelDir(dir_.string());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("generation_config.json"), std::string::npos) << r.status().ToString();
  EXPECT_NE(r.status().message().find("nested deeper"), std::string::npos) << r.status().ToString();
  // Shallow but wrong: the bad id is excerpted.
  Write("generation_config.json", "{\"eos_token_id\": [1, [[[2]]]]}");
  r = OpenModelDir(dir_.string());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("eos_token_id an array of 1 items"), std::string::npos)
      << r.status().ToString();
}

TEST_F(CheckpointDir, DeepWeightMapIsRefusedNotACrash) {
  fs::remove(dir_ / "model.safetensors");
  Write("model.safetensors.index.json", Cat({"{\"weight_map\": {\"model.embed_tokens.weight\": ", Deep(kHostileDepth), "}}"}));
  Status s = OpenStatus();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("model.safetensors.index.json"), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find("nested deeper"), std::string::npos) << s.ToString();
  Write("model.safetensors.index.json", "{\"weight_map\": {\"model.embed_tokens.weight\": [[[\"a\"]]]}}");
  s = OpenStatus();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("weight_map: tensor 'model.embed_tokens.weight' maps to an array of 1 items"),
            std::string::npos)
      << s.ToString();
}

TEST_F(CheckpointDir, DeepTokenizerFilesAreRefusedNotACrash) {
  Write("tokenizer_config.json", Cat({"{\"chat_template\": ", Deep(kHostileDepth), "}"}));
  auto r = OpenModelDir(dir_.string());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("tokenizer_config.json"), std::string::npos) << r.status().ToString();
  fs::copy_file(src_ / "tokenizer_config.json", dir_ / "tokenizer_config.json",
                fs::copy_options::overwrite_existing);
  Write("tokenizer.json", Cat({"{\"model\": ", Deep(kHostileDepth), "}"}));
  r = OpenModelDir(dir_.string());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("nested deeper"), std::string::npos) << r.status().ToString();
}

TEST(Safetensors, DeepHeaderIsRefusedNotACrash) {
  const std::string h = Cat({"{\"a\": ", Deep(kHostileDepth), "}"});
  std::string image(8, '\0');
  for (int i = 0; i < 8; ++i) image[i] = static_cast<char>((uint64_t{h.size()} >> (8 * i)) & 0xff);
  image += h;
  auto r = Parse(image);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("x.safetensors: header: JSON nested deeper"), std::string::npos)
      << r.status().ToString();
}

TEST(ShardedCheckpoint, OpensTwoShardsUntied) {
  auto r = Checkpoint::Open(std::string(FAMQ_SOURCE_DIR) + "/tests/data/tiny-random-llama");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->files().size(), 2u);
  EXPECT_FALSE(r->tied());
  EXPECT_EQ(r->config().arch, ModelArch::kLlama);
}

}  // namespace
}  // namespace famq
