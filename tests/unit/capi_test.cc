// The C API (famq.h) on the committed fixtures and the family's smallest
// member: status mapping, every NULL argument, errors with the right status
// and message, greedy generation token for token equal to the C++ Generator,
// caller buffers (truncation, never an overflow), stopping from the token
// callback, finalize from text and from bundles (progress, cancel, private
// text, unsigned / tampered / foreign bundles), and a forced ISA.
#include "famq/famq.h"

#include <gtest/gtest.h>

#include "golden/alloc_counter.h"
#include <stdlib.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "bundle/bundle.h"
#include "core/digest.h"
#include "core/file.h"
#include "core/status.h"
#include "engine/generate.h"
#include "qmodel/qmodel.h"
#include "qmodel/qmodel_engine.h"
#if FAMQ_CAPI_TEST_SIGNING
#include "bundle/signing.h"
#endif

namespace {

namespace fs = std::filesystem;

const std::string kSource = FAMQ_SOURCE_DIR;
const std::string kFamily = kSource + "/models/famq-tiny-s";
const std::string kQwen3 = kSource + "/tests/data/tiny-random-qwen3";
const std::string kLlama = kSource + "/tests/data/tiny-random-llama";
// An unsigned bundle of 6 samples made by the host stage for famq-tiny-s's family.
const std::string kCorpusBundle = kSource + "/tests/fuzz/corpus/fuzz_bundle/unsigned-6-samples.famqb";
const char kPrompt[] = "Question: What is 36 + 8?\nAnswer:";

// A valid EC P-256 public key that signed nothing here.
const char kForeignKeyPem[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEg66KN9C4WhHNj8Nuti8Wk6J0/wrI\n"
    "W0Thdx6iWc5NziOUUd/T6UCeVJZa43IUcrKkGkeMihrPeAS7QpbVJQchvA==\n"
    "-----END PUBLIC KEY-----\n";

std::string Slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

void Write(const std::string& path, std::string_view bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(f.good()) << path;
}

// The first ~`bytes` of a text file, cut after a newline (whole UTF-8 characters).
std::string TextPrefix(const std::string& path, size_t bytes) {
  std::string s = Slurp(path);
  if (s.size() > bytes) s.resize(s.rfind('\n', bytes) + 1);
  return s;
}

std::string LastError() { return famq_last_error(); }

// What the token callback saw.
struct Seen {
  std::vector<int32_t> tokens;
  std::string text;
  int stop_after = -1;  // return nonzero after this many tokens
  famq_model* reenter = nullptr;
  famq_status reenter_status = FAMQ_OK;
  std::string reenter_error;
};

int OnToken(const char* piece, size_t len, int32_t token, void* user) {
  auto* s = static_cast<Seen*>(user);
  s->tokens.push_back(token);
  s->text.append(piece, len);
  if (s->reenter != nullptr && s->tokens.size() == 1) {
    char buf[64];
    s->reenter_status = famq_generate(s->reenter, "x", nullptr, nullptr, nullptr, buf, sizeof buf, nullptr);
    s->reenter_error = famq_last_error();
  }
  return s->stop_after >= 0 && static_cast<int>(s->tokens.size()) >= s->stop_after ? 1 : 0;
}

struct Progress {
  std::vector<float> fractions;
  std::vector<std::string> stages;
  int layers = -1;
  bool layer_in_range = true;
  int cancel_at = -1;  // return nonzero on this call (0-based)
};

int OnProgress(float fraction, int layer, int layers, const char* stage, void* user) {
  auto* p = static_cast<Progress*>(user);
  p->fractions.push_back(fraction);
  p->stages.push_back(stage != nullptr ? stage : "(null)");
  p->layers = layers;
  if (layer < 0 || layer >= layers) p->layer_in_range = false;
  return p->cancel_at >= 0 && static_cast<int>(p->fractions.size()) > p->cancel_at ? 1 : 0;
}

// Greedy tokens of the C++ Generator on the same model and prompt.
std::vector<int32_t> ReferenceTokens(const std::string& dir, const std::string& qmodel, const std::string& prompt,
                                     int max_new_tokens) {
  auto m = famq::OpenRunnableModel(dir, qmodel);
  EXPECT_TRUE(m.ok()) << m.status().ToString();
  if (!m.ok()) return {};
  famq::EngineOptions eo;
  eo.num_threads = 1;
  auto e = m->CreateEngine(eo);
  EXPECT_TRUE(e.ok()) << e.status().ToString();
  if (!e.ok()) return {};
  std::vector<int32_t> ids;
  if (m->add_bos && m->bos_token) ids.push_back(*m->bos_token);
  EXPECT_TRUE(m->tokenizer.Encode(prompt, &ids).ok());
  famq::GenerateParams gp;
  gp.max_new_tokens = max_new_tokens;
  gp.stop_tokens = m->stop_tokens;
  famq::Generator g(e->get(), gp);
  std::vector<int32_t> out;
  famq::Status st = g.Run(ids, &out, nullptr, nullptr);
  EXPECT_TRUE(st.ok()) << st.ToString();
  return out;
}

// One engine thread: the tests share a busy machine (and run under qemu),
// where a spinning thread pool only slows them down.
const famq_model_options* OneThread() {
  static const famq_model_options o = [] {
    famq_model_options v;
    famq_model_options_init(&v);
    v.num_threads = 1;
    return v;
  }();
  return &o;
}

famq_generate_options Greedy(int max_new_tokens) {
  famq_generate_options o;
  famq_generate_options_init(&o);
  o.max_new_tokens = max_new_tokens;
  return o;
}

class CapiTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string tmpl = ::testing::TempDir() + "famq_capi_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = new std::string(tmpl);
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    fs::remove_all(*dir_, ec);
    delete dir_;
    delete qmodel_;
  }
  void TearDown() override { famq_force_isa(nullptr); }

  static std::string Tmp(const std::string& name) { return *dir_ + "/" + name; }

  static std::string CalibTextPath() {
    const std::string p = Tmp("calib.txt");
    if (!fs::exists(p)) Write(p, TextPrefix(kSource + "/models/eval/valid/fortunes.jsonl", 4096));
    return p;
  }
  static std::string PrivateTextPath() {
    const std::string p = Tmp("private.txt");
    if (!fs::exists(p)) Write(p, TextPrefix(kSource + "/models/eval/valid/bible.jsonl", 2048));
    return p;
  }

  static famq_finalize_options Rtn4() {
    famq_finalize_options o;
    famq_finalize_options_init(&o);
    o.method = "rtn";
    o.wbits = 4;
    o.group_size = 32;
    o.calib_seq_len = 64;
    o.num_threads = 1;
    return o;
  }

  // famq-tiny-s finalized once (rtn, W4 g32, calibration text) through the C API.
  static const std::string& QModel() {
    if (qmodel_ == nullptr) {
      qmodel_ = new std::string(Tmp("tiny-s-rtn4.famq"));
      const famq_finalize_options o = Rtn4();
      qmodel_status_ = famq_finalize(kFamily.c_str(), nullptr, nullptr, CalibTextPath().c_str(), &o, OnProgress,
                                     &qmodel_progress_, qmodel_->c_str());
      qmodel_error_ = famq_last_error();
    }
    return *qmodel_;
  }

