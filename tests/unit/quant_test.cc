// Quantization methods and calibration statistics (runtime/quant).
#include <gtest/gtest.h>
#include <pthreadpool.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "core/file.h"
#include "model/dtype.h"
#include "quant/act_range.h"
#include "quant/awq.h"
#include "quant/dense_kernels.h"
#include "quant/gptq.h"
#include "quant/input_stats.h"
#include "quant/linalg_f64.h"
#include "quant/matmul_f32.h"
#include "quant/quant_spec.h"
#include "quant/rtn.h"
#include "quant/smoothquant.h"

namespace famq::quant {
namespace {

// GPTQ must reproduce the reference's integer codes exactly, except where a
// code lies on a rounding tie (w / scale within 1e-9 of k + 0.5: symmetric
// groups put their negative extreme there) and the two float64
// implementations round it apart; GPTQ's error feedback then carries the
// difference through the rest of that row. Overall, tie-split rows included,
// at least this fraction is identical.
constexpr double kMinGptqCodeAgreement = 0.995;
// Scales are fp32 roundings of the same double computation.
constexpr double kMaxScaleRelError = 1e-5;
// The float-tiled Hessian against a double sum, relative to max |H|.
constexpr double kMaxHessianRelError = 1e-5;

// A pthreadpool owned by a test.
class ThreadPool {
 public:
  explicit ThreadPool(int threads) : pool_(pthreadpool_create(static_cast<size_t>(threads))) {}
  ~ThreadPool() { pthreadpool_destroy(pool_); }
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;
  pthreadpool_t get() const { return pool_; }

 private:
  pthreadpool_t pool_;
};

std::vector<float> RandomNormal(size_t n, uint32_t seed, float stddev = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, stddev);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

std::vector<float> Dequantize(const QMatrix& q) {
  std::vector<float> out(static_cast<size_t>(q.rows) * static_cast<size_t>(q.cols));
  for (int r = 0; r < q.rows; ++r)
    for (int c = 0; c < q.cols; ++c) out[static_cast<size_t>(r) * q.cols + c] = q.Dequant(r, c);
  return out;
}

// sum_r (a_r - b_r)^T H (a_r - b_r): the weighted output error on the inputs H summarizes.
double HessianError(const std::vector<float>& a, const float* b, int rows, int cols, const std::vector<double>& h) {
  double sum = 0;
  const size_t K = static_cast<size_t>(cols);
  std::vector<double> d(K);
  for (int r = 0; r < rows; ++r) {
    for (size_t j = 0; j < K; ++j) d[j] = double(a[r * K + j]) - double(b[r * K + j]);
    for (size_t i = 0; i < K; ++i)
      for (size_t j = 0; j < K; ++j) sum += d[i] * h[i * K + j] * d[j];
  }
  return sum;
}

// Weighted output error sum_t w_t |(a - b) x_t|^2, naive double.
double OutputError(const std::vector<float>& a, const float* b, int rows, int cols, const std::vector<float>& x,
                   const std::vector<float>& weights) {
  double sum = 0;
  const size_t K = static_cast<size_t>(cols);
  for (size_t t = 0; t < weights.size(); ++t) {
    if (weights[t] == 0) continue;
    for (int r = 0; r < rows; ++r) {
      double d = 0;
      for (size_t j = 0; j < K; ++j) d += (double(a[r * K + j]) - double(b[r * K + j])) * x[t * K + j];
      sum += weights[t] * d * d;
    }
  }
  return sum;
}

// ---------------------------------------------------------------- QuantSpec

TEST(QuantSpecTest, RejectsWhatTheKernelsCannotRun) {
  EXPECT_TRUE(ValidateQuantSpec({4, 32, false}, 8, 192, "down_proj").ok());
  EXPECT_TRUE(ValidateQuantSpec({8, 0, true}, 8, 192, "down_proj").ok());
  EXPECT_TRUE(ValidateQuantSpec({3, 64, false}, 8, 192, "down_proj").ok());
  EXPECT_TRUE(ValidateQuantSpec({2, 0, true}, 8, 192, "down_proj").ok());
  Status s = ValidateQuantSpec({5, 32, false}, 8, 192, "down_proj");
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "down_proj: wbits 5 is not supported (2, 3, 4, 6 or 8)");
  EXPECT_TRUE(ValidateQuantSpec({6, 32, true}, 8, 192, "head").ok());  // finalize's 6-bit head
  for (int bits : {0, 1, 5, 7, 16}) EXPECT_FALSE(ValidateQuantSpec({bits, 32, false}, 8, 192, "x").ok()) << bits;
  s = ValidateQuantSpec({4, 128, false}, 8, 192, "down_proj");
  EXPECT_EQ(s.message(), "group 128 does not divide down_proj's 192 input features");
  EXPECT_FALSE(ValidateQuantSpec({4, -32, false}, 8, 192, "x").ok());
  EXPECT_FALSE(ValidateQuantSpec({4, 48, false}, 8, 96, "x").ok());  // divides, not a multiple of 32
  s = ValidateQuantSpec({4, 0, false}, 8, 200, "o_proj");
  EXPECT_NE(s.message().find("o_proj's 200 input features are not a multiple of 32"), std::string::npos);
  EXPECT_FALSE(ValidateQuantSpec({4, 32, false}, 0, 64, "x").ok());
}

// ---------------------------------------------------------------- RTN

TEST(RtnTest, AsymmetricFourBitCodesByHand) {
  // Group 0: xmin -1, xmax 2.75 -> scale 3.75 / 15 = 0.25, zero round(1 / 0.25) = 4.
  // Group 1: all >= 0, max 3.75 -> xmin 0 -> scale 0.25, zero 0.
  std::vector<float> w(64, 0.0f);
  const float g0[] = {-1.0f, 2.75f, 0.125f, 0.375f, 1.1f, -0.6f};
  const int g0_codes_u[] = {0, 15, 4, 6, 8, 2};  // 0.5 and 1.5 round half to even; -2.4 -> -2
  std::copy(std::begin(g0), std::end(g0), w.begin());
  w[32] = 3.75f;
  w[33] = 1.0f;
  auto q = QuantizeRtn(w.data(), 1, 64, {4, 32, false});
  ASSERT_TRUE(q.ok()) << q.status().ToString();
  EXPECT_EQ(q->group_size, 32);
  EXPECT_FLOAT_EQ(q->scales[0], 0.25f);
  EXPECT_EQ(q->zeros[0], 4 - 8);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(q->codes[i], g0_codes_u[i] - 8) << i;
  EXPECT_EQ(q->codes[10], 4 - 8);  // zeros stay exact
  EXPECT_FLOAT_EQ(q->Dequant(0, 10), 0.0f);
  EXPECT_FLOAT_EQ(q->scales[1], 0.25f);
  EXPECT_EQ(q->zeros[1], 0 - 8);
  EXPECT_EQ(q->codes[32], 15 - 8);
  EXPECT_EQ(q->codes[33], 4 - 8);
  EXPECT_FLOAT_EQ(q->Dequant(0, 32), 3.75f);
}

TEST(RtnTest, SymmetricFourBitCodesByHand) {
  // amax 3.75 -> scale 7.5 / 15 = 0.5, zero 8 (signed 0); +amax saturates at code 7.
  std::vector<float> w(32, 0.0f);
  const float v[] = {3.75f, -3.75f, 1.25f, 0.3f, -1.0f, 0.75f};
  const int codes_s[] = {7, -8, 2, 1, -2, 2};  // 7.5 -> 8 (even) -> clamp; 2.5 -> 2; 1.5 -> 2
  std::copy(std::begin(v), std::end(v), w.begin());
  auto q = QuantizeRtn(w.data(), 1, 32, {4, 0, true});
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->group_size, 32);
  EXPECT_FLOAT_EQ(q->scales[0], 0.5f);
  EXPECT_EQ(q->zeros[0], 0);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(q->codes[i], codes_s[i]) << i;

  // The reference quirk kept for parity: no negative weight -> xmin stays 0,
  // scale = xmax / 15 around zero 8, so the top half saturates.
  std::vector<float> pos(32, 0.0f);
  pos[0] = 1.5f;
  pos[1] = 0.4f;
  q = QuantizeRtn(pos.data(), 1, 32, {4, 32, true});
  ASSERT_TRUE(q.ok());
  EXPECT_FLOAT_EQ(q->scales[0], 0.1f);
  EXPECT_EQ(q->codes[0], 7);
  EXPECT_EQ(q->codes[1], 4);
}

