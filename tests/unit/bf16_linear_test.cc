// BF16-weight linear layers (runtime/kernels/bf16gemm.h, linear/bf16_linear.h):
// the reference and every SIMD kernel this machine runs against a float64
// evaluation of the specification, exact agreement where every order of
// summation is exact, odd shapes and tails, biases, stacked blocks at odd
// addresses, threads, and the refusals.
#include "linear/bf16_linear.h"

#include <gtest/gtest.h>
#include <pthreadpool.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <optional>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "kernels/bf16gemm.h"
#include "kernels/isa.h"

namespace famq {

void PrintTo(Isa isa, std::ostream* os) { *os << IsaName(isa); }

namespace {

struct PoolDeleter {
  void operator()(pthreadpool_t pool) const { pthreadpool_destroy(pool); }
};
using Pool = std::unique_ptr<std::remove_pointer_t<pthreadpool_t>, PoolDeleter>;

uint16_t ToBf16(float f) {  // truncation: any BF16 value serves as a weight
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  return static_cast<uint16_t>(bits >> 16);
}

// BF16 weights [rows][in] stored at byte offset `skew` of a buffer, so the
// tensor can sit at an odd address as it may in a mapped safetensors file.
struct Bf16Tensor {
  std::vector<uint8_t> storage;
  TensorView view;
  float At(size_t r, size_t k) const { return Bf16ToF32(Raw(r, k)); }
  uint16_t Raw(size_t r, size_t k) const {
    uint16_t h;
    std::memcpy(&h, view.data + 2 * (r * static_cast<size_t>(view.shape[1]) + k), sizeof h);
    return h;
  }
};

Bf16Tensor MakeWeights(size_t rows, size_t in, size_t skew, std::mt19937& rng, bool integers,
                       const std::string& name = "w") {
  Bf16Tensor t;
  t.storage.resize(rows * in * 2 + skew);
  std::normal_distribution<float> normal(0.0f, 0.05f);
  std::uniform_int_distribution<int> small(-8, 8);
  for (size_t i = 0; i < rows * in; ++i) {
    const uint16_t h = ToBf16(integers ? static_cast<float>(small(rng)) : normal(rng));
    std::memcpy(&t.storage[skew + 2 * i], &h, sizeof h);
  }
  t.view.name = name;
  t.view.dtype = DType::kBF16;
  t.view.shape = {static_cast<int64_t>(rows), static_cast<int64_t>(in)};
  t.view.data = t.storage.data() + skew;
  t.view.num_bytes = rows * in * 2;
  return t;
}

std::vector<float> MakeInput(size_t n, std::mt19937& rng, bool integers) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int> small(-8, 8);
  std::vector<float> x(n);
  for (float& v : x) v = integers ? static_cast<float>(small(rng)) : normal(rng);
  return x;
}

// The longest chain of fp32 roundings any kernel's order puts on one term:
// `in` product-and-add steps (reference; the SIMD kernels' lane chains are
// shorter), 4 lane reductions (16 lanes), 1 bias add. Each rounding is at
// most 2^-24 relative, so |result - exact| <= (in + 5) * 2^-24 * (sum |x w| + |b|)
// (first-order; the factor 1.01 covers the second-order term).
double Tolerance(size_t in, double abs_sum) { return 1.01 * static_cast<double>(in + 5) * 0x1p-24 * abs_sum; }

// Checks y[batch][out] against float64 of x W^T + b for one block starting
// at output column `col`.
void ExpectNearExact(const std::vector<float>& x, const Bf16Tensor& w, const float* bias, const std::vector<float>& y,
                     size_t batch, size_t out, size_t col, const std::string& what) {
  const size_t rows = static_cast<size_t>(w.view.shape[0]), in = static_cast<size_t>(w.view.shape[1]);
  for (size_t t = 0; t < batch; ++t) {
    for (size_t r = 0; r < rows; ++r) {
      double exact = 0.0, abs_sum = 0.0;
      for (size_t k = 0; k < in; ++k) {
        const double p = static_cast<double>(x[t * in + k]) * static_cast<double>(w.At(r, k));
        exact += p;
        abs_sum += std::fabs(p);
      }
      if (bias != nullptr) {
        exact += bias[r];
        abs_sum += std::fabs(bias[r]);
      }
      const double got = y[t * out + col + r];
      ASSERT_LE(std::fabs(got - exact), Tolerance(in, abs_sum))
          << what << ": token " << t << " row " << r << " in " << in << " got " << got << " exact " << exact;
    }
  }
}

std::vector<Isa> AvailableIsas() {
  std::vector<Isa> isas;
  for (Isa isa : kAllIsas) {
    if (IsaAvailable(isa)) isas.push_back(isa);
  }
  return isas;
}

class Bf16Kernels : public ::testing::TestWithParam<Isa> {};

TEST_P(Bf16Kernels, MatchFloat64OnOddShapesWithAndWithoutBias) {
  const Isa isa = GetParam();
  const Bf16GemmFn gemm = GetBf16GemmFn(isa);
  std::mt19937 rng(1234);
  const size_t ins[] = {1, 3, 7, 8, 15, 16, 17, 31, 33, 100, 257};
  const size_t outs[] = {1, 2, 3, 5, 9};
  const size_t batches[] = {1, 2, 3, 4, 5, 37};
  int checked = 0;
  for (size_t in : ins) {
    for (size_t out : outs) {
      for (size_t batch : batches) {
        for (int with_bias = 0; with_bias < 2; ++with_bias) {
          const Bf16Tensor w = MakeWeights(out, in, (in + out) % 2, rng, false);
          const std::vector<float> x = MakeInput(batch * in, rng, false);
          const std::vector<float> b = MakeInput(out, rng, false);
          std::vector<float> y(batch * out, std::nanf(""));
          gemm(w.view.data, in, 0, out, x.data(), batch, with_bias ? b.data() : nullptr, y.data(), out);
          ExpectNearExact(x, w, with_bias ? b.data() : nullptr, y, batch, out, 0,
                          std::string(IsaName(isa)) + (with_bias ? " bias" : " no bias"));
          if (HasFatalFailure()) return;
          ++checked;
        }
      }
    }
  }
  EXPECT_EQ(checked, 11 * 5 * 6 * 2);
}

// With small integer values every product and partial sum is exact in fp32,
// so every order of summation gives the same bits: each kernel must equal the
// reference exactly (this catches a misplaced element that a tolerance might hide).
TEST_P(Bf16Kernels, BitIdenticalToReferenceWhenSumsAreExact) {
  const Isa isa = GetParam();
  std::mt19937 rng(99);
  for (size_t in : {5, 16, 23, 64, 129}) {
    for (size_t batch : {1, 3, 4, 7}) {
      const size_t out = 11;
      const Bf16Tensor w = MakeWeights(out, in, 1, rng, true);
      const std::vector<float> x = MakeInput(batch * in, rng, true);
      const std::vector<float> b = MakeInput(out, rng, true);
      std::vector<float> ref(batch * out), got(batch * out);
      famq_bf16w_f32_gemm__ref(w.view.data, in, 0, out, x.data(), batch, b.data(), ref.data(), out);
      GetBf16GemmFn(isa)(w.view.data, in, 0, out, x.data(), batch, b.data(), got.data(), out);
      EXPECT_EQ(0, std::memcmp(ref.data(), got.data(), ref.size() * sizeof(float)))
          << IsaName(isa) << " in " << in << " batch " << batch;
    }
  }
}

// Rows [r0, r1) only: the rest of y stays untouched.
TEST_P(Bf16Kernels, WritesOnlyItsRowRange) {
  std::mt19937 rng(7);
  const size_t in = 40, out = 13, batch = 5;
  const Bf16Tensor w = MakeWeights(out, in, 0, rng, false);
  const std::vector<float> x = MakeInput(batch * in, rng, false);
  std::vector<float> y(batch * out, -7.0f);
  GetBf16GemmFn(GetParam())(w.view.data, in, 3, 10, x.data(), batch, nullptr, y.data(), out);
  for (size_t t = 0; t < batch; ++t) {
    for (size_t r = 0; r < out; ++r) {
      if (r < 3 || r >= 10) {
        EXPECT_EQ(y[t * out + r], -7.0f) << t << " " << r;
      } else {
        EXPECT_NE(y[t * out + r], -7.0f) << t << " " << r;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllAvailable, Bf16Kernels, ::testing::ValuesIn(AvailableIsas()),
                         [](const ::testing::TestParamInfo<Isa>& p) { return std::string(IsaName(p.param)); });

// q|k|v-style stacking: three tensors at odd addresses with biases, through
// Bf16Linear with and without a thread pool (same bits: the tiles do not
// depend on the thread count).
TEST(Bf16Linear, StackedBlocksWithBiasesAndThreads) {
  std::mt19937 rng(42);
  const size_t in = 72;
  const size_t rows[] = {37, 9, 9};
  std::vector<Bf16Tensor> w;
  std::vector<std::optional<TensorView>> bias_views;
  std::vector<std::vector<float>> biases;
  for (size_t i = 0; i < 3; ++i) {
    w.push_back(MakeWeights(rows[i], in, 1, rng, false, "block" + std::to_string(i)));
    biases.push_back(MakeInput(rows[i], rng, false));
  }
  for (size_t i = 0; i < 3; ++i) {
    TensorView b;
    b.name = "bias" + std::to_string(i);
    b.dtype = DType::kF32;
    b.shape = {static_cast<int64_t>(rows[i])};
    b.data = reinterpret_cast<const uint8_t*>(biases[i].data());
    b.num_bytes = rows[i] * 4;
    bias_views.emplace_back(b);
  }
  const size_t out = 37 + 9 + 9;
  Pool pool(pthreadpool_create(3));
  ASSERT_NE(pool, nullptr);
  for (Isa isa : AvailableIsas()) {
    for (int with_bias = 0; with_bias < 2; ++with_bias) {
      const std::optional<TensorView> none;
      std::vector<const std::optional<TensorView>*> bp;
      for (size_t i = 0; i < 3; ++i) bp.push_back(with_bias ? &bias_views[i] : &none);
      auto lin = Bf16Linear::Create({&w[0].view, &w[1].view, &w[2].view}, bp, isa, "qkv");
      ASSERT_TRUE(lin.ok()) << lin.status().ToString();
      EXPECT_EQ(lin->in_features(), static_cast<int>(in));
      EXPECT_EQ(lin->out_features(), static_cast<int>(out));
      EXPECT_EQ(lin->weight_bytes(), in * out * 2 + (with_bias ? out * 4 : 0));
      for (size_t batch : {1, 37}) {
        const std::vector<float> x = MakeInput(batch * in, rng, false);
        std::vector<float> y(batch * out, std::nanf("")), y_threads(batch * out, std::nanf(""));
        ASSERT_TRUE(lin->Run(x.data(), y.data(), batch, nullptr).ok());
        ASSERT_TRUE(lin->Run(x.data(), y_threads.data(), batch, pool.get()).ok());
        EXPECT_EQ(0, std::memcmp(y.data(), y_threads.data(), y.size() * sizeof(float)));
        size_t col = 0;
        for (size_t i = 0; i < 3; ++i) {
          ExpectNearExact(x, w[i], with_bias ? biases[i].data() : nullptr, y, batch, out, col,
                          std::string(IsaName(isa)) + " block " + std::to_string(i));
          col += rows[i];
        }
      }
    }
  }
}

// Many tiles (a wide layer) split over threads: the same bits as inline.
TEST(Bf16Linear, ManyTilesOverThreads) {
  std::mt19937 rng(5);
  const size_t in = 4096, out = 300, batch = 6;  // 16-row tiles: 19 of them
  const Bf16Tensor w = MakeWeights(out, in, 0, rng, false);
  const std::vector<float> x = MakeInput(batch * in, rng, false);
  Pool pool(pthreadpool_create(4));
  auto lin = Bf16Linear::Create({&w.view}, {}, ActiveIsa().value(), "wide");
  ASSERT_TRUE(lin.ok()) << lin.status().ToString();
  std::vector<float> a(batch * out), b(batch * out);
  ASSERT_TRUE(lin->Run(x.data(), a.data(), batch, nullptr).ok());
  ASSERT_TRUE(lin->Run(x.data(), b.data(), batch, pool.get()).ok());
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float)));
  ExpectNearExact(x, w, nullptr, a, batch, out, 0, "wide");
}

TEST(Bf16Linear, RefusesWhatItCannotReadInPlace) {
  std::mt19937 rng(1);
  Bf16Tensor w = MakeWeights(4, 8, 0, rng, false, "model.layers.0.mlp.down_proj.weight");
  Bf16Tensor w2 = MakeWeights(4, 9, 0, rng, false);
  TensorView f32 = w.view;
  f32.dtype = DType::kF32;
  f32.num_bytes = 4 * 8 * 4;
  auto r = Bf16Linear::Create({&f32}, {}, Isa::kRef, "down");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("is F32"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("down_proj"), std::string::npos) << r.status().message();

  r = Bf16Linear::Create({&w.view, &w2.view}, {}, Isa::kRef, "gate_up");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("same input size"), std::string::npos) << r.status().message();

  r = Bf16Linear::Create({}, {}, Isa::kRef, "empty");
  EXPECT_FALSE(r.ok());

  TensorView short_bias;
  short_bias.name = "b";
  short_bias.dtype = DType::kF32;
  short_bias.shape = {3};
  const float three[3] = {1, 2, 3};
  short_bias.data = reinterpret_cast<const uint8_t*>(three);
  short_bias.num_bytes = 12;
  const std::optional<TensorView> sb = short_bias;
  r = Bf16Linear::Create({&w.view}, {&sb}, Isa::kRef, "biased");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("3 values for 4 rows"), std::string::npos) << r.status().message();

  auto ok = Bf16Linear::Create({&w.view}, {}, Isa::kRef, "ok");
  ASSERT_TRUE(ok.ok());
  float y[4];
  EXPECT_FALSE(ok->Run(nullptr, y, 1, nullptr).ok());
  EXPECT_TRUE(ok->Run(nullptr, nullptr, 0, nullptr).ok());
}

}  // namespace
}  // namespace famq