  // An unsigned bundle built around the payload of the committed one.
  static std::string UnsignedBundle() {
    const std::string p = Tmp("unsigned.famqb");
    if (!fs::exists(p)) {
      famq::BundleVerifyOptions vo;
      vo.allow_unsigned = true;
      auto b = famq::Bundle::Open(kCorpusBundle, vo);
      EXPECT_TRUE(b.ok()) << b.status().ToString();
      if (!b.ok()) return p;
      const std::vector<uint8_t> bytes = famq::BuildBundleContainer(b->payload_bytes(), "", {});
      Write(p, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
    }
    return p;
  }

  static std::string* dir_;
  static std::string* qmodel_;
  static famq_status qmodel_status_;
  static std::string qmodel_error_;
  static Progress qmodel_progress_;
};
std::string* CapiTest::dir_ = nullptr;
std::string* CapiTest::qmodel_ = nullptr;
famq_status CapiTest::qmodel_status_ = FAMQ_INTERNAL;
std::string CapiTest::qmodel_error_;
Progress CapiTest::qmodel_progress_;

// --- status, version, errors -------------------------------------------------

TEST(CapiStatus, MapsOneToOneOntoStatusCode) {
  const struct {
    famq_status c;
    famq::StatusCode cpp;
    const char* name;
  } cases[] = {
      {FAMQ_OK, famq::StatusCode::kOk, "FAMQ_OK"},
      {FAMQ_INVALID_ARGUMENT, famq::StatusCode::kInvalidArgument, "FAMQ_INVALID_ARGUMENT"},
      {FAMQ_NOT_FOUND, famq::StatusCode::kNotFound, "FAMQ_NOT_FOUND"},
      {FAMQ_IO_ERROR, famq::StatusCode::kIoError, "FAMQ_IO_ERROR"},
      {FAMQ_INVALID_FORMAT, famq::StatusCode::kInvalidFormat, "FAMQ_INVALID_FORMAT"},
      {FAMQ_UNSUPPORTED, famq::StatusCode::kUnsupported, "FAMQ_UNSUPPORTED"},
      {FAMQ_OUT_OF_MEMORY, famq::StatusCode::kOutOfMemory, "FAMQ_OUT_OF_MEMORY"},
      {FAMQ_CANCELLED, famq::StatusCode::kCancelled, "FAMQ_CANCELLED"},
      {FAMQ_INTERNAL, famq::StatusCode::kInternal, "FAMQ_INTERNAL"},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(static_cast<int>(c.c), static_cast<int>(c.cpp)) << c.name;
    EXPECT_STREQ(famq_status_name(c.c), c.name);
  }
  // The C API's own codes follow famq::StatusCode's last one.
  EXPECT_EQ(static_cast<int>(FAMQ_BUFFER_TOO_SMALL), static_cast<int>(famq::StatusCode::kInternal) + 1);
  EXPECT_EQ(static_cast<int>(FAMQ_CONTEXT_FULL), static_cast<int>(famq::StatusCode::kInternal) + 2);
  EXPECT_STREQ(famq_status_name(FAMQ_BUFFER_TOO_SMALL), "FAMQ_BUFFER_TOO_SMALL");
  EXPECT_STREQ(famq_status_name(FAMQ_CONTEXT_FULL), "FAMQ_CONTEXT_FULL");
  EXPECT_EQ(FAMQ_OK, 0);
  EXPECT_STREQ(famq_status_name(static_cast<famq_status>(99)), "FAMQ_UNKNOWN_STATUS");
  EXPECT_STREQ(famq_status_name(FAMQ_STATUS_FORCE_32BIT), "FAMQ_UNKNOWN_STATUS");
  EXPECT_EQ(sizeof(famq_status), 4u);
}

TEST(CapiStatus, Version) {
  EXPECT_STREQ(famq_version(), FAMQ_VERSION_STRING);
  EXPECT_EQ(famq_api_version(), FAMQ_API_VERSION);
  EXPECT_EQ(FAMQ_API_VERSION, 2);  // 2: FAMQ_BUFFER_TOO_SMALL (docs/C_API.md)
}

TEST(CapiStatus, LastErrorIsPerThreadAndClearedBySuccess) {
  famq_model* m = nullptr;
  EXPECT_EQ(famq_model_open("/nonexistent/famq-model", nullptr, &m), FAMQ_NOT_FOUND);
  const std::string main_error = LastError();
  EXPECT_NE(main_error.find("/nonexistent/famq-model"), std::string::npos) << main_error;
  std::string other_before, other_after;
  std::thread t([&] {
    other_before = famq_last_error();
    famq_model* m2 = nullptr;
    EXPECT_EQ(famq_qmodel_open(nullptr, nullptr, &m2), FAMQ_INVALID_ARGUMENT);
    other_after = famq_last_error();
  });
  t.join();
  EXPECT_EQ(other_before, "");
  EXPECT_NE(other_after.find("qmodel_path is NULL"), std::string::npos) << other_after;
  EXPECT_EQ(LastError(), main_error);
  const char* isa = nullptr;
  EXPECT_EQ(famq_active_isa(&isa), FAMQ_OK);
  EXPECT_EQ(LastError(), "");
}

// --- NULL arguments ------------------------------------------------------------

// Expects INVALID_ARGUMENT whose message names `what`.
#define EXPECT_NULL_ARG(call, what)                                                  \
  do {                                                                               \
    EXPECT_EQ((call), FAMQ_INVALID_ARGUMENT) << #call;                               \
    EXPECT_NE(LastError().find(what), std::string::npos) << #call << ": " << LastError(); \
  } while (0)

TEST_F(CapiTest, EveryNullArgumentIsRefused) {
  famq_model* m = reinterpret_cast<famq_model*>(0x1);
  EXPECT_NULL_ARG(famq_model_open(nullptr, nullptr, &m), "model_dir is NULL");
  EXPECT_EQ(m, nullptr);  // outputs are cleared on failure
  EXPECT_NULL_ARG(famq_model_open(kQwen3.c_str(), nullptr, nullptr), "out_model is NULL");
  EXPECT_NULL_ARG(famq_model_open("", nullptr, &m), "model_dir is empty");
  EXPECT_NULL_ARG(famq_qmodel_open(nullptr, nullptr, &m), "qmodel_path is NULL");
  EXPECT_NULL_ARG(famq_qmodel_open("q.famq", nullptr, nullptr), "out_model is NULL");
  EXPECT_NULL_ARG(famq_active_isa(nullptr), "out_name is NULL");

  ASSERT_EQ(famq_model_open(kQwen3.c_str(), OneThread(), &m), FAMQ_OK) << LastError();
  famq_model_info info;
  info.struct_size = sizeof info;
  char buf[64];
  size_t len = 0;
  EXPECT_NULL_ARG(famq_model_get_info(nullptr, &info, buf, sizeof buf, &len), "model is NULL");
  EXPECT_NULL_ARG(famq_model_get_info(m, nullptr, buf, sizeof buf, &len), "info is NULL");
  EXPECT_NULL_ARG(famq_model_get_info(m, &info, nullptr, sizeof buf, &len), "scheme is NULL");
  EXPECT_NULL_ARG(famq_model_get_info(m, &info, buf, 0, &len), "scheme_capacity is 0");
  EXPECT_EQ(famq_model_get_info(m, &info, nullptr, 0, nullptr), FAMQ_OK) << LastError();

  const famq_generate_options g = Greedy(4);
  Seen seen;
  EXPECT_NULL_ARG(famq_generate(nullptr, "x", &g, OnToken, &seen, buf, sizeof buf, &len), "model is NULL");
  EXPECT_NULL_ARG(famq_generate(m, nullptr, &g, OnToken, &seen, buf, sizeof buf, &len), "prompt is NULL");
  EXPECT_NULL_ARG(famq_generate(m, "x", &g, nullptr, nullptr, nullptr, 0, &len), "both NULL");
  EXPECT_NULL_ARG(famq_generate(m, "x", &g, OnToken, &seen, nullptr, 16, &len), "out_text is NULL");
  EXPECT_NULL_ARG(famq_generate(m, "x", &g, OnToken, &seen, buf, 0, &len), "out_capacity is 0");
  EXPECT_TRUE(seen.tokens.empty());
  // Optional pointers: options, on_token / user (with a buffer), out_text (with a callback), out_len.
  EXPECT_EQ(famq_generate(m, "x", &g, nullptr, nullptr, buf, sizeof buf, nullptr), FAMQ_OK) << LastError();
  EXPECT_EQ(famq_generate(m, "x", &g, OnToken, &seen, nullptr, 0, nullptr), FAMQ_OK) << LastError();
  EXPECT_EQ(famq_generate(m, "x", nullptr, OnToken, &seen, nullptr, 0, nullptr), FAMQ_OK) << LastError();
  famq_model_close(m);
  famq_model_close(nullptr);

  famq_bundle* b = reinterpret_cast<famq_bundle*>(0x1);
  const std::string key = Tmp("foreign.pem");
  Write(key, kForeignKeyPem);
  EXPECT_NULL_ARG(famq_bundle_open(nullptr, key.c_str(), 0, &b), "bundle_path is NULL");
  EXPECT_EQ(b, nullptr);
  EXPECT_NULL_ARG(famq_bundle_open(kCorpusBundle.c_str(), key.c_str(), 0, nullptr), "out_bundle is NULL");
  EXPECT_NULL_ARG(famq_bundle_open(kCorpusBundle.c_str(), nullptr, 0, &b), "public_key_path is NULL");
  famq_bundle_info bi;
  bi.struct_size = sizeof bi;
  EXPECT_NULL_ARG(famq_bundle_get_info(nullptr, &bi), "bundle is NULL");
  ASSERT_EQ(famq_bundle_open(kCorpusBundle.c_str(), nullptr, 1, &b), FAMQ_OK) << LastError();
  EXPECT_NULL_ARG(famq_bundle_get_info(b, nullptr), "info is NULL");
  famq_bundle_close(b);
  famq_bundle_close(nullptr);
  EXPECT_NULL_ARG(famq_bundle_verify(nullptr, key.c_str(), 1, &bi), "bundle_path is NULL");
  EXPECT_NULL_ARG(famq_bundle_verify(kCorpusBundle.c_str(), nullptr, 0, &bi), "public_key_path is NULL");

  const famq_finalize_options o = Rtn4();
  const std::string out = Tmp("null-args.famq");
  const std::string text = CalibTextPath();
  EXPECT_NULL_ARG(famq_finalize(nullptr, nullptr, nullptr, text.c_str(), &o, nullptr, nullptr, out.c_str()),
                  "model_dir is NULL");
  EXPECT_NULL_ARG(famq_finalize(kFamily.c_str(), nullptr, nullptr, text.c_str(), &o, nullptr, nullptr, nullptr),
                  "out_path is NULL");
  EXPECT_NULL_ARG(famq_finalize(kFamily.c_str(), nullptr, nullptr, nullptr, &o, nullptr, nullptr, out.c_str()),
                  "exactly one calibration source");
  EXPECT_NULL_ARG(famq_finalize(kFamily.c_str(), kCorpusBundle.c_str(), key.c_str(), text.c_str(), &o, nullptr,
                                nullptr, out.c_str()),
                  "exactly one calibration source");
  EXPECT_NULL_ARG(famq_finalize(kFamily.c_str(), kCorpusBundle.c_str(), nullptr, nullptr, &o, nullptr, nullptr,
                                out.c_str()),
                  "public_key_path is NULL");
  EXPECT_FALSE(fs::exists(out));

  // The *_init functions accept NULL.
  famq_model_options_init(nullptr);
  famq_generate_options_init(nullptr);
  famq_finalize_options_init(nullptr);
}

// --- files that are missing or wrong ---------------------------------------------

TEST_F(CapiTest, BadPathsGiveTheRightStatusAndMessage) {
  famq_model* m = nullptr;
  EXPECT_EQ(famq_model_open("/nonexistent/dir", nullptr, &m), FAMQ_NOT_FOUND);
  EXPECT_NE(LastError().find("/nonexistent/dir"), std::string::npos) << LastError();
  EXPECT_EQ(famq_qmodel_open("/nonexistent/q.famq", nullptr, &m), FAMQ_NOT_FOUND);
  EXPECT_NE(LastError().find("/nonexistent/q.famq"), std::string::npos) << LastError();
  // A file that is not a quantized model: garbage, and an fp checkpoint.
  const std::string garbage = Tmp("garbage.bin");
  Write(garbage, std::string(4096, '\x5a'));
  EXPECT_EQ(famq_qmodel_open(garbage.c_str(), nullptr, &m), FAMQ_INVALID_FORMAT);
  EXPECT_NE(LastError().find(garbage), std::string::npos) << LastError();
  const std::string st = kQwen3 + "/model.safetensors";
  EXPECT_EQ(famq_qmodel_open(st.c_str(), nullptr, &m), FAMQ_INVALID_FORMAT) << LastError();
  EXPECT_EQ(m, nullptr);

  famq_bundle_info bi;
  bi.struct_size = sizeof bi;
  EXPECT_EQ(famq_bundle_verify("/nonexistent/b.famqb", nullptr, 1, &bi), FAMQ_NOT_FOUND);
  EXPECT_NE(LastError().find("/nonexistent/b.famqb"), std::string::npos) << LastError();
  EXPECT_EQ(famq_bundle_verify(kCorpusBundle.c_str(), "/nonexistent/key.pem", 0, &bi), FAMQ_NOT_FOUND);
  EXPECT_NE(LastError().find("/nonexistent/key.pem"), std::string::npos) << LastError();
  EXPECT_EQ(famq_bundle_verify(kCorpusBundle.c_str(), garbage.c_str(), 0, &bi), FAMQ_INVALID_FORMAT);
  EXPECT_EQ(famq_bundle_verify(garbage.c_str(), nullptr, 1, &bi), FAMQ_INVALID_FORMAT);
  EXPECT_NE(LastError().find("not a famq bundle"), std::string::npos) << LastError();

  const famq_finalize_options o = Rtn4();
  const std::string out = Tmp("bad-paths.famq");
  EXPECT_EQ(famq_finalize("/nonexistent/dir", nullptr, nullptr, CalibTextPath().c_str(), &o, nullptr, nullptr,
                          out.c_str()),
            FAMQ_NOT_FOUND);
  EXPECT_EQ(famq_finalize(kFamily.c_str(), nullptr, nullptr, "/nonexistent/calib.txt", &o, nullptr, nullptr,
                          out.c_str()),
            FAMQ_NOT_FOUND);
  EXPECT_NE(LastError().find("/nonexistent/calib.txt"), std::string::npos) << LastError();
  EXPECT_FALSE(fs::exists(out));
}

// --- options structs ---------------------------------------------------------------

// famq_model_options.kv_type: f16 by default (also for a struct from before
// the field), f32 and int8 on request, and the session's cache takes the
// type's bytes: tiny-random-qwen3 has head_dim 16, so per (position, head)
// f32 64 bytes, f16 32, int8 16 + a 4-byte scale.
TEST_F(CapiTest, KvTypeOption) {
  auto cache_bytes = [](const famq_model_options* mo) -> uint64_t {
    famq_model* m = nullptr;
    EXPECT_EQ(famq_model_open(kQwen3.c_str(), mo, &m), FAMQ_OK) << LastError();
    if (m == nullptr) return 0;
    famq_session* s = nullptr;
    EXPECT_EQ(famq_session_create(m, nullptr, &s), FAMQ_OK) << LastError();
    famq_session_stats st;
    st.struct_size = sizeof st;
    EXPECT_EQ(famq_session_get_stats(s, &st), FAMQ_OK) << LastError();
    famq_session_free(s);
    famq_model_close(m);
    return st.kv_cache_bytes;
  };
  famq_model_options mo;
  famq_model_options_init(&mo);
  EXPECT_EQ(mo.kv_type, FAMQ_KV_F16);
  mo.num_threads = 1;
  mo.max_seq_len = 64;
  const uint64_t f16 = cache_bytes(&mo);
  EXPECT_EQ(f16, uint64_t{2} * 2 * 64 * 2 * 16 * 2);  // k and v x layers x positions x kv heads x head_dim x 2
  mo.kv_type = FAMQ_KV_F32;
  EXPECT_EQ(cache_bytes(&mo), 2 * f16);
  mo.kv_type = FAMQ_KV_INT8;
  EXPECT_EQ(cache_bytes(&mo), f16 * (16 + 4) / 32);
  famq_model_options old = mo;  // a caller built before kv_type: reads as the default
  old.kv_type = FAMQ_KV_INT8;   // beyond its struct_size: not read
  old.struct_size = offsetof(famq_model_options, kv_type);
  EXPECT_EQ(cache_bytes(&old), f16);
  mo.kv_type = 3;
  famq_model* m = nullptr;
  EXPECT_EQ(famq_model_open(kQwen3.c_str(), &mo, &m), FAMQ_INVALID_ARGUMENT);
  EXPECT_NE(LastError().find("kv_type 3"), std::string::npos) << LastError();
  EXPECT_EQ(m, nullptr);
}

TEST_F(CapiTest, OptionStructSizes) {
  famq_model* m = nullptr;
  ASSERT_EQ(famq_model_open(kQwen3.c_str(), OneThread(), &m), FAMQ_OK) << LastError();
  char buf[256];
  famq_generate_options g;
  std::memset(&g, 0, sizeof g);  // never initialized
  EXPECT_EQ(famq_generate(m, "x", &g, nullptr, nullptr, buf, sizeof buf, nullptr), FAMQ_INVALID_ARGUMENT);
  EXPECT_NE(LastError().find("famq_generate_options_init"), std::string::npos) << LastError();

  // A newer caller's larger struct: fine while the fields this library lacks are zero.
  struct Newer {
    famq_generate_options base;
    int32_t future_field;
  } newer;
  std::memset(&newer, 0, sizeof newer);
  famq_generate_options_init(&newer.base);
  newer.base.struct_size = sizeof newer;
  newer.base.max_new_tokens = 2;
  EXPECT_EQ(famq_generate(m, "x", &newer.base, nullptr, nullptr, buf, sizeof buf, nullptr), FAMQ_OK) << LastError();
  newer.future_field = 1;
  EXPECT_EQ(famq_generate(m, "x", &newer.base, nullptr, nullptr, buf, sizeof buf, nullptr), FAMQ_UNSUPPORTED);

  famq_model_info info;
  info.struct_size = 4;
  EXPECT_EQ(famq_model_get_info(m, &info, nullptr, 0, nullptr), FAMQ_INVALID_ARGUMENT);
  famq_model_close(m);

  famq_model_options mo;
  famq_model_options_init(&mo);
  mo.num_threads = -1;
  EXPECT_EQ(famq_model_open(kQwen3.c_str(), &mo, &m), FAMQ_INVALID_ARGUMENT);
  EXPECT_NE(LastError().find("num_threads"), std::string::npos) << LastError();
}

// --- models and generation ---------------------------------------------------------

TEST_F(CapiTest, ModelInfoAndScheme) {
  famq_model_options mo;
  famq_model_options_init(&mo);
  mo.num_threads = 1;
  mo.max_seq_len = 96;
  famq_model* m = nullptr;
  ASSERT_EQ(famq_model_open(kFamily.c_str(), &mo, &m), FAMQ_OK) << LastError();
  famq_model_info info;
  info.struct_size = sizeof info;
  char scheme[64];
  size_t len = 0;
  ASSERT_EQ(famq_model_get_info(m, &info, scheme, sizeof scheme, &len), FAMQ_OK) << LastError();
  EXPECT_EQ(info.struct_size, sizeof info);
  EXPECT_EQ(info.parameters, 1312768);
  EXPECT_EQ(info.layers, 4);
  EXPECT_EQ(info.hidden_size, 128);
  EXPECT_EQ(info.vocab_size, 4101);
  EXPECT_EQ(info.max_seq_len, 96);
  EXPECT_EQ(info.quantized, 0);
  EXPECT_EQ(info.wbits, 0);
  EXPECT_STREQ(scheme, "fp32");
  EXPECT_EQ(len, 4u);

  // Truncation: a NUL-terminated prefix, the full length, FAMQ_BUFFER_TOO_SMALL.
  char small[3] = {'x', 'x', 'x'};
  EXPECT_EQ(famq_model_get_info(m, &info, small, sizeof small, &len), FAMQ_BUFFER_TOO_SMALL);
  EXPECT_STREQ(small, "fp");
  EXPECT_EQ(len, 4u);
  EXPECT_NE(LastError().find("fp32"), std::string::npos) << LastError();

  // The context bounds the prompt.
  std::string long_prompt;
  for (int i = 0; i < 200; ++i) long_prompt += "word ";
  char buf[64];
  EXPECT_EQ(famq_generate(m, long_prompt.c_str(), nullptr, nullptr, nullptr, buf, sizeof buf, nullptr),
            FAMQ_INVALID_ARGUMENT);
  EXPECT_NE(LastError().find("exceeds the context"), std::string::npos) << LastError();
  // ... and the new tokens.
  famq_generate_options g = Greedy(1000);
  Seen seen;
  EXPECT_EQ(famq_generate(m, "Genesis", &g, OnToken, &seen, nullptr, 0, nullptr), FAMQ_OK) << LastError();
  EXPECT_LE(seen.tokens.size(), 96u);
  famq_model_close(m);
}

void ExpectGreedyMatchesGenerator(const std::string& dir, const std::string& qmodel, const std::string& prompt) {
  SCOPED_TRACE(dir + qmodel);
  const int n = 24;
  const std::vector<int32_t> ref = ReferenceTokens(dir, qmodel, prompt, n);
  ASSERT_FALSE(ref.empty());
  famq_model* m = nullptr;
  ASSERT_EQ(qmodel.empty() ? famq_model_open(dir.c_str(), OneThread(), &m)
                            : famq_qmodel_open(qmodel.c_str(), OneThread(), &m),
            FAMQ_OK)
      << LastError();
  const famq_generate_options g = Greedy(n);
  Seen seen;
  std::vector<char> buf(4096, '\x7f');
  size_t len = 12345;
  ASSERT_EQ(famq_generate(m, prompt.c_str(), &g, OnToken, &seen, buf.data(), buf.size(), &len), FAMQ_OK)
      << LastError();
  EXPECT_EQ(seen.tokens, ref);
  EXPECT_EQ(len, seen.text.size());
  EXPECT_EQ(std::string(buf.data(), len), seen.text);
  EXPECT_EQ(buf[len], '\0');
  // The same again: a model runs any number of generations.
  Seen again;
  ASSERT_EQ(famq_generate(m, prompt.c_str(), &g, OnToken, &again, nullptr, 0, nullptr), FAMQ_OK) << LastError();
  EXPECT_EQ(again.tokens, ref);
  famq_model_close(m);
}

TEST_F(CapiTest, GreedyEqualsTheGeneratorOnFixtures) {
  ExpectGreedyMatchesGenerator(kQwen3, "", "Hello, world");
  ExpectGreedyMatchesGenerator(kLlama, "", "Hello, world");
  ExpectGreedyMatchesGenerator(kFamily, "", kPrompt);
}

TEST_F(CapiTest, BufferTruncationIsAStatusNeverAnOverflow) {
  famq_model* m = nullptr;
  ASSERT_EQ(famq_model_open(kFamily.c_str(), OneThread(), &m), FAMQ_OK) << LastError();
  const famq_generate_options g = Greedy(24);
  Seen full;
  ASSERT_EQ(famq_generate(m, kPrompt, &g, OnToken, &full, nullptr, 0, nullptr), FAMQ_OK) << LastError();
  ASSERT_GT(full.text.size(), 8u);

  const size_t cap = full.text.size() / 2;
  std::vector<char> buf(cap + 16, '#');  // guard bytes after the capacity
  Seen seen;
  size_t len = 0;
  EXPECT_EQ(famq_generate(m, kPrompt, &g, OnToken, &seen, buf.data(), cap, &len), FAMQ_BUFFER_TOO_SMALL);
  EXPECT_NE(LastError().find("is full"), std::string::npos) << LastError();
  EXPECT_LT(len, cap);
  EXPECT_EQ(buf[len], '\0');
  EXPECT_EQ(std::string(buf.data(), len), full.text.substr(0, len));
  EXPECT_EQ(seen.text, std::string(buf.data(), len));  // the callback saw exactly what was written
  EXPECT_LT(seen.tokens.size(), full.tokens.size());
  for (size_t i = cap; i < buf.size(); ++i) ASSERT_EQ(buf[i], '#') << "overflow at " << i;

  // A 1-byte buffer holds only the NUL.
  char one = 'z';
  EXPECT_EQ(famq_generate(m, kPrompt, &g, nullptr, nullptr, &one, 1, &len), FAMQ_BUFFER_TOO_SMALL);
  EXPECT_EQ(one, '\0');
  EXPECT_EQ(len, 0u);
  famq_model_close(m);
}

TEST_F(CapiTest, TokenCallbackStops) {
  famq_model* m = nullptr;
  ASSERT_EQ(famq_model_open(kFamily.c_str(), OneThread(), &m), FAMQ_OK) << LastError();
  const famq_generate_options g = Greedy(24);
  Seen full;
  ASSERT_EQ(famq_generate(m, kPrompt, &g, OnToken, &full, nullptr, 0, nullptr), FAMQ_OK) << LastError();
  ASSERT_GT(full.tokens.size(), 3u);
  Seen seen;
  seen.stop_after = 3;
  char buf[512];
  size_t len = 0;
  EXPECT_EQ(famq_generate(m, kPrompt, &g, OnToken, &seen, buf, sizeof buf, &len), FAMQ_OK) << LastError();
  EXPECT_EQ(seen.tokens, std::vector<int32_t>(full.tokens.begin(), full.tokens.begin() + 3));
  EXPECT_EQ(std::string(buf, len), seen.text);
  famq_model_close(m);
}

// Between two tokens (decode step, sampling, the piece handed to the
// callback and copied into the buffer) nothing is allocated.
int CountAllocations(const char*, size_t, int32_t, void* user) {
  auto* counts = static_cast<std::vector<long>*>(user);
  if (counts->size() < counts->capacity()) counts->push_back(famq::testing::AllocationCount());
  return 0;
}

TEST_F(CapiTest, TokenLoopAllocatesNothing) {
  if (famq::testing::AllocationCount() < 0) GTEST_SKIP() << "allocation counting is off in sanitizer builds";
  famq_model* m = nullptr;
  ASSERT_EQ(famq_qmodel_open(QModel().c_str(), OneThread(), &m), FAMQ_OK) << LastError();
  famq_generate_options g = Greedy(24);
  g.temperature = 0.8f;  // the sampler's path too
  g.top_k = 50;
  g.top_p = 0.9f;
  std::vector<long> counts;
  counts.reserve(64);
  std::vector<char> buf(4096);
  ASSERT_EQ(famq_generate(m, "Genesis 1:1", &g, CountAllocations, &counts, buf.data(), buf.size(), nullptr), FAMQ_OK)
      << LastError();
  famq_model_close(m);
  ASSERT_GE(counts.size(), 4u);
  EXPECT_EQ(counts.back(), counts.front()) << "allocations between the first and the last of " << counts.size()
                                           << " tokens";
}

TEST_F(CapiTest, ABusyModelRefusesASecondCall) {
  famq_model* m = nullptr;
  ASSERT_EQ(famq_model_open(kQwen3.c_str(), OneThread(), &m), FAMQ_OK) << LastError();
  const famq_generate_options g = Greedy(3);
  Seen seen;
  seen.reenter = m;
  EXPECT_EQ(famq_generate(m, "Hello", &g, OnToken, &seen, nullptr, 0, nullptr), FAMQ_OK) << LastError();
  EXPECT_EQ(seen.reenter_status, FAMQ_INVALID_ARGUMENT);
  EXPECT_NE(seen.reenter_error.find("busy"), std::string::npos) << seen.reenter_error;
  famq_model_close(m);
}

TEST_F(CapiTest, ChatTemplateAndSampling) {
  famq_model* m = nullptr;
  ASSERT_EQ(famq_model_open(kFamily.c_str(), OneThread(), &m), FAMQ_OK) << LastError();
  famq_generate_options g = Greedy(12);
  g.chat = 1;
  g.enable_thinking = 0;
  Seen chat;
  EXPECT_EQ(famq_generate(m, "What is 2 + 3?", &g, OnToken, &chat, nullptr, 0, nullptr), FAMQ_OK) << LastError();
  EXPECT_FALSE(chat.tokens.empty());

  // Seeded sampling: the same seed gives the same tokens.
  g = Greedy(12);
  g.temperature = 0.9f;
  g.top_k = 40;
  g.top_p = 0.95f;
  g.seed = 7;
  Seen a, b;
  EXPECT_EQ(famq_generate(m, kPrompt, &g, OnToken, &a, nullptr, 0, nullptr), FAMQ_OK) << LastError();
  EXPECT_EQ(famq_generate(m, kPrompt, &g, OnToken, &b, nullptr, 0, nullptr), FAMQ_OK) << LastError();
  EXPECT_EQ(a.tokens, b.tokens);
  g.top_p = 1.5f;
  EXPECT_EQ(famq_generate(m, kPrompt, &g, OnToken, &a, nullptr, 0, nullptr), FAMQ_INVALID_ARGUMENT);
  g = Greedy(-1);
  EXPECT_EQ(famq_generate(m, kPrompt, &g, OnToken, &a, nullptr, 0, nullptr), FAMQ_INVALID_ARGUMENT);
  // Not UTF-8.
  EXPECT_EQ(famq_generate(m, "\xff\xfe", nullptr, OnToken, &a, nullptr, 0, nullptr), FAMQ_INVALID_ARGUMENT);
  famq_model_close(m);

  // A model without a chat template refuses chat.
  const std::string dir = Tmp("no-chat");
  fs::create_directories(dir);
  for (const char* f : {"config.json", "model.safetensors", "tokenizer.json", "generation_config.json"}) {
    fs::copy_file(kQwen3 + "/" + f, dir + "/" + f, fs::copy_options::overwrite_existing);
  }
  Write(dir + "/tokenizer_config.json", "{\"add_bos_token\": false}");
  ASSERT_EQ(famq_model_open(dir.c_str(), OneThread(), &m), FAMQ_OK) << LastError();
  g = Greedy(2);
  g.chat = 1;
  EXPECT_EQ(famq_generate(m, "Hi", &g, OnToken, &a, nullptr, 0, nullptr), FAMQ_INVALID_ARGUMENT);
  EXPECT_NE(LastError().find("chat_template"), std::string::npos) << LastError();
  famq_model_close(m);
}

// --- tokens ---------------------------------------------------------------------------

TEST_F(CapiTest, TokenizeCountDetokenize) {
  famq_model* m = nullptr;
  ASSERT_EQ(famq_model_open(kFamily.c_str(), OneThread(), &m), FAMQ_OK) << LastError();
  auto rm = famq::OpenRunnableModel(kFamily, "");
  ASSERT_TRUE(rm.ok()) << rm.status().ToString();
  const std::string text = "Question: What is 36 + 8?\nAnswer: 44. Überraschung \xe2\x9c\x93";
  std::vector<int32_t> ref;
  ASSERT_TRUE(rm->tokenizer.Encode(text, &ref).ok());
  ASSERT_GT(ref.size(), 4u);

  size_t count = 0;
  ASSERT_EQ(famq_token_count(m, text.c_str(), 0, &count), FAMQ_OK) << LastError();
  EXPECT_EQ(count, ref.size());
  // A count only: out_tokens NULL, capacity 0.
  count = 0;
  ASSERT_EQ(famq_tokenize(m, text.c_str(), 0, nullptr, 0, &count), FAMQ_OK) << LastError();
  EXPECT_EQ(count, ref.size());
  std::vector<int32_t> ids(ref.size() + 4, -7);
  ASSERT_EQ(famq_tokenize(m, text.c_str(), 0, ids.data(), ids.size(), &count), FAMQ_OK) << LastError();
  EXPECT_EQ(std::vector<int32_t>(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(count)), ref);
  EXPECT_EQ(ids[count], -7);
  // add_special follows add_bos_token (famq-tiny-s: none), as famq_generate does.
  size_t with_special = 0;
  ASSERT_EQ(famq_token_count(m, text.c_str(), 1, &with_special), FAMQ_OK);
  EXPECT_EQ(with_special, ref.size() + ((rm->add_bos && rm->bos_token) ? 1u : 0u));

  // Too small: a distinct status, the prefix written, the count needed reported.
  std::vector<int32_t> small(3 + 2, -7);
  count = 0;
  EXPECT_EQ(famq_tokenize(m, text.c_str(), 0, small.data(), 3, &count), FAMQ_BUFFER_TOO_SMALL);
  EXPECT_EQ(count, ref.size());
  EXPECT_EQ(std::vector<int32_t>(small.begin(), small.begin() + 3), std::vector<int32_t>(ref.begin(), ref.begin() + 3));
  EXPECT_EQ(small[3], -7);
  EXPECT_EQ(famq_tokenize(m, "\xff", 0, ids.data(), ids.size(), &count), FAMQ_INVALID_ARGUMENT);
  EXPECT_EQ(famq_tokenize(m, "x", 0, nullptr, 4, &count), FAMQ_INVALID_ARGUMENT);

  // Detokenize: the text back; a cut buffer ends at a character boundary, with the length needed.
  char buf[256];
  size_t len = 0;
  ASSERT_EQ(famq_detokenize(m, ref.data(), ref.size(), buf, sizeof buf, &len), FAMQ_OK) << LastError();
  EXPECT_EQ(std::string(buf, len), text);
  EXPECT_EQ(buf[len], '\0');
  const size_t cut = text.size() - 1;  // inside the last 3-byte character
  std::vector<char> tiny(cut + 8, '#');
  EXPECT_EQ(famq_detokenize(m, ref.data(), ref.size(), tiny.data(), cut, &len), FAMQ_BUFFER_TOO_SMALL);
  EXPECT_EQ(len, text.size());
  EXPECT_EQ(std::string(tiny.data()), text.substr(0, text.size() - 3));
  for (size_t i = cut; i < tiny.size(); ++i) ASSERT_EQ(tiny[i], '#') << "overflow at " << i;
  const int32_t bad = 1 << 30;
  EXPECT_EQ(famq_detokenize(m, &bad, 1, buf, sizeof buf, &len), FAMQ_INVALID_ARGUMENT);
  EXPECT_NE(LastError().find("tokens[0]"), std::string::npos) << LastError();
  EXPECT_EQ(famq_detokenize(m, nullptr, 0, buf, sizeof buf, &len), FAMQ_OK);
  EXPECT_EQ(len, 0u);
  EXPECT_EQ(famq_detokenize(m, ref.data(), ref.size(), buf, 0, &len), FAMQ_INVALID_ARGUMENT);
  famq_model_close(m);
}

// --- chat sessions -------------------------------------------------------------------

famq_model* OpenFamily(int max_seq_len) {
  famq_model_options mo;
  famq_model_options_init(&mo);
  mo.num_threads = 1;
  mo.max_seq_len = max_seq_len;
  famq_model* m = nullptr;
  EXPECT_EQ(famq_model_open(kFamily.c_str(), &mo, &m), FAMQ_OK) << LastError();
  return m;
}

famq_session_params SessionGreedy(int max_new_tokens) {
  famq_session_params p;
  famq_session_default_params(&p);
  p.max_new_tokens = max_new_tokens;
  p.enable_thinking = 0;
  return p;
}

famq_session_stats Stats(const famq_session* s) {
  famq_session_stats st;
  std::memset(&st, 0, sizeof st);
  st.struct_size = sizeof st;
  EXPECT_EQ(famq_session_get_stats(s, &st), FAMQ_OK) << LastError();
  return st;
}

// A session's reply (text and the pieces' concatenation must agree).
std::string Send(famq_session* s, const char* message, Seen* seen = nullptr) {
  Seen local;
  Seen* v = seen != nullptr ? seen : &local;
  std::vector<char> buf(8192);
  size_t len = 0;
  const famq_status st = famq_session_send(s, message, OnToken, v, buf.data(), buf.size(), &len);
  EXPECT_EQ(st, FAMQ_OK) << LastError();
  EXPECT_EQ(std::string(buf.data(), len), v->text);
  return std::string(buf.data(), len);
}

const char* const kTurns[] = {"What is 2 + 3?", "And 4 + 4?", "Name a colour.", "Thank you."};

TEST_F(CapiTest, SessionPrefillsOnlyTheNewTurnAndMatchesAFreshPrefill) {
  famq_model* m = OpenFamily(512);
  ASSERT_NE(m, nullptr);
  const famq_session_params p = SessionGreedy(16);
  famq_session* s = nullptr;
  ASSERT_EQ(famq_session_create(m, &p, &s), FAMQ_OK) << LastError();
  ASSERT_EQ(famq_session_add_message(s, FAMQ_ROLE_SYSTEM, "You are a calculator."), FAMQ_OK) << LastError();
  std::vector<std::string> replies;
  int32_t previous_context = 0, previous_prompt = 0;
  // Qwen3's template renders past replies without their (here empty) <think></think>: the cache
  // matches up to there, and the previous reply is prefilled again (docs/C_API.md).
  size_t think = 0;
  ASSERT_EQ(famq_token_count(m, "<think>\n\n</think>\n\n", 0, &think), FAMQ_OK);
  const int32_t think_tokens = static_cast<int32_t>(think);
  for (size_t turn = 0; turn < std::size(kTurns); ++turn) {
    SCOPED_TRACE(turn);
    replies.push_back(Send(s, kTurns[turn]));
    const famq_session_stats st = Stats(s);
    EXPECT_EQ(st.messages, static_cast<int32_t>(2 * turn + 3));
    EXPECT_EQ(st.last_reused_tokens + st.last_prefill_tokens, st.last_prompt_tokens);
    EXPECT_GE(st.last_generated_tokens, 1);
    EXPECT_GT(st.context_tokens, previous_context);
    EXPECT_GT(st.kv_cache_bytes, 0u);
    if (turn == 0) {
      EXPECT_EQ(st.last_reused_tokens, 0);
    } else {
      EXPECT_GE(st.last_reused_tokens, previous_prompt - think_tokens) << "prompt " << st.last_prompt_tokens;
      EXPECT_LE(st.last_prefill_tokens, st.last_prompt_tokens - previous_prompt + think_tokens);
    }
    previous_context = st.context_tokens;
    previous_prompt = st.last_prompt_tokens;
  }

  // The last reply equals what a fresh session computes from the whole conversation at once.
  famq_session* fresh = nullptr;
  ASSERT_EQ(famq_session_create(m, &p, &fresh), FAMQ_OK) << LastError();
  ASSERT_EQ(famq_session_add_message(fresh, FAMQ_ROLE_SYSTEM, "You are a calculator."), FAMQ_OK);
  for (size_t turn = 0; turn + 1 < std::size(kTurns); ++turn) {
    ASSERT_EQ(famq_session_add_message(fresh, FAMQ_ROLE_USER, kTurns[turn]), FAMQ_OK);
    ASSERT_EQ(famq_session_add_message(fresh, FAMQ_ROLE_ASSISTANT, replies[turn].c_str()), FAMQ_OK);
  }
  ASSERT_EQ(famq_session_add_message(fresh, FAMQ_ROLE_USER, kTurns[std::size(kTurns) - 1]), FAMQ_OK);
  char buf[4096];
  size_t len = 0;
  ASSERT_EQ(famq_session_generate(fresh, nullptr, nullptr, buf, sizeof buf, &len), FAMQ_OK) << LastError();
  EXPECT_EQ(std::string(buf, len), replies.back());
  EXPECT_EQ(Stats(fresh).last_reused_tokens, 0);
  // Nothing to answer after an assistant message.
  EXPECT_EQ(famq_session_generate(fresh, nullptr, nullptr, buf, sizeof buf, &len), FAMQ_INVALID_ARGUMENT);
  EXPECT_NE(LastError().find("nothing to answer"), std::string::npos) << LastError();

  // Reset: the first turn again, nothing reused, the same reply.
  ASSERT_EQ(famq_session_reset(s), FAMQ_OK);
  EXPECT_EQ(Stats(s).messages, 0);
  EXPECT_EQ(Stats(s).context_tokens, 0);
  ASSERT_EQ(famq_session_add_message(s, FAMQ_ROLE_SYSTEM, "You are a calculator."), FAMQ_OK);
  EXPECT_EQ(Send(s, kTurns[0]), replies[0]);
  EXPECT_EQ(Stats(s).last_reused_tokens, 0);
  famq_session_free(fresh);
  famq_session_free(s);
  famq_model_close(m);
}

TEST_F(CapiTest, SessionsOnOneModelKeepTheirOwnCaches) {
  famq_model* m = OpenFamily(256);
  ASSERT_NE(m, nullptr);
  const famq_session_params p = SessionGreedy(12);
  famq_session *a = nullptr, *b = nullptr, *alone = nullptr;
  ASSERT_EQ(famq_session_create(m, &p, &a), FAMQ_OK) << LastError();
  ASSERT_EQ(famq_session_create(m, &p, &b), FAMQ_OK) << LastError();
  ASSERT_EQ(famq_session_create(m, &p, &alone), FAMQ_OK) << LastError();
  const std::string a1 = Send(a, kTurns[0]);
  Send(b, "Tell me about the sea.");
  char buf[4096];
  // famq_generate in between uses the model's own cache.
  const famq_generate_options g = Greedy(8);
  EXPECT_EQ(famq_generate(m, kPrompt, &g, nullptr, nullptr, buf, sizeof buf, nullptr), FAMQ_OK) << LastError();
  const std::string a2 = Send(a, kTurns[1]);
  EXPECT_GT(Stats(a).last_reused_tokens, 0);
  EXPECT_EQ(Send(alone, kTurns[0]), a1);
  EXPECT_EQ(Send(alone, kTurns[1]), a2);
  famq_session_free(a);
  famq_session_free(b);
  famq_session_free(alone);
  famq_model_close(m);
}

TEST_F(CapiTest, SessionThinkingStopsAndCallbacks) {
  famq_model* m = OpenFamily(512);
  ASSERT_NE(m, nullptr);
  // enable_thinking reaches the template: off pre-fills an empty <think></think> (Qwen3).
  famq_session_params p = SessionGreedy(1);
  famq_session *off = nullptr, *on = nullptr;
  ASSERT_EQ(famq_session_create(m, &p, &off), FAMQ_OK) << LastError();
  p.enable_thinking = 1;
  ASSERT_EQ(famq_session_create(m, &p, &on), FAMQ_OK) << LastError();
  Send(off, "Hi");
  Send(on, "Hi");
  size_t think = 0;
  ASSERT_EQ(famq_token_count(m, "<think>\n\n</think>\n\n", 0, &think), FAMQ_OK);
  EXPECT_EQ(Stats(off).last_prompt_tokens, Stats(on).last_prompt_tokens + static_cast<int32_t>(think));
  // set_params switches it for the next turn.
  ASSERT_EQ(famq_session_set_params(on, &p), FAMQ_OK);
  famq_session_free(off);
  famq_session_free(on);

  // A long greedy reply to cut.
  p = SessionGreedy(40);
  famq_session* s = nullptr;
  ASSERT_EQ(famq_session_create(m, &p, &s), FAMQ_OK) << LastError();
  Seen full;
  const std::string reply = Send(s, "Write a story.", &full);
  ASSERT_GT(reply.size(), 12u) << reply;
  ASSERT_GT(full.tokens.size(), 4u);

  // A stop string: the reply ends before its first occurrence, nothing of it delivered.
  const std::string stop = reply.substr(6, 3);
  const size_t at = reply.find(stop);
  const char* stops[] = {"\x01never", stop.c_str()};
  famq_session_params ps = SessionGreedy(40);
  ps.stop_strings = stops;
  ps.n_stop_strings = 2;
  famq_session* ss = nullptr;
  ASSERT_EQ(famq_session_create(m, &ps, &ss), FAMQ_OK) << LastError();
  Seen cut;
  EXPECT_EQ(Send(ss, "Write a story.", &cut), reply.substr(0, at));
  EXPECT_EQ(cut.text, reply.substr(0, at));
  EXPECT_EQ(Stats(ss).last_stop, FAMQ_STOP_STRING);
  famq_session_free(ss);

  // A stop token: the reply ends before it; it is not delivered.
  const int32_t third = full.tokens[2];
  famq_session_params pt = SessionGreedy(40);
  pt.stop_tokens = &third;
  pt.n_stop_tokens = 1;
  famq_session* st = nullptr;
  ASSERT_EQ(famq_session_create(m, &pt, &st), FAMQ_OK) << LastError();
  Seen two;
  Send(st, "Write a story.", &two);
  EXPECT_EQ(two.tokens, std::vector<int32_t>(full.tokens.begin(), full.tokens.begin() + 2));
  EXPECT_EQ(Stats(st).last_stop, FAMQ_STOP_TOKEN);
  famq_session_free(st);

  // The callback stops the reply; what it received is the reply kept; the next turn works.
  famq_session* sc = nullptr;
  ASSERT_EQ(famq_session_create(m, &p, &sc), FAMQ_OK) << LastError();
  Seen stopped;
  stopped.stop_after = 3;
  EXPECT_EQ(Send(sc, "Write a story.", &stopped), stopped.text);
  EXPECT_EQ(stopped.tokens, std::vector<int32_t>(full.tokens.begin(), full.tokens.begin() + 3));
  EXPECT_EQ(Stats(sc).last_stop, FAMQ_STOP_CALLBACK);
  Send(sc, "Go on.");
  EXPECT_GT(Stats(sc).last_reused_tokens, 0);

  // A buffer too small: the distinct status, the length needed, the reply kept.
  std::vector<char> small(8 + 8, '#');
  size_t len = 0;
  EXPECT_EQ(famq_session_send(s, "Again.", nullptr, nullptr, small.data(), 8, &len), FAMQ_BUFFER_TOO_SMALL)
      << LastError();
  EXPECT_GE(len, 8u);
  EXPECT_EQ(std::strlen(small.data()), 7u);
  for (size_t i = 8; i < small.size(); ++i) ASSERT_EQ(small[i], '#') << "overflow at " << i;
  EXPECT_EQ(Stats(s).messages, 4);

  // Re-entry from the callback: the session and the model are busy.
  struct Reenter {
    famq_session* s;
    famq_model* m;
    famq_status session_status = FAMQ_OK, model_status = FAMQ_OK;
  } re{s, m};
  auto cb = [](const char*, size_t, int32_t, void* user) -> int {
    auto* r = static_cast<Reenter*>(user);
    char b[16];
    r->session_status = famq_session_send(r->s, "x", nullptr, nullptr, b, sizeof b, nullptr);
    r->model_status = famq_generate(r->m, "x", nullptr, nullptr, nullptr, b, sizeof b, nullptr);
    return 1;
  };
  EXPECT_EQ(famq_session_send(s, "Once more.", cb, &re, nullptr, 0, nullptr), FAMQ_OK) << LastError();
  EXPECT_EQ(re.session_status, FAMQ_INVALID_ARGUMENT);
  EXPECT_EQ(re.model_status, FAMQ_INVALID_ARGUMENT);
  famq_session_free(sc);
  famq_session_free(s);
  famq_model_close(m);
}

TEST_F(CapiTest, SessionRepetitionPenaltyChangesGreedyReplies) {
  famq_model* m = OpenFamily(256);
  ASSERT_NE(m, nullptr);
  famq_session_params p = SessionGreedy(40);
  famq_session *plain = nullptr, *penalized = nullptr;
  ASSERT_EQ(famq_session_create(m, &p, &plain), FAMQ_OK) << LastError();
  p.repetition_penalty = 5.0f;
  ASSERT_EQ(famq_session_create(m, &p, &penalized), FAMQ_OK) << LastError();
  // famq-tiny-s answers "The answer is 20." greedily; the penalty pushes "20" (in the question) away.
  Seen a, b;
  Send(plain, "List the numbers from 1 to 20.", &a);
  Send(penalized, "List the numbers from 1 to 20.", &b);
  EXPECT_NE(a.text, b.text);
  EXPECT_NE(a.text.find("20"), std::string::npos) << a.text;
  famq_session_free(plain);
  famq_session_free(penalized);
  famq_model_close(m);
}

TEST_F(CapiTest, SessionContextFullLeavesTheConversationUnchanged) {
  famq_model* m = OpenFamily(96);
  ASSERT_NE(m, nullptr);
  const famq_session_params p = SessionGreedy(8);
  famq_session* s = nullptr;
  ASSERT_EQ(famq_session_create(m, &p, &s), FAMQ_OK) << LastError();
  famq_status st = FAMQ_OK;
  int turns = 0;
  char buf[1024];
  for (; turns < 20 && st == FAMQ_OK; ++turns) {
    st = famq_session_send(s, "Tell me more about the history of the world.", nullptr, nullptr, buf, sizeof buf,
                           nullptr);
  }
  ASSERT_EQ(st, FAMQ_CONTEXT_FULL) << LastError();
  EXPECT_NE(LastError().find("context"), std::string::npos) << LastError();
  EXPECT_GT(turns, 1);
  const famq_session_stats full = Stats(s);
  EXPECT_EQ(full.messages, 2 * (turns - 1));  // the refused user message was removed
  EXPECT_LE(full.context_tokens, 96);
  // A reply cut by the end of the context says so.
  ASSERT_EQ(famq_session_reset(s), FAMQ_OK);
  famq_session_params big = SessionGreedy(1000);
  ASSERT_EQ(famq_session_set_params(s, &big), FAMQ_OK);
  ASSERT_EQ(famq_session_send(s, "Hi", nullptr, nullptr, buf, sizeof buf, nullptr), FAMQ_OK) << LastError();
  const famq_session_stats st2 = Stats(s);
  EXPECT_TRUE(st2.last_stop == FAMQ_STOP_CONTEXT || st2.last_stop == FAMQ_STOP_TOKEN) << st2.last_stop;
  if (st2.last_stop == FAMQ_STOP_CONTEXT) {
    EXPECT_EQ(st2.last_prompt_tokens + st2.last_generated_tokens, 96);
  }
  famq_session_free(s);
  famq_model_close(m);
}

TEST_F(CapiTest, SessionArgumentsAreChecked) {
  famq_model* m = OpenFamily(64);
  ASSERT_NE(m, nullptr);
  famq_session* s = reinterpret_cast<famq_session*>(0x1);
  EXPECT_NULL_ARG(famq_session_create(nullptr, nullptr, &s), "model is NULL");
  EXPECT_EQ(s, nullptr);
  EXPECT_NULL_ARG(famq_session_create(m, nullptr, nullptr), "out_session is NULL");
  famq_session_params p;
  famq_session_default_params(&p);
  p.repetition_penalty = 0.5f;
  EXPECT_NULL_ARG(famq_session_create(m, &p, &s), "repetition_penalty");
  famq_session_default_params(&p);
  p.max_new_tokens = 0;
  EXPECT_NULL_ARG(famq_session_create(m, &p, &s), "max_new_tokens");
  famq_session_default_params(&p);
  p.n_stop_strings = 1;
  EXPECT_NULL_ARG(famq_session_create(m, &p, &s), "stop_strings is NULL");
  const char* empty[] = {""};
  p.stop_strings = empty;
  EXPECT_NULL_ARG(famq_session_create(m, &p, &s), "stop_strings[0]");
  p.n_stop_strings = FAMQ_MAX_STOPS + 1;
  EXPECT_NULL_ARG(famq_session_create(m, &p, &s), "at most");
  famq_session_default_params(&p);
  const int32_t bad_token = 1 << 20;
  p.stop_tokens = &bad_token;
  p.n_stop_tokens = 1;
  EXPECT_NULL_ARG(famq_session_create(m, &p, &s), "stop_tokens[0]");
  famq_session_default_params(&p);
  p.top_p = 2.0f;
  EXPECT_NULL_ARG(famq_session_create(m, &p, &s), "top-p");

  ASSERT_EQ(famq_session_create(m, nullptr, &s), FAMQ_OK) << LastError();
  EXPECT_NULL_ARG(famq_session_add_message(nullptr, FAMQ_ROLE_USER, "x"), "session is NULL");
  EXPECT_NULL_ARG(famq_session_add_message(s, FAMQ_ROLE_USER, nullptr), "content is NULL");
  EXPECT_NULL_ARG(famq_session_add_message(s, static_cast<famq_role>(7), "x"), "role 7");
  EXPECT_NULL_ARG(famq_session_add_message(s, FAMQ_ROLE_USER, "\xc3"), "UTF-8");
  EXPECT_NULL_ARG(famq_session_send(s, nullptr, nullptr, nullptr, nullptr, 0, nullptr), "user_message is NULL");
  EXPECT_NULL_ARG(famq_session_send(nullptr, "x", nullptr, nullptr, nullptr, 0, nullptr), "session is NULL");
  char b[8];
  EXPECT_NULL_ARG(famq_session_send(s, "x", nullptr, nullptr, b, 0, nullptr), "out_capacity is 0");
  EXPECT_NULL_ARG(famq_session_send(s, "x", nullptr, nullptr, nullptr, 8, nullptr), "out_text is NULL");
  EXPECT_NULL_ARG(famq_session_generate(nullptr, nullptr, nullptr, nullptr, 0, nullptr), "session is NULL");
  EXPECT_NULL_ARG(famq_session_generate(s, nullptr, nullptr, nullptr, 0, nullptr), "nothing to answer");
  EXPECT_NULL_ARG(famq_session_reset(nullptr), "session is NULL");
  EXPECT_NULL_ARG(famq_session_set_params(s, nullptr), "params is NULL");
  EXPECT_NULL_ARG(famq_session_set_params(nullptr, &p), "session is NULL");
  EXPECT_NULL_ARG(famq_session_get_stats(s, nullptr), "stats is NULL");
  EXPECT_NULL_ARG(famq_session_get_stats(nullptr, nullptr), "session is NULL");
  EXPECT_NULL_ARG(famq_tokenize(nullptr, "x", 0, nullptr, 0, nullptr), "model is NULL");
  size_t n = 0;
  EXPECT_NULL_ARG(famq_tokenize(m, nullptr, 0, nullptr, 0, &n), "text is NULL");
  EXPECT_NULL_ARG(famq_tokenize(m, "x", 0, nullptr, 0, nullptr), "out_count is NULL");
  EXPECT_NULL_ARG(famq_token_count(m, "x", 0, nullptr), "out_count is NULL");
  EXPECT_NULL_ARG(famq_token_count(nullptr, "x", 0, &n), "model is NULL");
  EXPECT_NULL_ARG(famq_detokenize(m, nullptr, 1, b, sizeof b, nullptr), "tokens is NULL");
  EXPECT_NULL_ARG(famq_detokenize(m, nullptr, 0, nullptr, 0, nullptr), "out_text is NULL");
  famq_session_free(s);
  famq_session_free(nullptr);
  famq_session_default_params(nullptr);

  // A model without a chat template has no sessions.
  const std::string dir = Tmp("no-chat-session");
  fs::create_directories(dir);
  for (const char* f : {"config.json", "model.safetensors", "tokenizer.json", "generation_config.json"}) {
    fs::copy_file(kQwen3 + "/" + f, dir + "/" + f, fs::copy_options::overwrite_existing);
  }
  Write(dir + "/tokenizer_config.json", "{\"add_bos_token\": false}");
  famq_model* plain = nullptr;
  ASSERT_EQ(famq_model_open(dir.c_str(), OneThread(), &plain), FAMQ_OK) << LastError();
  EXPECT_NULL_ARG(famq_session_create(plain, nullptr, &s), "chat_template");
  famq_model_close(plain);
  famq_model_close(m);
}

// Issue 15 item 8: struct_size is checked, never trusted.
TEST_F(CapiTest, StructSizesOutOfRangeAreRefused) {
  famq_model* m = OpenFamily(64);
  ASSERT_NE(m, nullptr);
  char buf[64];
  // Too small for the struct's first version, or beyond FAMQ_MAX_STRUCT_SIZE (never read that far).
  auto bad_sizes = [](size_t size) {
    return std::vector<size_t>{0, size - 1, size_t{FAMQ_MAX_STRUCT_SIZE} + 1, ~size_t{0} / 2, ~size_t{0}};
  };
  for (const size_t bad : bad_sizes(sizeof(famq_generate_options))) {
    SCOPED_TRACE(bad);
    famq_generate_options g;
    famq_generate_options_init(&g);
    g.struct_size = bad;
    EXPECT_EQ(famq_generate(m, "x", &g, nullptr, nullptr, buf, sizeof buf, nullptr), FAMQ_INVALID_ARGUMENT);
    EXPECT_NE(LastError().find("struct_size"), std::string::npos) << LastError();
  }
  // famq_model_options gained kv_type: its first version ends before it.
  for (const size_t bad : bad_sizes(offsetof(famq_model_options, kv_type))) {
    SCOPED_TRACE(bad);
    famq_model_options mo;
    famq_model_options_init(&mo);
    mo.struct_size = bad;
    famq_model* m2 = nullptr;
    EXPECT_EQ(famq_model_open(kFamily.c_str(), &mo, &m2), FAMQ_INVALID_ARGUMENT);
    EXPECT_EQ(famq_qmodel_open("/nonexistent.famq", &mo, &m2), FAMQ_INVALID_ARGUMENT);
  }
  for (const size_t bad : bad_sizes(sizeof(famq_session_params))) {
    SCOPED_TRACE(bad);
    famq_session_params sp;
    famq_session_default_params(&sp);
    sp.struct_size = bad;
    famq_session* s = nullptr;
    EXPECT_EQ(famq_session_create(m, &sp, &s), FAMQ_INVALID_ARGUMENT);
    ASSERT_EQ(famq_session_create(m, nullptr, &s), FAMQ_OK);
    EXPECT_EQ(famq_session_set_params(s, &sp), FAMQ_INVALID_ARGUMENT);
    famq_session_stats ss;
    ss.struct_size = bad == sizeof(famq_session_params) - 1 ? sizeof(famq_session_stats) - 1 : bad;
    EXPECT_EQ(famq_session_get_stats(s, &ss), FAMQ_INVALID_ARGUMENT);
    famq_session_free(s);
  }
  for (const size_t bad : bad_sizes(sizeof(famq_finalize_options))) {
    SCOPED_TRACE(bad);
    famq_finalize_options fo;
    famq_finalize_options_init(&fo);
    fo.struct_size = bad;
    EXPECT_EQ(famq_finalize(kFamily.c_str(), nullptr, nullptr, CalibTextPath().c_str(), &fo, nullptr, nullptr,
                            Tmp("never.famq").c_str()),
              FAMQ_INVALID_ARGUMENT);
  }
  for (const size_t bad : bad_sizes(sizeof(famq_model_info))) {
    SCOPED_TRACE(bad);
    famq_model_info info;
    info.struct_size = bad;
    EXPECT_EQ(famq_model_get_info(m, &info, nullptr, 0, nullptr), FAMQ_INVALID_ARGUMENT);
  }
  for (const size_t bad : bad_sizes(sizeof(famq_bundle_info))) {
    SCOPED_TRACE(bad);
    famq_bundle_info bi;
    bi.struct_size = bad;
    EXPECT_EQ(famq_bundle_verify(kCorpusBundle.c_str(), nullptr, 1, &bi), FAMQ_INVALID_ARGUMENT);
    famq_bundle* b = nullptr;
    ASSERT_EQ(famq_bundle_open(kCorpusBundle.c_str(), nullptr, 1, &b), FAMQ_OK) << LastError();
    EXPECT_EQ(famq_bundle_get_info(b, &bi), FAMQ_INVALID_ARGUMENT);
    famq_bundle_close(b);
  }
  EXPECT_FALSE(fs::exists(Tmp("never.famq")));
  // The largest plausible newer struct with a zero tail is accepted.
  struct Biggest {
    famq_generate_options g;
    unsigned char tail[FAMQ_MAX_STRUCT_SIZE - sizeof(famq_generate_options)];
  } big;
  static_assert(sizeof big == FAMQ_MAX_STRUCT_SIZE);
  std::memset(&big, 0, sizeof big);
  famq_generate_options_init(&big.g);
  big.g.max_new_tokens = 1;
  big.g.struct_size = sizeof big;
  EXPECT_EQ(famq_generate(m, "x", &big.g, nullptr, nullptr, buf, sizeof buf, nullptr), FAMQ_OK) << LastError();
  // An output struct larger than the library's: its fields are written, the tail untouched.
  struct NewerStats {
    famq_session_stats base;
    uint64_t future;
  } ns;
  famq_session* s = nullptr;
  ASSERT_EQ(famq_session_create(m, nullptr, &s), FAMQ_OK) << LastError();
  ns.future = 0xABCD;
  ns.base.struct_size = sizeof ns;
  ASSERT_EQ(famq_session_get_stats(s, &ns.base), FAMQ_OK) << LastError();
  EXPECT_EQ(ns.base.max_seq_len, 64);
  EXPECT_EQ(ns.future, 0xABCDu);
  EXPECT_EQ(ns.base.struct_size, sizeof ns);
  famq_session_free(s);
  famq_model_close(m);
}

// --- finalize ------------------------------------------------------------------------

TEST_F(CapiTest, FinalizeFromTextOpensAndGenerates) {
  const std::string& q = QModel();
  ASSERT_EQ(qmodel_status_, FAMQ_OK) << qmodel_error_;
  ASSERT_TRUE(fs::exists(q));

  // Progress: every block, fractions non-decreasing up to 1.
  const Progress& p = qmodel_progress_;
  ASSERT_GE(p.fractions.size(), 4u);
  EXPECT_EQ(p.layers, 4);
  EXPECT_TRUE(p.layer_in_range);
  for (size_t i = 1; i < p.fractions.size(); ++i) EXPECT_GE(p.fractions[i], p.fractions[i - 1]) << i;
  EXPECT_GT(p.fractions.back(), p.fractions.front());
  EXPECT_GE(p.fractions.front(), 0.0f);
  EXPECT_NEAR(p.fractions.back(), 1.0f, 1e-5f);
  for (const std::string& s : p.stages) EXPECT_FALSE(s.empty());

  famq_model* m = nullptr;
  ASSERT_EQ(famq_qmodel_open(q.c_str(), OneThread(), &m), FAMQ_OK) << LastError();
  famq_model_info info;
  info.struct_size = sizeof info;
  char scheme[64];
  ASSERT_EQ(famq_model_get_info(m, &info, scheme, sizeof scheme, nullptr), FAMQ_OK) << LastError();
  EXPECT_EQ(info.quantized, 1);
  EXPECT_EQ(info.wbits, 4);
  EXPECT_EQ(info.abits, 0);
  EXPECT_EQ(info.group_size, 32);
  EXPECT_EQ(info.layers, 4);
  EXPECT_EQ(info.parameters, 1312768);
  EXPECT_STREQ(scheme, "W4 g32 rtn weight-only");
  famq_model_close(m);

  ExpectGreedyMatchesGenerator("", q, kPrompt);
}

TEST_F(CapiTest, FinalizeCancelledFromProgressWritesNothing) {
  const famq_finalize_options o = Rtn4();
  const std::string out = Tmp("cancelled/q.famq");
  fs::create_directories(Tmp("cancelled"));
  Progress p;
  p.cancel_at = 2;
  EXPECT_EQ(famq_finalize(kFamily.c_str(), nullptr, nullptr, CalibTextPath().c_str(), &o, OnProgress, &p,
                          out.c_str()),
            FAMQ_CANCELLED);
  EXPECT_NE(LastError().find("cancelled"), std::string::npos) << LastError();
  EXPECT_EQ(p.fractions.size(), 3u);
  EXPECT_FALSE(fs::exists(out));
  EXPECT_TRUE(fs::is_empty(Tmp("cancelled")));  // no temporary file left either
}

// famq_finalize_options gained head_bits: a caller built against the first
// version (struct_size ending before it) gets the default quantized head; a
// size that cuts the field is refused; 16 keeps the fp head; others are
// refused before the model is read.
TEST_F(CapiTest, FinalizeHeadBitsAndTheFirstOptionsVersion) {
  const std::string text = CalibTextPath();
  auto finalize = [&](const famq_finalize_options& o, const std::string& out) {
    return famq_finalize(kFamily.c_str(), nullptr, nullptr, text.c_str(), &o, nullptr, nullptr, out.c_str());
  };
  auto head = [&](const std::string& path) {
    auto q = famq::QModel::Open(path);
    EXPECT_TRUE(q.ok()) << q.status().ToString();
    return q.ok() ? q->HeadDescription() : std::string();
  };
  famq_finalize_options o = Rtn4();
  EXPECT_EQ(o.head_bits, 8);
  o.struct_size = offsetof(famq_finalize_options, head_bits);
  o.head_bits = 16;  // beyond the declared size: not read
  ASSERT_EQ(finalize(o, Tmp("v1.famq")), FAMQ_OK) << LastError();
  EXPECT_EQ(head(Tmp("v1.famq")), "W8 g32 symmetric (tied)");
  o.struct_size = offsetof(famq_finalize_options, head_bits) + 2;
  EXPECT_EQ(finalize(o, Tmp("cut.famq")), FAMQ_INVALID_ARGUMENT);
  EXPECT_FALSE(fs::exists(Tmp("cut.famq")));
  o = Rtn4();
  o.head_bits = 16;
  ASSERT_EQ(finalize(o, Tmp("fp.famq")), FAMQ_OK) << LastError();
  EXPECT_EQ(head(Tmp("fp.famq")), "fp BF16 (tied)");
  o.head_bits = 6;
  ASSERT_EQ(finalize(o, Tmp("six.famq")), FAMQ_OK) << LastError();
  EXPECT_EQ(head(Tmp("six.famq")), "W6 g32 symmetric (tied)");
  o.head_bits = 5;
  EXPECT_EQ(famq_finalize("/nonexistent/dir", nullptr, nullptr, text.c_str(), &o, nullptr, nullptr,
                          Tmp("five.famq").c_str()),
            FAMQ_INVALID_ARGUMENT);
  EXPECT_NE(LastError().find("head_bits 5"), std::string::npos) << LastError();
  // f16_scales, appended after head_bits: the second version's size is read
  // without it (fp32 scales), the full struct with it (fp16 scales).
  auto f16 = [&](const std::string& path) {
    auto q = famq::QModel::Open(path);
    EXPECT_TRUE(q.ok()) << q.status().ToString();
    return q.ok() && q->root().linears()->Get(0)->scales_f16() != nullptr;
  };
  o = Rtn4();
  EXPECT_EQ(o.f16_scales, 0);
  o.f16_scales = 1;
  o.struct_size = offsetof(famq_finalize_options, f16_scales);
  ASSERT_EQ(finalize(o, Tmp("v2.famq")), FAMQ_OK) << LastError();
  EXPECT_FALSE(f16(Tmp("v2.famq")));
  o.struct_size = sizeof o;
  ASSERT_EQ(finalize(o, Tmp("f16.famq")), FAMQ_OK) << LastError();
  EXPECT_TRUE(f16(Tmp("f16.famq")));
  EXPECT_LT(fs::file_size(Tmp("f16.famq")), fs::file_size(Tmp("v2.famq")));
}

TEST_F(CapiTest, FinalizeChecksOptionsFirst) {
  const std::string out = Tmp("options.famq");
  const std::string text = CalibTextPath();
  auto run = [&](const famq_finalize_options& o, const char* model_dir) {
    return famq_finalize(model_dir, nullptr, nullptr, text.c_str(), &o, nullptr, nullptr, out.c_str());
  };
  famq_finalize_options o = Rtn4();
  o.method = "int3";
  // Refused before the (missing) model directory is read.
  EXPECT_EQ(run(o, "/nonexistent/dir"), FAMQ_INVALID_ARGUMENT);
  EXPECT_NE(LastError().find("int3"), std::string::npos) << LastError();
  o = Rtn4();
  o.group_size = 48;
  EXPECT_EQ(run(o, "/nonexistent/dir"), FAMQ_INVALID_ARGUMENT);
  o = Rtn4();
  o.act_estimator = "median";
  EXPECT_EQ(run(o, "/nonexistent/dir"), FAMQ_INVALID_ARGUMENT);
  o = Rtn4();
  o.private_text_path = "/nonexistent/private.txt";
  o.private_weight = 1.5f;
  EXPECT_EQ(run(o, "/nonexistent/dir"), FAMQ_INVALID_ARGUMENT);
  EXPECT_NE(LastError().find("private_weight"), std::string::npos) << LastError();
  o = Rtn4();
  o.private_weight = 0.25f;
  EXPECT_EQ(run(o, "/nonexistent/dir"), FAMQ_INVALID_ARGUMENT);
  o = Rtn4();
  o.calib_seq_len = 1;
  EXPECT_EQ(run(o, "/nonexistent/dir"), FAMQ_INVALID_ARGUMENT);
  // Checked against the model's shapes once it is open.
  o = Rtn4();
  o.wbits = 5;
  EXPECT_EQ(run(o, kFamily.c_str()), FAMQ_INVALID_ARGUMENT);
  EXPECT_NE(LastError().find("wbits 5"), std::string::npos) << LastError();
  o = Rtn4();
  o.wbits = 3;
  o.method = "smoothquant";  // 3 bits are weight-only
  EXPECT_EQ(run(o, kFamily.c_str()), FAMQ_INVALID_ARGUMENT);
  EXPECT_NE(LastError().find("wbits 3 is weight-only"), std::string::npos) << LastError();
  o = Rtn4();
  o.abits = 8;  // W8A8 needs wbits 8 per channel
  EXPECT_EQ(run(o, kFamily.c_str()), FAMQ_INVALID_ARGUMENT);
  EXPECT_FALSE(fs::exists(out));
}

TEST_F(CapiTest, FinalizeMixesPrivateText) {
  famq_finalize_options o = Rtn4();
  const std::string plain = Tmp("rtn.famq"), mixed = Tmp("rtn-private.famq");
  const std::string text = CalibTextPath();
  ASSERT_EQ(famq_finalize(kFamily.c_str(), nullptr, nullptr, text.c_str(), &o, nullptr, nullptr, plain.c_str()),
            FAMQ_OK)
      << LastError();
  const std::string priv = PrivateTextPath();
  o.private_text_path = priv.c_str();
  o.private_weight = 0.4f;
  ASSERT_EQ(famq_finalize(kFamily.c_str(), nullptr, nullptr, text.c_str(), &o, nullptr, nullptr, mixed.c_str()),
            FAMQ_OK)
      << LastError();
  // The provenance records the private mass; the calibration set is larger.
  auto a = famq::QModel::Open(plain);
  auto b = famq::QModel::Open(mixed);
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_NE(b->root().provenance(), nullptr);
  EXPECT_FLOAT_EQ(a->root().provenance()->private_mix(), 0.0f);
  EXPECT_FLOAT_EQ(b->root().provenance()->private_mix(), 0.4f);
  EXPECT_GT(b->root().provenance()->samples(), a->root().provenance()->samples());
  famq_model* m = nullptr;
  ASSERT_EQ(famq_qmodel_open(mixed.c_str(), OneThread(), &m), FAMQ_OK) << LastError();
  const famq_generate_options g = Greedy(8);
  Seen seen;
  EXPECT_EQ(famq_generate(m, kPrompt, &g, OnToken, &seen, nullptr, 0, nullptr), FAMQ_OK) << LastError();
  EXPECT_FALSE(seen.tokens.empty());
  famq_model_close(m);
}

// --- bundles -------------------------------------------------------------------------

TEST_F(CapiTest, UnsignedBundleIsRefusedUnlessAllowed) {
  const std::string bundle = UnsignedBundle();
  const std::string key = Tmp("foreign.pem");
  Write(key, kForeignKeyPem);
  famq_bundle_info info;
  std::memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  EXPECT_EQ(famq_bundle_verify(bundle.c_str(), key.c_str(), 0, &info), FAMQ_INVALID_ARGUMENT);
  EXPECT_NE(LastError().find("unsigned"), std::string::npos) << LastError();
  EXPECT_EQ(info.sample_count, 0u);  // untouched on failure

  famq_bundle* b = nullptr;
  ASSERT_EQ(famq_bundle_open(bundle.c_str(), nullptr, 1, &b), FAMQ_OK) << LastError();
  ASSERT_EQ(famq_bundle_get_info(b, &info), FAMQ_OK) << LastError();
  famq_bundle_close(b);
  EXPECT_EQ(info.sample_count, 6u);
  EXPECT_EQ(info.total_tokens, 192u);
  EXPECT_EQ(info.is_signed, 0);
  EXPECT_EQ(info.signature_checked, 0);
  EXPECT_STREQ(info.key_id, "");
  EXPECT_EQ(std::strlen(info.payload_sha256), 64u);
  famq::BundleVerifyOptions vo;
  vo.allow_unsigned = true;
  auto cpp = famq::Bundle::Open(bundle, vo);
  ASSERT_TRUE(cpp.ok());
  EXPECT_EQ(info.payload_sha256, cpp->verification().payload_sha256);
  auto tok = famq::OpenRunnableModel(kFamily, "");
  ASSERT_TRUE(tok.ok());
  EXPECT_EQ(info.tokenizer_sha256, tok->tokenizer_sha256);

  // finalize: refused without allow_unsigned (nothing written), accepted with it.
  famq_finalize_options o = Rtn4();
  const std::string out = Tmp("from-unsigned.famq");
  EXPECT_EQ(famq_finalize(kFamily.c_str(), bundle.c_str(), key.c_str(), nullptr, &o, nullptr, nullptr, out.c_str()),
            FAMQ_INVALID_ARGUMENT);
  EXPECT_NE(LastError().find("unsigned"), std::string::npos) << LastError();
  EXPECT_FALSE(fs::exists(out));
  o.allow_unsigned = 1;
  Progress p;
  ASSERT_EQ(famq_finalize(kFamily.c_str(), bundle.c_str(), nullptr, nullptr, &o, OnProgress, &p, out.c_str()),
            FAMQ_OK)
      << LastError();
  EXPECT_FALSE(p.fractions.empty());
  famq_model* m = nullptr;
  ASSERT_EQ(famq_qmodel_open(out.c_str(), OneThread(), &m), FAMQ_OK) << LastError();
  famq_model_close(m);

  // Another family's model refuses the bundle (tokenizer hash), unless allowed.
  EXPECT_EQ(famq_finalize(kQwen3.c_str(), bundle.c_str(), nullptr, nullptr, &o, nullptr, nullptr,
                          Tmp("foreign.famq").c_str()),
            FAMQ_INVALID_ARGUMENT);
  EXPECT_NE(LastError().find("another family"), std::string::npos) << LastError();
}

TEST_F(CapiTest, GarbageAndTamperedBundlesAreInvalidFormat) {
  const std::string bundle = UnsignedBundle();
  const std::string bytes = Slurp(bundle);
  ASSERT_GT(bytes.size(), 64u);
  famq_bundle_info info;
  info.struct_size = sizeof info;
  famq_finalize_options o = Rtn4();
  o.allow_unsigned = 1;
  const std::string out = Tmp("tampered.famq");

  const std::string garbage = Tmp("garbage.famqb");
  Write(garbage, std::string(2048, '\x11'));
  EXPECT_EQ(famq_bundle_verify(garbage.c_str(), nullptr, 1, &info), FAMQ_INVALID_FORMAT);
  EXPECT_EQ(famq_finalize(kFamily.c_str(), garbage.c_str(), nullptr, nullptr, &o, nullptr, nullptr, out.c_str()),
            FAMQ_INVALID_FORMAT);

  const std::string truncated = Tmp("truncated.famqb");
  Write(truncated, bytes.substr(0, bytes.size() - 40));
  EXPECT_EQ(famq_bundle_verify(truncated.c_str(), nullptr, 1, &info), FAMQ_INVALID_FORMAT) << LastError();

  std::string renamed = bytes;  // the file identifier
  renamed[4] ^= 0x20;
  const std::string bad_id = Tmp("bad-id.famqb");
  Write(bad_id, renamed);
  EXPECT_EQ(famq_bundle_verify(bad_id.c_str(), nullptr, 1, &info), FAMQ_INVALID_FORMAT) << LastError();

  std::string appended = bytes + std::string(8, '\0');  // bytes outside the payload
  const std::string extra = Tmp("appended.famqb");
  Write(extra, appended);
  EXPECT_EQ(famq_bundle_verify(extra.c_str(), nullptr, 1, &info), FAMQ_INVALID_FORMAT) << LastError();
  EXPECT_EQ(famq_finalize(kFamily.c_str(), extra.c_str(), nullptr, nullptr, &o, nullptr, nullptr, out.c_str()),
            FAMQ_INVALID_FORMAT);
  EXPECT_FALSE(fs::exists(out));
}

TEST_F(CapiTest, SignedBundles) {
  const std::string foreign = Tmp("foreign.pem");
  Write(foreign, kForeignKeyPem);
  famq_bundle_info info;
  info.struct_size = sizeof info;
  // A bundle that claims a signature by another key (its DER is never checked:
  // the key ids differ first).
  {
    famq::BundleVerifyOptions vo;
    vo.allow_unsigned = true;
    auto src = famq::Bundle::Open(UnsignedBundle(), vo);
    ASSERT_TRUE(src.ok()) << src.status().ToString();
    const std::vector<uint8_t> der(70, 0x30);
    const std::vector<uint8_t> c = famq::BuildBundleContainer(src->payload_bytes(), std::string(64, 'b'), der);
    const std::string other = Tmp("signed-by-other.famqb");
    Write(other, std::string_view(reinterpret_cast<const char*>(c.data()), c.size()));
    EXPECT_EQ(famq_bundle_verify(other.c_str(), foreign.c_str(), 0, &info), FAMQ_INVALID_FORMAT);
    EXPECT_NE(LastError().find("not by the trusted key"), std::string::npos) << LastError();
    // A signed bundle with no key to check it is refused even with allow_unsigned.
    EXPECT_EQ(famq_bundle_verify(other.c_str(), nullptr, 1, &info), FAMQ_INVALID_ARGUMENT);
    EXPECT_NE(LastError().find("public key"), std::string::npos) << LastError();
  }

#if FAMQ_CAPI_TEST_SIGNING
  // Sign the payload with a fresh key (the host's signing code).
  auto keys = famq::GenerateKeyPair();
  ASSERT_TRUE(keys.ok()) << keys.status().ToString();
  auto priv = famq::PrivateKey::Parse(keys->private_pem, "test key");
  ASSERT_TRUE(priv.ok());
  famq::BundleVerifyOptions vo;
  vo.allow_unsigned = true;
  auto src = famq::Bundle::Open(UnsignedBundle(), vo);
  ASSERT_TRUE(src.ok());
  const std::span<const uint8_t> payload = src->payload_bytes();
  auto sig = priv->Sign(famq::Sha256(payload.data(), payload.size()));
  ASSERT_TRUE(sig.ok());
  const std::vector<uint8_t> container = famq::BuildBundleContainer(payload, priv->key_id(), *sig);
  const std::string signed_path = Tmp("signed.famqb"), pub = Tmp("trust.pem");
  Write(signed_path, std::string_view(reinterpret_cast<const char*>(container.data()), container.size()));
  Write(pub, keys->public_pem);

  ASSERT_EQ(famq_bundle_verify(signed_path.c_str(), pub.c_str(), 0, &info), FAMQ_OK) << LastError();
  EXPECT_EQ(info.is_signed, 1);
  EXPECT_EQ(info.signature_checked, 1);
  EXPECT_EQ(info.key_id, keys->key_id);
  EXPECT_EQ(info.sample_count, 6u);
  EXPECT_EQ(famq_bundle_verify(signed_path.c_str(), foreign.c_str(), 0, &info), FAMQ_INVALID_FORMAT);

  // One flipped payload byte (a token id: structurally still valid) breaks the signature.
  std::string tampered = Slurp(signed_path);
  const std::string payload_str(reinterpret_cast<const char*>(payload.data()), payload.size());
  const size_t at = tampered.find(payload_str);
  ASSERT_NE(at, std::string::npos);
  tampered[at + payload.size() / 2] ^= 0x01;
  const std::string tampered_path = Tmp("tampered-signed.famqb");
  Write(tampered_path, tampered);
  EXPECT_EQ(famq_bundle_verify(tampered_path.c_str(), pub.c_str(), 0, &info), FAMQ_INVALID_FORMAT);
  EXPECT_NE(LastError().find("signature does not verify"), std::string::npos) << LastError();

  famq_finalize_options o = Rtn4();
  const std::string out = Tmp("from-signed.famq");
  EXPECT_EQ(famq_finalize(kFamily.c_str(), tampered_path.c_str(), pub.c_str(), nullptr, &o, nullptr, nullptr,
                          out.c_str()),
            FAMQ_INVALID_FORMAT);
  EXPECT_FALSE(fs::exists(out));
  ASSERT_EQ(famq_finalize(kFamily.c_str(), signed_path.c_str(), pub.c_str(), nullptr, &o, nullptr, nullptr,
                          out.c_str()),
            FAMQ_OK)
      << LastError();
  famq_model* m = nullptr;
  ASSERT_EQ(famq_qmodel_open(out.c_str(), OneThread(), &m), FAMQ_OK) << LastError();
  famq_model_close(m);
#endif
}

// --- kernels ---------------------------------------------------------------------------

TEST_F(CapiTest, ForceIsaThenGenerate) {
  const std::string& q = QModel();
  ASSERT_EQ(qmodel_status_, FAMQ_OK) << qmodel_error_;
  const std::vector<int32_t> automatic = ReferenceTokens("", q, kPrompt, 16);

  EXPECT_EQ(famq_force_isa("sse9"), FAMQ_INVALID_ARGUMENT);
  EXPECT_NE(LastError().find("sse9"), std::string::npos) << LastError();
#if defined(__x86_64__)
  EXPECT_EQ(famq_force_isa("neon"), FAMQ_UNSUPPORTED);
#elif defined(__aarch64__)
  EXPECT_EQ(famq_force_isa("avx2"), FAMQ_UNSUPPORTED);
#endif
  ASSERT_EQ(famq_force_isa("ref"), FAMQ_OK) << LastError();
  const char* name = nullptr;
  ASSERT_EQ(famq_active_isa(&name), FAMQ_OK);
  EXPECT_STREQ(name, "ref");

  famq_model* m = nullptr;
  ASSERT_EQ(famq_qmodel_open(q.c_str(), OneThread(), &m), FAMQ_OK) << LastError();
  const famq_generate_options g = Greedy(16);
  Seen seen;
  ASSERT_EQ(famq_generate(m, kPrompt, &g, OnToken, &seen, nullptr, 0, nullptr), FAMQ_OK) << LastError();
  famq_model_close(m);
  // The scalar reference kernels agree with the automatic choice on greedy tokens.
  EXPECT_EQ(seen.tokens, automatic);

  ASSERT_EQ(famq_force_isa(nullptr), FAMQ_OK);
  ASSERT_EQ(famq_force_isa(""), FAMQ_OK);
}

}  // namespace