TEST(RtnTest, EightBitCodes) {
  // Asymmetric: xmin -2, xmax 127/64 -> scale 1/64, zero 128 (signed 0).
  std::vector<float> w(32, 0.0f);
  const float v[] = {-2.0f, 127.0f / 64, 0.5f, 1.0f / 128, 3.0f / 128, -0.3f};
  std::copy(std::begin(v), std::end(v), w.begin());
  auto q = QuantizeRtn(w.data(), 1, 32, {8, 32, false});
  ASSERT_TRUE(q.ok());
  EXPECT_FLOAT_EQ(q->scales[0], 1.0f / 64);
  EXPECT_EQ(q->zeros[0], 0);
  const int codes_s[] = {-128, 127, 32, 0, 2, -19};  // -19.2 -> -19
  for (int i = 0; i < 6; ++i) EXPECT_EQ(q->codes[i], codes_s[i]) << i;

  // Symmetric per channel (the W8A8 weights): scale 2 amax / 255, zero 0.
  auto sym = QuantizeW8PerChannel(w.data(), 1, 32);
  ASSERT_TRUE(sym.ok());
  const double scale = 4.0 / 255;
  EXPECT_FLOAT_EQ(sym->scales[0], static_cast<float>(scale));
  EXPECT_EQ(sym->zeros[0], 0);
  for (int i = 0; i < 32; ++i) {
    const int want = std::clamp(static_cast<int>(std::nearbyint(w[i] / scale)), -128, 127);
    EXPECT_EQ(sym->codes[i], want) << i;
  }
}

TEST(RtnTest, AllZeroGroupHasAFiniteScale) {
  std::vector<float> w(64, 0.0f);
  w[40] = 0.5f;  // the second group is not all zero
  for (bool sym : {false, true}) {
    auto q = QuantizeRtn(w.data(), 1, 64, {4, 32, sym});
    ASSERT_TRUE(q.ok());
    // xmin == xmax == 0 -> [-1, 1]: scale 2/15, zero round(7.5) = 8 (signed 0).
    EXPECT_FLOAT_EQ(q->scales[0], 2.0f / 15);
    EXPECT_EQ(q->zeros[0], 0);
    for (int c = 0; c < 32; ++c) EXPECT_EQ(q->Dequant(0, c), 0.0f);
    EXPECT_GT(q->scales[1], 0.0f);
  }
}

TEST(RtnTest, ClipClampsEachGroupFirst) {
  std::vector<float> w(64, 0.0f);
  w[0] = -4.0f;
  w[1] = 3.0f;
  w[2] = 0.6f;
  w[32] = 5.0f;
  w[33] = -1.0f;
  // Group 0 clipped to 1.875: range [-1.875, 1.875] -> scale 0.25, zero round(7.5) = 8.
  // Group 1 clip 10 (no effect): xmin -1, xmax 5 -> scale 0.4.
  const float clip[] = {1.875f, 10.0f};
  auto q = QuantizeRtn(w.data(), 1, 64, {4, 32, false}, clip);
  ASSERT_TRUE(q.ok());
  EXPECT_FLOAT_EQ(q->scales[0], 0.25f);
  EXPECT_EQ(q->zeros[0], 0);
  EXPECT_EQ(q->codes[0], -8);  // -1.875 / 0.25 = -7.5 -> -8
  EXPECT_EQ(q->codes[1], 7);   //  7.5 -> 8 -> clamped to 15 (signed 7)
  EXPECT_EQ(q->codes[2], 2);   //  2.4 -> 2
  EXPECT_FLOAT_EQ(q->scales[1], 0.4f);
  auto unclipped = QuantizeRtn(w.data(), 1, 64, {4, 32, false});
  ASSERT_TRUE(unclipped.ok());
  EXPECT_FLOAT_EQ(unclipped->scales[0], 7.0f / 15);

  const float bad_clip[] = {-1.0f, 1.0f};
  EXPECT_EQ(QuantizeRtn(w.data(), 1, 64, {4, 32, false}, bad_clip).status().code(), StatusCode::kInvalidArgument);
  w[5] = std::nanf("");
  auto nan = QuantizeRtn(w.data(), 1, 64, {4, 32, false}, nullptr, "layers.0.mlp.up_proj");
  ASSERT_FALSE(nan.ok());
  EXPECT_NE(nan.status().message().find("layers.0.mlp.up_proj[5]"), std::string::npos);
}

TEST(RtnTest, RandomRowsStayWithinHalfAStep) {
  const int rows = 7, cols = 96;
  const std::vector<float> w = RandomNormal(rows * cols, 3);
  for (int bits : {2, 3, 4, 8}) {
    for (bool sym : {false, true}) {
      SCOPED_TRACE(testing::Message() << "bits " << bits << " symmetric " << sym);
      auto q = QuantizeRtn(w.data(), rows, cols, {bits, 32, sym});
      ASSERT_TRUE(q.ok());
      std::vector<float> fake(w.size());
      FakeQuantizeRtn(w.data(), rows, cols, {bits, 32, sym}, nullptr, fake.data());
      for (int r = 0; r < rows; ++r) {
        for (int c = 0; c < cols; ++c) {
          const size_t i = static_cast<size_t>(r) * cols + c;
          const float scale = q->scales[static_cast<size_t>(r) * 3 + c / 32];
          ASSERT_GE(q->codes[i], q->CodeMin());
          ASSERT_LE(q->codes[i], q->CodeMax());
          EXPECT_EQ(fake[i], q->Dequant(r, c));
          // Symmetric saturates +amax at the top code (1, 3, 7, 127): one step at most.
          EXPECT_LE(std::fabs(q->Dequant(r, c) - w[i]), (sym ? 1.0f : 0.5f) * scale * 1.0001f);
        }
      }
    }
  }
}

// ---------------------------------------------------------------- GPTQ

struct GptqGolden {
  nlohmann::json manifest;
  std::string blob;
  int rows = 0, cols = 0, dead = 0;

  template <typename T>
  std::vector<T> Array(const std::string& name) const {
    const nlohmann::json& a = manifest["arrays"][name];
    size_t n = 1;
    for (const auto& d : a["shape"]) n *= d.get<size_t>();
    const size_t offset = a["offset"].get<size_t>();
    EXPECT_EQ(a["dtype"].get<std::string>(), sizeof(T) == 4 ? "f32" : "u8") << name;
    std::vector<T> out(n);
    if (offset + n * sizeof(T) <= blob.size()) std::memcpy(out.data(), blob.data() + offset, n * sizeof(T));
    else ADD_FAILURE() << name << " lies past the end of gptq_golden.bin";
    return out;
  }
};

GptqGolden LoadGolden() {
  GptqGolden g;
  const std::string dir = std::string(FAMQ_SOURCE_DIR) + "/tests/data/quant/";
  auto text = ReadFile(dir + "gptq_golden.json");
  auto blob = ReadFile(dir + "gptq_golden.bin");
  EXPECT_TRUE(text.ok() && blob.ok()) << "run tests/quant/make_gptq_reference.py";
  if (!text.ok() || !blob.ok()) return g;
  g.manifest = nlohmann::json::parse(*text);
  g.blob = std::move(*blob);
  g.rows = g.manifest["rows"].get<int>();
  g.cols = g.manifest["cols"].get<int>();
  g.dead = g.manifest["dead_column"].get<int>();
  return g;
}

TEST(GptqTest, MatchesTheReferenceFasterquant) {
  const GptqGolden golden = LoadGolden();
  ASSERT_GT(golden.rows, 0);
  const int rows = golden.rows, cols = golden.cols;
  const std::vector<float> w = golden.Array<float>("w");
  const std::vector<float> h32 = golden.Array<float>("h");
  const std::vector<double> h(h32.begin(), h32.end());
  ASSERT_EQ(golden.manifest["configs"].size(), 9u);
  for (const auto& cfg : golden.manifest["configs"]) {
    const std::string name = cfg["name"].get<std::string>();
    SCOPED_TRACE(name);
    GptqOptions options;
    options.spec = {cfg["bits"].get<int>(), cfg["group_size"].get<int>(), cfg["symmetric"].get<bool>()};
    options.act_order = cfg["act_order"].get<bool>();
    options.block_size = cfg["block_size"].get<int>();
    options.damp_percent = cfg["damp_percent"].get<double>();
    options.name = name;
    GptqInfo info;
    auto q = QuantizeGptq(w.data(), rows, cols, h, options, &info);
    ASSERT_TRUE(q.ok()) << q.status().ToString();
    EXPECT_EQ(info.dead_columns, 1);

    const std::vector<uint8_t> codes = golden.Array<uint8_t>(name + ".codes");
    const std::vector<float> scales = golden.Array<float>(name + ".scales");
    const std::vector<uint8_t> zeros = golden.Array<uint8_t>(name + ".zeros");
    const std::vector<uint8_t> tie = golden.Array<uint8_t>(name + ".tie");
    const std::vector<float> order = golden.Array<float>(name + ".order");
    const int offset = 1 << (options.spec.bits - 1);
    ASSERT_EQ(q->codes.size(), codes.size());
    ASSERT_EQ(q->scales.size(), scales.size());
    ASSERT_EQ(order.size(), static_cast<size_t>(cols));
    // Walk each row in quantization order: codes must be identical up to the
    // first difference, and that difference must sit on a reference rounding
    // tie (after it the error feedback legitimately differs).
    const int groups = q->groups_per_row();
    size_t same = 0, downstream = 0, tie_rows = 0, scales_checked = 0;
    for (int r = 0; r < rows; ++r) {
      int diverged_at = cols;  // position in quantization order
      for (int pos = 0; pos < cols; ++pos) {
        ASSERT_TRUE(order[pos] >= 0 && order[pos] < cols) << "bad quantization order in the golden";
        const size_t i = static_cast<size_t>(r) * cols + static_cast<size_t>(order[pos]);
        if (q->codes[i] + offset == codes[i]) continue;
        if (diverged_at == cols) {
          EXPECT_TRUE(tie[i]) << "row " << r << " column " << order[pos] << ": code " << q->codes[i] + offset
                              << ", reference " << int(codes[i]) << ", and the reference was not at a rounding tie";
          diverged_at = pos;
        }
      }
      tie_rows += diverged_at < cols;
      downstream += static_cast<size_t>(cols - diverged_at);
      for (int c = 0; c < cols; ++c) {
        const size_t i = static_cast<size_t>(r) * cols + c;
        same += q->codes[i] + offset == codes[i];
      }
      // Group parameters fitted after the divergence (refit groups, fitted in
      // column order) may differ too; every other one must match.
      const bool refit = !options.act_order && q->group_size < cols;
      for (int g = 0; g < groups; ++g) {
        if (refit && g * q->group_size > diverged_at) continue;
        const size_t i = static_cast<size_t>(r) * groups + g;
        EXPECT_NEAR(q->scales[i], scales[i], kMaxScaleRelError * scales[i]) << "row " << r << " group " << g;
        EXPECT_EQ(q->zeros[i] + offset, zeros[i]) << "row " << r << " group " << g;
        ++scales_checked;
      }
    }
    // Every code before a tie is identical (checked above); ties stay rare
    // and what follows them stays close.
    const double agreement = double(same) / double(codes.size());
    EXPECT_GE(agreement, kMinGptqCodeAgreement);
    EXPECT_LE(tie_rows, 2u);
    const double ref_loss = cfg["loss"].get<double>();
    EXPECT_NEAR(info.loss, ref_loss, (tie_rows == 0 ? 1e-9 : 1e-3) * ref_loss);
    std::printf("[ gptq     ] %-24s codes %6.2f%% identical (%zu/%zu; %zu row(s) split at a rounding tie, "
                "%zu codes after it), scales %zu/%zu checked, loss %.9g (reference %.9g)\n",
                name.c_str(), 100 * agreement, same, codes.size(), tie_rows, downstream, scales_checked, scales.size(),
                info.loss, ref_loss);
    if (tie_rows == 0) {
      EXPECT_EQ(same, codes.size());
    }

    // On threads (finalize passes the engine's pool): the same codes, scales and zeros, bit for bit.
    {
      ThreadPool pool(3);
      options.pool = pool.get();
      GptqInfo threaded_info;
      auto threaded = QuantizeGptq(w.data(), rows, cols, h, options, &threaded_info);
      ASSERT_TRUE(threaded.ok()) << threaded.status().ToString();
      EXPECT_EQ(threaded->codes, q->codes);
      EXPECT_EQ(threaded->scales, q->scales);
      EXPECT_EQ(threaded->zeros, q->zeros);
      EXPECT_NEAR(threaded_info.loss, info.loss, 1e-12 * info.loss);  // summed by row instead of by column
      options.pool = nullptr;
    }

    // The dead column is quantized as zero.
    for (int r = 0; r < rows; ++r) EXPECT_EQ(q->Dequant(r, golden.dead), 0.0f);
    // GPTQ beats RTN on the calibration inputs that H summarizes.
    auto rtn = QuantizeRtn(w.data(), rows, cols, options.spec);
    ASSERT_TRUE(rtn.ok());
    const double gptq_err = HessianError(Dequantize(*q), w.data(), rows, cols, h);
    const double rtn_err = HessianError(Dequantize(*rtn), w.data(), rows, cols, h);
    EXPECT_LT(gptq_err, rtn_err);
    std::printf("[ gptq     ] %-24s output error %.4g vs RTN %.4g\n", name.c_str(), gptq_err, rtn_err);
  }
}

TEST(GptqTest, HessianScaleDoesNotChangeTheCodes) {
  const int rows = 16, cols = 64;
  const std::vector<float> w = RandomNormal(rows * cols, 5);
  const std::vector<float> x = RandomNormal(200 * cols, 6);
  const std::vector<float> weights(200, 1.0f / 200);
  std::vector<double> h(cols * cols, 0.0);
  ASSERT_TRUE(AccumulateHessian(x.data(), weights.data(), 200, cols, h.data()).ok());
  std::vector<double> h_scaled = h;
  for (double& v : h_scaled) v *= 1024.0;  // a power of two: exact
  GptqOptions options;
  options.spec = {4, 32, false};
  options.block_size = 16;
  auto a = QuantizeGptq(w.data(), rows, cols, h, options);
  auto b = QuantizeGptq(w.data(), rows, cols, h_scaled, options);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->codes, b->codes);
  EXPECT_EQ(a->scales, b->scales);
}

TEST(GptqTest, ReportsANonPositiveDefiniteHessianByLayer) {
  const int rows = 2, cols = 32;
  const std::vector<float> w = RandomNormal(rows * cols, 7);
  std::vector<double> h(cols * cols, 0.0);
  for (int i = 0; i < cols; ++i) h[i * cols + i] = -1.0;  // negative: not dead, never positive definite
  GptqOptions options;
  options.spec = {4, 32, false};
  options.name = "layers.2.self_attn.o_proj";
  auto q = QuantizeGptq(w.data(), rows, cols, h, options);
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(q.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(q.status().message().find("layers.2.self_attn.o_proj"), std::string::npos);
  EXPECT_NE(q.status().message().find("not positive definite"), std::string::npos);

  // A rank-one Hessian without damping fails too; 1% damping rescues it.
  std::vector<double> rank1(cols * cols, 1.0);
  options.damp_percent = 0;
  EXPECT_FALSE(QuantizeGptq(w.data(), rows, cols, rank1, options).ok());
  options.damp_percent = 0.01;
  EXPECT_TRUE(QuantizeGptq(w.data(), rows, cols, rank1, options).ok());
  EXPECT_FALSE(QuantizeGptq(w.data(), rows, cols, std::vector<double>(10), options).ok());
}

TEST(GptqTest, LazyBlockSizeDoesNotChangePerChannelResults) {
  // Per channel, the lazy batching is exact algebra: any block size gives the
  // same codes (odd row counts exercise the kernels' edge tiles).
  const int rows = 7, cols = 96;
  const std::vector<float> w = RandomNormal(rows * cols, 8);
  std::vector<float> x = RandomNormal(300 * cols, 9);
  for (size_t t = 0; t < 300; ++t)
    for (int j = 1; j < cols; ++j) x[t * cols + j] += 0.7f * x[t * cols + j - 1];  // correlated channels
  const std::vector<float> weights(300, 1.0f);
  std::vector<double> h(cols * cols, 0.0);
  ASSERT_TRUE(AccumulateHessian(x.data(), weights.data(), 300, cols, h.data()).ok());
  GptqOptions options;
  options.spec = {4, 0, false};
  std::vector<int8_t> first;
  for (int block : {1, 5, 32, 128}) {
    for (bool act_order : {false, true}) {
      options.block_size = block;
      options.act_order = act_order;
      auto q = QuantizeGptq(w.data(), rows, cols, h, options);
      ASSERT_TRUE(q.ok());
      if (!act_order && first.empty()) first = q->codes;
      if (!act_order) {
        EXPECT_EQ(q->codes, first) << "block " << block;
      }
      auto rtn = QuantizeRtn(w.data(), rows, cols, options.spec);
      ASSERT_TRUE(rtn.ok());
      EXPECT_LT(HessianError(Dequantize(*q), w.data(), rows, cols, h),
                HessianError(Dequantize(*rtn), w.data(), rows, cols, h));
    }
  }
}

TEST(LinalgTest, CholeskyAndTriangularInverseOnOddSizes) {
  for (size_t n : {size_t{1}, size_t{7}, size_t{64}, size_t{100}, size_t{131}}) {
    SCOPED_TRACE(n);
    const std::vector<float> g = RandomNormal(n * (n + 5), static_cast<uint32_t>(n));
    std::vector<double> a(n * n, 0.0);  // g g^T + I: symmetric positive definite
    for (size_t i = 0; i < n; ++i) {
      for (size_t j = 0; j < n; ++j) {
        double sum = i == j ? 1.0 : 0.0;
        for (size_t p = 0; p < n + 5; ++p) sum += double(g[i * (n + 5) + p]) * g[j * (n + 5) + p];
        a[i * n + j] = sum;
      }
    }
    std::vector<double> l = a;
    size_t bad = 0;
    double pivot = 0;
    ASSERT_TRUE(CholeskyLowerInPlace(l.data(), n, &bad, &pivot));
    double max_a = 0, max_err = 0;
    for (size_t i = 0; i < n; ++i) {
      for (size_t j = 0; j < n; ++j) {
        if (j > i) {
          EXPECT_EQ(l[i * n + j], 0.0);
        }
        double sum = 0;
        for (size_t p = 0; p < n; ++p) sum += l[i * n + p] * l[j * n + p];
        max_a = std::max(max_a, std::fabs(a[i * n + j]));
        max_err = std::max(max_err, std::fabs(sum - a[i * n + j]));
      }
    }
    EXPECT_LE(max_err, 1e-12 * max_a);
    std::vector<double> inv = l;
    InvertLowerInPlace(inv.data(), n);
    double max_id_err = 0;
    for (size_t i = 0; i < n; ++i) {
      for (size_t j = 0; j < n; ++j) {
        double sum = 0;
        for (size_t p = 0; p < n; ++p) sum += inv[i * n + p] * l[p * n + j];
        max_id_err = std::max(max_id_err, std::fabs(sum - (i == j ? 1.0 : 0.0)));
      }
    }
    EXPECT_LE(max_id_err, 1e-10);
  }
  std::vector<double> not_pd = {1, 2, 2, 1};
  size_t bad = 9;
  double pivot = 0;
  EXPECT_FALSE(CholeskyLowerInPlace(not_pd.data(), 2, &bad, &pivot));
  EXPECT_EQ(bad, 1u);
  EXPECT_EQ(pivot, -3.0);
}

TEST(LinalgTest, MatrixProductsOnOddShapes) {
  const size_t m = 13, k = 300, n = 263;  // edges in every dimension, more than one k block
  const std::vector<float> a = RandomNormal(m * k, 51), b = RandomNormal(k * n, 52);
  std::vector<float> c(m * n, 123.0f);  // overwritten
  MatMulF32(a.data(), k, b.data(), n, c.data(), n, m, k, n);
  std::vector<double> ad(a.begin(), a.end()), bd(b.begin(), b.end()), cd(m * n, 1.0);
  GemmF64(-2.0, ad.data(), k, bd.data(), n, cd.data(), n, m, k, n);  // accumulates
  for (size_t i = 0; i < m; ++i) {
    for (size_t j = 0; j < n; ++j) {
      double want = 0;
      for (size_t p = 0; p < k; ++p) want += ad[i * k + p] * bd[p * n + j];
      EXPECT_NEAR(c[i * n + j], want, 1e-4 * std::sqrt(double(k)));
      EXPECT_NEAR(cd[i * n + j], 1.0 - 2.0 * want, 1e-10);
    }
  }
}

// ------------------------------------------- ISA levels: the same bits as the portable tiles

TEST(DenseKernelsTest, EveryIsaLevelGivesThePortableBits) {
  // Shapes with edges in every dimension, several k and column blocks, and
  // the Hessian's own (256 x 256 output blocks over <= 256 tokens).
  struct Shape {
    size_t m, k, n;
  };
  const Shape shapes[] = {{37, 300, 390}, {256, 64, 256}, {9, 513, 17}, {1, 1, 1}};
  const DenseKernels portable = GetDenseKernels(Isa::kRef);
  int compared = 0;
  for (const Isa isa : kAllIsas) {
    if (isa == Isa::kRef || !IsaAvailable(isa)) continue;
    SCOPED_TRACE(IsaName(isa));
    const DenseKernels kernels = GetDenseKernels(isa);
    if (kernels.matmul_f32 == portable.matmul_f32) continue;  // the level has no tiles of its own (NEON)
    for (const Shape& s : shapes) {
      SCOPED_TRACE(testing::Message() << s.m << " x " << s.k << " x " << s.n);
      const std::vector<float> a = RandomNormal(s.m * s.k, 81), b = RandomNormal(s.k * s.n, 82);
      std::vector<float> c_ref(s.m * s.n, 7.0f), c_isa(s.m * s.n, -7.0f);
      portable.matmul_f32(a.data(), s.k, b.data(), s.n, c_ref.data(), s.n, s.m, s.k, s.n);
      kernels.matmul_f32(a.data(), s.k, b.data(), s.n, c_isa.data(), s.n, s.m, s.k, s.n);
      EXPECT_EQ(std::memcmp(c_ref.data(), c_isa.data(), c_ref.size() * sizeof(float)), 0);

      std::vector<double> ad(a.begin(), a.end()), bd(b.begin(), b.end());
      std::vector<double> d_ref(s.m * s.n, 0.25), d_isa(s.m * s.n, 0.25);
      portable.gemm_f64_block(-1.5, ad.data(), s.k, bd.data(), s.n, d_ref.data(), s.n, s.m, s.k, 0, s.n);
      kernels.gemm_f64_block(-1.5, ad.data(), s.k, bd.data(), s.n, d_isa.data(), s.n, s.m, s.k, 0, s.n);
      EXPECT_EQ(std::memcmp(d_ref.data(), d_isa.data(), d_ref.size() * sizeof(double)), 0);
      ++compared;
    }
  }
  if (compared == 0) GTEST_SKIP() << "no SIMD level of the dense kernels on this machine";
}

TEST(DenseKernelsTest, GptqCodesDoNotDependOnTheIsaLevel) {
  // The whole path (Hessian, Cholesky, inverse, lazy updates) through the
  // dispatch: pinned to the reference, then to the best level.
  const int rows = 24, cols = 160;  // three factorization panels, two lazy blocks
  const std::vector<float> w = RandomNormal(size_t(rows) * cols, 91), x = RandomNormal(size_t(300) * cols, 92);
  const std::vector<float> weights(300, 1.0f);
  auto run = [&](Isa isa, QMatrix* out) {
    ASSERT_TRUE(ForceIsa(isa).ok());
    std::vector<double> h(size_t(cols) * cols, 0.0);
    ASSERT_TRUE(AccumulateHessianUpper(x.data(), weights.data(), 300, cols, h.data()).ok());
    MirrorUpperToLower(h.data(), cols);
    GptqOptions options;
    options.spec.bits = 4;
    options.spec.group_size = 32;
    auto r = QuantizeGptq(w.data(), rows, cols, std::move(h), options, nullptr);
    ASSERT_TRUE(r.ok()) << r.status().message();
    *out = std::move(r.value());
  };
  const Isa best = DetectIsa();
  if (best == Isa::kRef) GTEST_SKIP() << "no SIMD level on this machine";
  QMatrix ref, simd;
  run(Isa::kRef, &ref);
  run(best, &simd);
  ASSERT_TRUE(ForceIsa(std::nullopt).ok());
  EXPECT_EQ(ref.codes, simd.codes);
  EXPECT_EQ(std::memcmp(ref.scales.data(), simd.scales.data(), ref.scales.size() * sizeof(float)), 0);
}

// ------------------------------------------- threads: the same bits as one thread

TEST(ThreadedTest, GemmAndFactorizationsOnThreadsAreBitIdentical) {
  ThreadPool pool(3);
  const size_t m = 37, k = 300, n = 390;  // edge tiles, several column blocks and k blocks
  const std::vector<float> a = RandomNormal(m * k, 61), b = RandomNormal(k * n, 62);
  std::vector<double> ad(a.begin(), a.end()), bd(b.begin(), b.end()), c1(m * n, 0.5), c3(m * n, 0.5);
  GemmF64(-1.5, ad.data(), k, bd.data(), n, c1.data(), n, m, k, n);
  GemmF64(-1.5, ad.data(), k, bd.data(), n, c3.data(), n, m, k, n, pool.get());
  EXPECT_EQ(std::memcmp(c1.data(), c3.data(), c1.size() * sizeof(double)), 0);

  const size_t s = 200;  // more than three factorization panels, with a partial one
  const std::vector<float> g = RandomNormal(s * (s + 3), 63);
  std::vector<double> spd(s * s, 0.0);
  for (size_t i = 0; i < s; ++i)
    for (size_t j = 0; j < s; ++j) {
      double sum = i == j ? 1.0 : 0.0;
      for (size_t p = 0; p < s + 3; ++p) sum += double(g[i * (s + 3) + p]) * g[j * (s + 3) + p];
      spd[i * s + j] = sum;
    }
  std::vector<double> l1 = spd, l3 = spd;
  size_t bad = 0;
  double pivot = 0;
  ASSERT_TRUE(CholeskyLowerInPlace(l1.data(), s, &bad, &pivot));
  ASSERT_TRUE(CholeskyLowerInPlace(l3.data(), s, &bad, &pivot, pool.get()));
  EXPECT_EQ(std::memcmp(l1.data(), l3.data(), l1.size() * sizeof(double)), 0);
  InvertLowerInPlace(l1.data(), s);
  InvertLowerInPlace(l3.data(), s, pool.get());
  EXPECT_EQ(std::memcmp(l1.data(), l3.data(), l1.size() * sizeof(double)), 0);
}

TEST(ThreadedTest, UpperHessianOnThreadsEqualsTheReferenceBitForBit) {
  // 600 features: two full 256 blocks and an edge block; 700 tokens, some
  // masked, fed in uneven batches (chunks of 256 counted tokens inside).
  const int k = 600;
  const size_t tokens = 700;
  const std::vector<float> x = RandomNormal(tokens * k, 71);
  std::vector<float> weights(tokens);
  for (size_t t = 0; t < tokens; ++t) weights[t] = t % 9 == 0 ? 0.0f : 0.25f + 0.001f * float(t % 13);
  for (int threads : {1, 2, 3}) {
    SCOPED_TRACE(threads);
    ThreadPool pool(threads);
    std::vector<double> ref(size_t(k) * k, 0.0), upper(size_t(k) * k, 0.0), batched(size_t(k) * k, 0.0);
    // The batcher keeps up to 100 tokens: flushes inside Add and at the end.
    UpperHessianBatcher batcher(k, batched.data(), pool.get(), 100);
    for (size_t t0 = 0; t0 < tokens;) {
      const size_t n = std::min<size_t>(t0 < 300 ? 37 : 300, tokens - t0);
      ASSERT_TRUE(AccumulateHessian(x.data() + t0 * k, weights.data() + t0, n, k, ref.data()).ok());
      ASSERT_TRUE(AccumulateHessianUpper(x.data() + t0 * k, weights.data() + t0, n, k, upper.data(), pool.get()).ok());
      ASSERT_TRUE(batcher.Add(x.data() + t0 * k, weights.data() + t0, n).ok());
      t0 += n;
    }
    batcher.Flush();
    for (size_t i = 1; i < size_t(k); ++i) EXPECT_EQ(upper[i * k], 0.0) << "the lower triangle is not touched";
    MirrorUpperToLower(upper.data(), k);
    MirrorUpperToLower(batched.data(), k);
    EXPECT_EQ(std::memcmp(ref.data(), upper.data(), ref.size() * sizeof(double)), 0);
    EXPECT_EQ(std::memcmp(ref.data(), batched.data(), ref.size() * sizeof(double)), 0);
  }
  std::vector<double> h(4, 0.0);
  const float bad_weight = -1.0f, row[2] = {1.0f, 2.0f};
  EXPECT_EQ(AccumulateHessianUpper(row, &bad_weight, 1, 2, h.data()).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(AccumulateHessianUpper(row, &bad_weight, 1, 0, h.data()).code(), StatusCode::kInvalidArgument);
}

TEST(ThreadedTest, GptqOnThreadsGivesTheSameCodes) {
  // Groups that straddle lazy blocks (block 48, group 32), per channel, act order.
  const int rows = 37, cols = 256;
  const std::vector<float> w = RandomNormal(rows * cols, 81, 0.05f);
  std::vector<float> x = RandomNormal(500 * cols, 82);
  for (size_t t = 0; t < 500; ++t)
    for (int j = 1; j < cols; ++j) x[t * cols + j] += 0.5f * x[t * cols + j - 1];
  const std::vector<float> weights(500, 1.0f);
  std::vector<double> h(cols * cols, 0.0);
  ASSERT_TRUE(AccumulateHessian(x.data(), weights.data(), 500, cols, h.data()).ok());
  ThreadPool pool(3);
  for (int group : {32, 0}) {
    for (bool act_order : {false, true}) {
      SCOPED_TRACE(testing::Message() << "group " << group << " act_order " << act_order);
      GptqOptions options;
      options.spec = {4, group, false};
      options.block_size = 48;
      options.act_order = act_order;
      GptqInfo one_info, three_info;
      auto one = QuantizeGptq(w.data(), rows, cols, h, options, &one_info);
      options.pool = pool.get();
      auto three = QuantizeGptq(w.data(), rows, cols, h, options, &three_info);
      ASSERT_TRUE(one.ok() && three.ok());
      EXPECT_EQ(one->codes, three->codes);
      EXPECT_EQ(one->scales, three->scales);
      EXPECT_EQ(one->zeros, three->zeros);
      EXPECT_NEAR(one_info.loss, three_info.loss, 1e-12 * one_info.loss);
    }
  }
}

// ---------------------------------------------------------------- AWQ

struct AwqData {
  int rows = 64, cols = 128;
  size_t tokens = 1024;
  std::vector<float> w, x, weights;
};

// Inputs with a few outlier channels (30x), 10% masked tokens.
AwqData MakeAwqData(uint32_t seed) {
  AwqData d;
  d.w = RandomNormal(static_cast<size_t>(d.rows) * d.cols, seed, 0.05f);
  d.x = RandomNormal(d.tokens * d.cols, seed + 1);
  std::mt19937 rng(seed + 2);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  d.weights.resize(d.tokens);
  for (size_t t = 0; t < d.tokens; ++t) {
    for (int j : {5, 40, 77, 100}) d.x[t * d.cols + j] *= 30.0f;
    d.weights[t] = u(rng) < 0.1f ? 0.0f : 0.5f + u(rng);
  }
  return d;
}

// The caller's view of AWQ's result: dequantized W*s divided back by s.
std::vector<float> AwqEffectiveWeights(const AwqResult& r) {
  std::vector<float> out = Dequantize(r.q);
  for (int i = 0; i < r.q.rows; ++i)
    for (int j = 0; j < r.q.cols; ++j) out[static_cast<size_t>(i) * r.q.cols + j] /= r.input_scales[j];
  return out;
}

TEST(AwqTest, ScalesOutlierChannelsAndBeatsRtn) {
  const AwqData d = MakeAwqData(11);
  AwqOptions options;
  options.spec = {4, 32, false};
  options.name = "layers.0.mlp.up_proj";
  auto r = QuantizeAwq(d.w.data(), d.rows, d.cols, d.x.data(), d.weights.data(), d.tokens, options);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->ratio_losses.size(), 20u);
  EXPECT_GT(r->best_ratio, 0.0);
  const size_t best = static_cast<size_t>(std::lround(r->best_ratio * 20));
  EXPECT_EQ(*std::min_element(r->ratio_losses.begin(), r->ratio_losses.end()), r->ratio_losses[best]);
  EXPECT_LT(r->ratio_losses[best], r->ratio_losses[0]);
  // The outlier channels get the largest scales.
  const float s_outlier = std::min({r->input_scales[5], r->input_scales[40], r->input_scales[77]});
  const float s_plain = *std::max_element(r->input_scales.begin() + 6, r->input_scales.begin() + 40);
  EXPECT_GT(s_outlier, s_plain);

  auto rtn = QuantizeRtn(d.w.data(), d.rows, d.cols, options.spec);
  ASSERT_TRUE(rtn.ok());
  const double awq_err = OutputError(AwqEffectiveWeights(*r), d.w.data(), d.rows, d.cols, d.x, d.weights);
  const double rtn_err = OutputError(Dequantize(*rtn), d.w.data(), d.rows, d.cols, d.x, d.weights);
  EXPECT_LT(awq_err, rtn_err);
  std::printf("[ awq      ] ratio %.2f, output error %.4g vs RTN %.4g\n", r->best_ratio, awq_err, rtn_err);

  // The clip search never picks a wider range than the group holds, and does
  // not make the output worse than AWQ without it.
  ASSERT_EQ(r->clip.size(), static_cast<size_t>(d.rows) * 4);
  options.search_clip = false;
  auto unclipped = QuantizeAwq(d.w.data(), d.rows, d.cols, d.x.data(), d.weights.data(), d.tokens, options);
  ASSERT_TRUE(unclipped.ok());
  EXPECT_TRUE(unclipped->clip.empty());
  EXPECT_EQ(unclipped->input_scales, r->input_scales);
  size_t clipped = 0;
  for (int i = 0; i < d.rows; ++i) {
    for (int g = 0; g < 4; ++g) {
      float org_max = 0;
      for (int j = g * 32; j < g * 32 + 32; ++j)
        org_max = std::max(org_max, std::fabs(d.w[static_cast<size_t>(i) * d.cols + j] * r->input_scales[j]));
      const float c = r->clip[static_cast<size_t>(i) * 4 + g];
      EXPECT_LE(c, org_max);
      EXPECT_GE(c, 0.5f * org_max * 0.999f);
      clipped += c < org_max;
    }
  }
  EXPECT_GT(clipped, 0u);
  const double unclipped_err =
      OutputError(AwqEffectiveWeights(*unclipped), d.w.data(), d.rows, d.cols, d.x, d.weights);
  EXPECT_LT(awq_err, unclipped_err);
  std::printf("[ awq      ] %zu of %d groups clipped; output error %.4g without the clip search\n", clipped,
              d.rows * 4, unclipped_err);
}

TEST(AwqTest, UsesThePluggableLoss) {
  const AwqData d = MakeAwqData(12);
  AwqOptions options;
  options.spec = {4, 64, true};
  const AwqOutputLoss default_loss(d.w.data(), d.rows, d.cols, d.x.data(), d.weights.data(), d.tokens);
  int calls = 0;
  auto counting = [&](const float* candidate) {
    ++calls;
    return default_loss(candidate);
  };
  auto a = QuantizeAwq(d.w.data(), d.rows, d.cols, d.x.data(), d.weights.data(), d.tokens, options, counting);
  auto b = QuantizeAwq(d.w.data(), d.rows, d.cols, d.x.data(), d.weights.data(), d.tokens, options);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(calls, 20);
  EXPECT_EQ(a->best_ratio, b->best_ratio);
  EXPECT_EQ(a->ratio_losses, b->ratio_losses);
  EXPECT_EQ(a->q.codes, b->q.codes);

  // The candidates are Q(W diag(s)) diag(s)^-1 (ratio 0: plain RTN), and the
  // loss's values alone pick the ratio: here the last call wins.
  std::vector<std::vector<float>> seen;
  auto last_wins = [&](const float* candidate) {
    seen.emplace_back(candidate, candidate + d.w.size());
    return 100.0 - static_cast<double>(seen.size());
  };
  auto c = QuantizeAwq(d.w.data(), d.rows, d.cols, d.x.data(), d.weights.data(), d.tokens, options, last_wins);
  ASSERT_TRUE(c.ok());
  ASSERT_EQ(seen.size(), 20u);
  EXPECT_EQ(c->best_ratio, 19.0 / 20);
  std::vector<float> rtn(d.w.size());
  FakeQuantizeRtn(d.w.data(), d.rows, d.cols, options.spec, nullptr, rtn.data());
  EXPECT_EQ(seen[0], rtn);
  EXPECT_NE(seen[19], rtn);

  // Ties go to the smallest ratio (strict <): a constant loss means no scaling.
  auto flat = QuantizeAwq(d.w.data(), d.rows, d.cols, d.x.data(), d.weights.data(), d.tokens, options,
                          [](const float*) { return 1.0; });
  ASSERT_TRUE(flat.ok());
  EXPECT_EQ(flat->best_ratio, 0.0);
  for (float s : flat->input_scales) EXPECT_EQ(s, 1.0f);
  // A loss that is never finite is an error.
  auto nan = QuantizeAwq(d.w.data(), d.rows, d.cols, d.x.data(), d.weights.data(), d.tokens, options,
                         [](const float*) { return std::nan(""); });
  EXPECT_FALSE(nan.ok());
}

TEST(AwqTest, OutputLossThroughTokensOrHessianIsTheWeightedMse) {
  const AwqData d = MakeAwqData(13);
  std::vector<float> candidate = d.w;
  for (size_t i = 0; i < candidate.size(); ++i) candidate[i] += 0.01f * std::sin(float(i));
  for (size_t tokens : {size_t{100}, size_t{1024}}) {  // 100 <= cols: tokens; 1024 > cols: Hessian
    const AwqOutputLoss loss(d.w.data(), d.rows, d.cols, d.x.data(), d.weights.data(), tokens);
    EXPECT_EQ(loss.uses_hessian(), tokens > 128);
    const std::vector<float> x(d.x.begin(), d.x.begin() + static_cast<std::ptrdiff_t>(tokens * d.cols));
    const std::vector<float> weights(d.weights.begin(), d.weights.begin() + static_cast<std::ptrdiff_t>(tokens));
    double total = 0;
    for (float v : weights) total += v;
    const double want = OutputError(candidate, d.w.data(), d.rows, d.cols, x, weights) / (total * d.rows);
    EXPECT_NEAR(loss(candidate.data()), want, 1e-5 * want) << tokens;
  }
}

TEST(AwqTest, RejectsBadInputs) {
  const AwqData d = MakeAwqData(14);
  AwqOptions options;
  options.spec = {4, 32, false};
  const std::vector<float> no_weight(d.tokens, 0.0f);
  EXPECT_FALSE(QuantizeAwq(d.w.data(), d.rows, d.cols, d.x.data(), no_weight.data(), d.tokens, options).ok());
  options.spec.bits = 5;
  EXPECT_FALSE(QuantizeAwq(d.w.data(), d.rows, d.cols, d.x.data(), d.weights.data(), d.tokens, options).ok());
}

// ---------------------------------------------------------------- 2 and 3 bits

// Every method at every width, group size and symmetry: codes and zero points
// in range, the error falls with each added bit, GPTQ beats RTN on the
// correlated inputs its Hessian summarizes, AWQ beats RTN with outlier
// channels (the W4 tests' claims, at 3 and 2 bits).
TEST(LowBitTest, EveryMethodAtTwoAndThreeBits) {
  const AwqData d = MakeAwqData(21);  // 64 x 128, outlier input channels
  std::vector<float> x = d.x;
  for (size_t t = 0; t < d.tokens; ++t)  // correlated neighbours, as in the GPTQ tests
    for (int j = 1; j < d.cols; ++j) x[t * d.cols + j] += 0.5f * x[t * d.cols + j - 1];
  std::vector<double> h(static_cast<size_t>(d.cols) * d.cols, 0.0);
  ASSERT_TRUE(AccumulateHessian(x.data(), d.weights.data(), d.tokens, d.cols, h.data()).ok());
  auto in_range = [](const QMatrix& q) {
    for (int8_t c : q.codes)
      if (c < q.CodeMin() || c > q.CodeMax()) return false;
    for (int8_t z : q.zeros)
      if (z < q.CodeMin() || z > q.CodeMax()) return false;
    return true;
  };
  for (int group : {32, 64, 128, 0}) {
    for (bool sym : {false, true}) {
      double prev_rtn = -1, prev_gptq = -1, prev_awq = -1;
      for (int bits : {2, 3, 4, 8}) {
        SCOPED_TRACE(testing::Message() << "bits " << bits << " group " << group << " symmetric " << sym);
        const QuantSpec spec{bits, group, sym};
        auto rtn = QuantizeRtn(d.w.data(), d.rows, d.cols, spec);
        ASSERT_TRUE(rtn.ok()) << rtn.status().ToString();
        EXPECT_EQ(rtn->bits, bits);
        EXPECT_TRUE(in_range(*rtn));
        GptqOptions go;
        go.spec = spec;
        auto gptq = QuantizeGptq(d.w.data(), d.rows, d.cols, h, go, nullptr);
        ASSERT_TRUE(gptq.ok()) << gptq.status().ToString();
        EXPECT_TRUE(in_range(*gptq));
        AwqOptions ao;
        ao.spec = spec;
        auto awq = QuantizeAwq(d.w.data(), d.rows, d.cols, d.x.data(), d.weights.data(), d.tokens, ao);
        ASSERT_TRUE(awq.ok()) << awq.status().ToString();
        EXPECT_TRUE(in_range(awq->q));

        const double rtn_h = HessianError(Dequantize(*rtn), d.w.data(), d.rows, d.cols, h);
        const double gptq_h = HessianError(Dequantize(*gptq), d.w.data(), d.rows, d.cols, h);
        EXPECT_LT(gptq_h, rtn_h);
        const double rtn_out = OutputError(Dequantize(*rtn), d.w.data(), d.rows, d.cols, d.x, d.weights);
        const double awq_out = OutputError(AwqEffectiveWeights(*awq), d.w.data(), d.rows, d.cols, d.x, d.weights);
        EXPECT_LT(awq_out, rtn_out);
        if (prev_rtn >= 0) {  // one bit more (or four), less error
          EXPECT_LT(rtn_h, prev_rtn);
          EXPECT_LT(gptq_h, prev_gptq);
          EXPECT_LT(awq_out, prev_awq);
        }
        prev_rtn = rtn_h;
        prev_gptq = gptq_h;
        prev_awq = awq_out;
        if (group == 128 && !sym) {
          std::printf("[ lowbit   ] W%d g128: GPTQ %.4g vs RTN %.4g (Hessian error); AWQ %.4g vs RTN %.4g (output)\n",
                      bits, gptq_h, rtn_h, awq_out, rtn_out);
        }
      }
    }
  }
}

// QuantSpec::f16_scales: every method's scales are fp16 values, and the codes
// are computed against those scales: the errors stay within a hair of the
// fp32-scale results (the rounding of a scale moves it by at most 2^-11).
TEST(F16ScalesTest, EveryMethodGivesFp16ScalesAtAboutTheSameError) {
  const AwqData d = MakeAwqData(23);
  std::vector<double> h(static_cast<size_t>(d.cols) * d.cols, 0.0);
  ASSERT_TRUE(AccumulateHessian(d.x.data(), d.weights.data(), d.tokens, d.cols, h.data()).ok());
  auto all_f16 = [](const QMatrix& q) {
    for (float v : q.scales)
      if (F16ToF32(F32ToF16(v)) != v || !(v > 0)) return false;
    return true;
  };
  for (bool sym : {false, true}) {
    for (int bits : {3, 4, 8}) {
      SCOPED_TRACE(testing::Message() << "bits " << bits << " symmetric " << sym);
      QuantSpec spec{bits, 32, sym};
      QuantSpec spec16 = spec;
      spec16.f16_scales = true;
      auto rtn = QuantizeRtn(d.w.data(), d.rows, d.cols, spec);
      auto rtn16 = QuantizeRtn(d.w.data(), d.rows, d.cols, spec16);
      ASSERT_TRUE(rtn.ok() && rtn16.ok());
      EXPECT_FALSE(all_f16(*rtn));  // fp32 scales are not fp16 values by chance
      EXPECT_TRUE(all_f16(*rtn16));
      GptqOptions go;
      go.spec = spec16;
      auto gptq16 = QuantizeGptq(d.w.data(), d.rows, d.cols, h, go, nullptr);
      go.spec = spec;
      auto gptq = QuantizeGptq(d.w.data(), d.rows, d.cols, h, go, nullptr);
      ASSERT_TRUE(gptq.ok() && gptq16.ok());
      EXPECT_TRUE(all_f16(*gptq16));
      AwqOptions ao;
      ao.spec = spec16;
      auto awq16 = QuantizeAwq(d.w.data(), d.rows, d.cols, d.x.data(), d.weights.data(), d.tokens, ao);
      ASSERT_TRUE(awq16.ok());
      EXPECT_TRUE(all_f16(awq16->q));
      const double e_rtn = HessianError(Dequantize(*rtn), d.w.data(), d.rows, d.cols, h);
      const double e_rtn16 = HessianError(Dequantize(*rtn16), d.w.data(), d.rows, d.cols, h);
      const double e_gptq = HessianError(Dequantize(*gptq), d.w.data(), d.rows, d.cols, h);
      const double e_gptq16 = HessianError(Dequantize(*gptq16), d.w.data(), d.rows, d.cols, h);
      EXPECT_NEAR(e_rtn16, e_rtn, 0.02 * e_rtn);
      EXPECT_NEAR(e_gptq16, e_gptq, 0.02 * e_gptq);
      EXPECT_LT(e_gptq16, e_rtn16);
    }
  }
}

// ---------------------------------------------------------------- SmoothQuant

TEST(SmoothQuantTest, ScalesFollowTheReferenceFormula) {
  const int rows = 3, cols = 4;
  const float w[] = {0.5f, -2.0f, 0.0f, 0.1f,   //
                     -1.0f, 1.0f, 0.0f, 0.2f,   //
                     0.25f, 0.5f, 0.0f, -0.4f};
  const float act[] = {16.0f, 1.0f, 9.0f, 0.0f};
  const std::vector<float> s = SmoothQuantScales(act, w, rows, cols, 0.5f);
  ASSERT_EQ(s.size(), 4u);
  EXPECT_FLOAT_EQ(s[0], 4.0f / 1.0f);                             // sqrt(16) / sqrt(1)
  EXPECT_FLOAT_EQ(s[1], 1.0f / std::sqrt(2.0f));                  // sqrt(1) / sqrt(2)
  EXPECT_FLOAT_EQ(s[2], static_cast<float>(3.0 / std::sqrt(1e-5)));  // a zero column: w_max clamps to 1e-5
  EXPECT_FLOAT_EQ(s[3], 1e-5f);                                   // a silent channel: s clamps to 1e-5
  const std::vector<float> s75 = SmoothQuantScales(act, w, rows, cols, 0.75f);
  EXPECT_FLOAT_EQ(s75[1], static_cast<float>(1.0 / std::pow(2.0, 0.25)));
  EXPECT_FLOAT_EQ(s75[0], static_cast<float>(std::pow(16.0, 0.75)));
}

// ---------------------------------------------------------------- activation ranges

TEST(ActRangeTest, MinMaxIsExactAndIncludesZero) {
  ActHistogram h(4.0f);
  const float a[] = {0.3f, 1.2345f, 2.5f};
  const float masked[] = {-100.0f, 100.0f};
  ASSERT_TRUE(h.Add(a, 3, 0.5f).ok());
  ASSERT_TRUE(h.Add(masked, 2, 0.0f).ok());  // weight 0: ignored
  EXPECT_EQ(h.min(), 0.3f);
  EXPECT_EQ(h.max(), 2.5f);
  QuantRange r = EstimateRange(h, Estimator::kMinMax);
  EXPECT_EQ(r.min, 0.0f);  // 0 is always representable
  EXPECT_EQ(r.max, 2.5f);
  EXPECT_FLOAT_EQ(r.scale, 2.5f / 255);
  EXPECT_EQ(r.zero_point, -128);

  const float b[] = {-1.5f, 0.7f};
  ASSERT_TRUE(h.Add(b, 2, 1.0f).ok());
  r = EstimateRange(h, Estimator::kMinMax);
  EXPECT_EQ(r.min, -1.5f);
  EXPECT_FLOAT_EQ(r.scale, 4.0f / 255);
  EXPECT_EQ(r.zero_point, -128 - static_cast<int>(std::nearbyint(-1.5f / (4.0f / 255))));
  EXPECT_FLOAT_EQ(h.total_weight(), 3 * 0.5 + 2 * 1.0);
  EXPECT_EQ(h.Add(b, 2, -1.0f).code(), StatusCode::kInvalidArgument);

  const QuantRange empty = EstimateRange(ActHistogram(1.0f), Estimator::kMse);
  EXPECT_GT(empty.scale, 0.0f);
  EXPECT_EQ(empty.zero_point, -128);
}

TEST(ActRangeTest, PercentileOfAKnownDistribution) {
  // Uniform on [-1, 3]; then the same with [-1, 0) weighted 3x.
  const int n = 400000;
  std::vector<float> x(n);
  for (int i = 0; i < n; ++i) x[i] = -1.0f + 4.0f * (static_cast<float>(i) + 0.5f) / n;
  ActHistogram h(3.0f);
  ASSERT_TRUE(h.Add(x.data(), x.size(), 1.0f).ok());
  const double tol = 2 * h.bin_width();
  QuantRange r = EstimateRange(h, Estimator::kPercentile, 99.0);
  EXPECT_NEAR(r.min, -0.96, tol);
  EXPECT_NEAR(r.max, 2.96, tol);
  r = EstimateRange(h, Estimator::kPercentile, 100.0);
  EXPECT_EQ(r.max, h.max());
  EXPECT_EQ(r.min, h.min());

  ActHistogram weighted(3.0f);
  std::vector<float> weights(n);
  for (int i = 0; i < n; ++i) weights[i] = x[i] < 0 ? 3.0f : 1.0f;
  ASSERT_TRUE(weighted.AddTokens(x.data(), n, 1, weights.data()).ok());
  // Mass 3 on [-1, 0), 3 on [0, 3]: the 1% tails (0.06) lie at -1 + 0.06/3 and 3 - 0.06.
  r = EstimateRange(weighted, Estimator::kPercentile, 99.0);
  EXPECT_NEAR(r.min, -0.98, tol);
  EXPECT_NEAR(r.max, 2.94, tol);
}

TEST(ActRangeTest, MseClipsAHeavyTail) {
  // A Gaussian bulk and a long, light tail out to +-60: 200 rare tokens'
  // values of weight 0.001 each (weighted calibration makes such tails).
  const std::vector<float> bulk = RandomNormal(200000, 21);
  std::vector<float> tail(200);
  for (size_t i = 0; i < tail.size(); ++i) tail[i] = (i % 2 ? 1.0f : -1.0f) * (10.0f + 50.0f * float(i) / 199);
  ActHistogram h(60.0f);
  ASSERT_TRUE(h.Add(bulk.data(), bulk.size(), 1.0f).ok());
  ASSERT_TRUE(h.Add(tail.data(), tail.size(), 0.001f).ok());
  const QuantRange minmax = EstimateRange(h, Estimator::kMinMax);
  const QuantRange mse = EstimateRange(h, Estimator::kMse);
  EXPECT_EQ(minmax.max, 60.0f);
  EXPECT_LT(mse.max, 20.0f);
  EXPECT_GT(mse.max, 3.0f);
  EXPECT_LT(mse.min, -3.0f);
  EXPECT_LT(ExpectedQuantError(h, mse), 0.5 * ExpectedQuantError(h, minmax));
  std::printf("[ act      ] heavy tail: MSE range [%.3f, %.3f], expected error %.4g vs min-max %.4g\n", mse.min,
              mse.max, ExpectedQuantError(h, mse), ExpectedQuantError(h, minmax));

  // Without a tail there is little to clip.
  std::vector<float> u(100000);
  for (size_t i = 0; i < u.size(); ++i) u[i] = -2.0f + 4.0f * (static_cast<float>(i) + 0.5f) / u.size();
  ActHistogram hu(2.0f);
  ASSERT_TRUE(hu.Add(u.data(), u.size(), 1.0f).ok());
  const QuantRange mu = EstimateRange(hu, Estimator::kMse);
  EXPECT_GT(mu.max, 1.9f);
  EXPECT_LT(mu.min, -1.9f);
  EXPECT_LE(ExpectedQuantError(hu, mu), ExpectedQuantError(hu, EstimateRange(hu, Estimator::kMinMax)));
}

TEST(ActRangeTest, ExpectedErrorOfAUniformRangeIsTheRoundingNoise) {
  // Uniform data exactly on the grid's range: rounding noise scale^2 / 12 per unit weight.
  std::vector<float> u(200000);
  for (size_t i = 0; i < u.size(); ++i) u[i] = -1.0f + 2.0f * (static_cast<float>(i) + 0.5f) / u.size();
  ActHistogram h(1.0f);
  ASSERT_TRUE(h.Add(u.data(), u.size(), 1.0f).ok());
  const QuantRange r = EstimateRange(h, Estimator::kMinMax);
  const double per_value = ExpectedQuantError(h, r) / h.total_weight();
  EXPECT_NEAR(per_value, double(r.scale) * r.scale / 12, 0.05 * r.scale * r.scale / 12);
}

// ---------------------------------------------------------------- calibration statistics

TEST(InputStatsTest, WeightedHessianEqualsTheNaiveDoubleSum) {
  const int k = 100;   // not a multiple of the 64-wide tiles
  const size_t t = 700;  // more than two 256-token chunks
  const std::vector<float> x = RandomNormal(t * k, 31);
  std::vector<float> w(t);
  for (size_t i = 0; i < t; ++i) w[i] = i % 7 == 0 ? 0.0f : 0.001f * static_cast<float>(1 + i % 13);
  std::vector<double> h(k * k, 0.0);
  ASSERT_TRUE(AccumulateHessian(x.data(), w.data(), t, k, h.data()).ok());
  double max_abs = 0, max_diff = 0;
  for (int i = 0; i < k; ++i) {
    for (int j = 0; j < k; ++j) {
      double want = 0;
      for (size_t n = 0; n < t; ++n) want += double(w[n]) * x[n * k + i] * x[n * k + j];
      max_abs = std::max(max_abs, std::fabs(want));
      max_diff = std::max(max_diff, std::fabs(h[i * k + j] - want));
      EXPECT_EQ(h[i * k + j], h[j * k + i]);
    }
  }
  EXPECT_LE(max_diff, kMaxHessianRelError * max_abs);
}

TEST(InputStatsTest, BatchesAccumulateAndZeroWeightsAreIgnored) {
  const int k = 64;
  const size_t t = 50;
  std::vector<float> x = RandomNormal(t * k, 41);
  std::vector<float> w(t, 0.02f);
  // A masked token with garbage in it changes nothing.
  w[10] = 0.0f;
  for (int j = 0; j < k; ++j) x[10 * k + j] = j == 3 ? std::nanf("") : 1e6f;
  LinearInputStatsOptions options;
  options.hessian = options.mean_abs = options.max_abs = true;
  LinearInputStats whole(k, options), split(k, options);
  ASSERT_TRUE(whole.Accumulate(x.data(), w.data(), t).ok());
  ASSERT_TRUE(split.Accumulate(x.data(), w.data(), 20).ok());
  ASSERT_TRUE(split.Accumulate(x.data() + 20 * k, w.data() + 20, t - 20).ok());
  EXPECT_EQ(whole.tokens_counted(), t - 1);
  EXPECT_NEAR(whole.total_weight(), double(0.02f) * (t - 1), 1e-12);
  for (size_t i = 0; i < static_cast<size_t>(k * k); ++i) {
    ASSERT_TRUE(std::isfinite(whole.hessian()[i]));
    EXPECT_NEAR(whole.hessian()[i], split.hessian()[i], 1e-6);
  }
  const std::vector<double> mean = whole.mean_abs();
  for (int j = 0; j < k; ++j) {
    double sum = 0;
    float mx = 0;
    for (size_t n = 0; n < t; ++n) {
      if (n == 10) continue;
      sum += std::fabs(x[n * k + j]);
      mx = std::max(mx, std::fabs(x[n * k + j]));
    }
    EXPECT_NEAR(mean[j], sum / (t - 1), 1e-6);
    EXPECT_EQ(whole.max_abs()[j], mx);
    EXPECT_EQ(split.max_abs()[j], mx);
  }
  std::vector<float> bad = w;
  bad[3] = -1.0f;
  EXPECT_EQ(whole.Accumulate(x.data(), bad.data(), t).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(whole.tokens_counted(), t - 1);  // nothing added
  std::vector<double> moved = whole.TakeHessian();
  EXPECT_EQ(moved.size(), static_cast<size_t>(k * k));
}

}  // namespace
}  // namespace famq::quant
