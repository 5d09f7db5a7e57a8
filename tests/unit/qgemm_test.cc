// Weight-only quantized linear kernels: the reference against a float64
// evaluation of the specification (runtime/kernels/qgemm.h), every SIMD kernel
// this machine runs against the reference, activation quantization edge cases,
// and ISA selection (FAMQ_FORCE_ISA, ForceIsa).
#include "kernels/qgemm.h"
#include "kernels/qgemm_pack.h"
#include "qmodel/code_packing.h"
#include "model/dtype.h"

#include <gtest/gtest.h>
#include <pthreadpool.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <memory>
#include <optional>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "kernels/isa.h"
#include "linear/weight_only_linear.h"
#include "core/qmatrix.h"

namespace famq {

// gtest prints Isa parameters by name (found by argument-dependent lookup).
void PrintTo(Isa isa, std::ostream* os) { *os << IsaName(isa); }

namespace {

struct PoolDeleter {
  void operator()(pthreadpool_t pool) const { pthreadpool_destroy(pool); }
};
using Pool = std::unique_ptr<std::remove_pointer_t<pthreadpool_t>, PoolDeleter>;

Pool MakePool(int threads) { return Pool(threads > 1 ? pthreadpool_create(static_cast<size_t>(threads)) : nullptr); }

QMatrix RandomQMatrix(int bits, int rows, int cols, int group_size, bool asymmetric, uint32_t seed) {
  QMatrix w;
  w.bits = bits;
  w.rows = rows;
  w.cols = cols;
  w.group_size = group_size;
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> code(w.CodeMin(), w.CodeMax());
  std::uniform_real_distribution<float> scale(0.001f, 0.05f);
  w.codes.resize(static_cast<size_t>(rows) * static_cast<size_t>(cols));
  for (int8_t& c : w.codes) c = static_cast<int8_t>(code(rng));
  const size_t groups = static_cast<size_t>(rows) * static_cast<size_t>(w.groups_per_row());
  w.scales.resize(groups);
  w.zeros.resize(groups);
  for (size_t g = 0; g < groups; ++g) {
    w.scales[g] = scale(rng);
    w.zeros[g] = static_cast<int8_t>(asymmetric ? code(rng) : 0);
  }
  // The extreme codes and zero points, where biased storage and int16 pairs
  // are tightest.
  w.codes[0] = static_cast<int8_t>(w.CodeMin());
  w.codes.back() = static_cast<int8_t>(w.CodeMax());
  if (asymmetric) w.zeros[0] = static_cast<int8_t>(w.CodeMin());
  return w;
}

// Blocks of very different magnitudes, some all zero, some with one outlier.
std::vector<float> RandomActivations(size_t m, size_t k, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> exponent(-4.0f, 4.0f);
  std::uniform_int_distribution<int> kind(0, 15);
  std::vector<float> x(m * k);
  for (size_t b = 0; b < m * k / kQBlock; ++b) {
    float* xb = x.data() + b * kQBlock;
    const int block_kind = kind(rng);
    const float magnitude = std::pow(10.0f, exponent(rng));
    for (int j = 0; j < kQBlock; ++j) xb[j] = block_kind == 0 ? 0.0f : normal(rng) * magnitude;
    if (block_kind == 1) xb[rng() % kQBlock] = 1e4f * magnitude;
  }
  return x;
}

std::vector<float> RandomBias(int rows, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> bias(static_cast<size_t>(rows));
  for (float& v : bias) v = normal(rng);
  return bias;
}

struct QuantizedRows {
  std::vector<int8_t> qx;     // [m][k]
  std::vector<float> sx;      // [m][k/32]
  std::vector<int32_t> qsum;  // [m][k/32]
};

QuantizedRows QuantizeRows(QuantizeRowFn quantize, const std::vector<float>& x, size_t m, size_t k) {
  QuantizedRows q{std::vector<int8_t>(m * k), std::vector<float>(m * k / kQBlock),
                  std::vector<int32_t>(m * k / kQBlock)};
  for (size_t i = 0; i < m; ++i) {
    quantize(k, x.data() + i * k, q.qx.data() + i * k, q.sx.data() + i * k / kQBlock, q.qsum.data() + i * k / kQBlock);
  }
  return q;
}

// The specification evaluated in float64 from the QMatrix itself: the exact
// value of each output and the sum of the magnitudes of its terms.
struct Exact {
  std::vector<double> y;          // [m][n]
  std::vector<double> magnitude;  // [m][n]: sum_b |s * sx * t| + |bias|
};

Exact EvaluateExactly(const QMatrix& w, const QuantizedRows& q, const std::vector<float>& bias, size_t m) {
  const size_t n = static_cast<size_t>(w.rows);
  const size_t k = static_cast<size_t>(w.cols);
  const size_t blocks = k / kQBlock;
  const size_t groups = static_cast<size_t>(w.groups_per_row());
  Exact e{std::vector<double>(m * n), std::vector<double>(m * n)};
  for (size_t i = 0; i < m; ++i) {
    for (size_t r = 0; r < n; ++r) {
      double y = 0.0;
      double magnitude = 0.0;
      for (size_t b = 0; b < blocks; ++b) {
        const size_t g = b * kQBlock / static_cast<size_t>(w.group_size);
        int64_t dot = 0;
        int64_t sum = 0;
        for (size_t j = b * kQBlock; j < (b + 1) * kQBlock; ++j) {
          dot += int64_t{q.qx[i * k + j]} * int64_t{w.codes[r * k + j]};
          sum += q.qx[i * k + j];
        }
        EXPECT_EQ(sum, q.qsum[i * blocks + b]);
        const double term = double{w.scales[r * groups + g]} * double{q.sx[i * blocks + b]} *
                            static_cast<double>(dot - int64_t{w.zeros[r * groups + g]} * sum);
        y += term;
        magnitude += std::fabs(term);
      }
      if (!bias.empty()) {
        y += bias[r];
        magnitude += std::fabs(bias[r]);
      }
      e.y[i * n + r] = y;
      e.magnitude[i * n + r] = magnitude;
    }
  }
  return e;
}

std::vector<float> RunLinear(const QMatrix& w, const std::vector<float>& bias, const std::vector<float>& x, size_t m,
                             Isa isa, int threads) {
  auto lin = WeightOnlyLinear::Create(w, bias, static_cast<int>(m), isa, "test");
  EXPECT_TRUE(lin.ok()) << lin.status().ToString();
  if (!lin.ok()) return {};
  EXPECT_EQ(lin->isa(), isa);
  EXPECT_EQ(lin->in_features(), w.cols);
  EXPECT_EQ(lin->out_features(), w.rows);
  // NaN canaries: every output must be written.
  std::vector<float> y(m * static_cast<size_t>(w.rows), std::nanf(""));
  Pool pool = MakePool(threads);
  Status st = lin->Run(x.data(), y.data(), m, pool.get());
  EXPECT_TRUE(st.ok()) << st.ToString();
  return y;
}

struct Shape {
  int bits;
  bool asymmetric;
  int group_size;  // 0: per channel (== cols)
  int rows;
  int cols;
  size_t batch;
  bool bias;
  int threads;
};

std::string Describe(const Shape& s) {
  return "bits " + std::to_string(s.bits) + (s.asymmetric ? " asym" : " sym") + " group " +
         std::to_string(s.group_size == 0 ? s.cols : s.group_size) + " rows " + std::to_string(s.rows) + " cols " +
         std::to_string(s.cols) + " batch " + std::to_string(s.batch) + (s.bias ? " bias" : "") + " threads " +
         std::to_string(s.threads);
}

// Inputs (cols) valid for a group size: odd multiples of the group size (odd
// multiples of 32 for group 32 and per channel), and 1024.
std::vector<int> ColsFor(int group_size) {
  const int unit = group_size == 0 ? kQBlock : group_size;
  std::vector<int> cols;
  for (int c = unit; c <= 1024; c += 2 * unit) cols.push_back(c);
  cols.push_back(1024);
  return cols;
}

// Every combination of bits, zero points, group sizes and row counts, with
// cols, batch, bias and threads cycling so that each of their values occurs.
std::vector<Shape> SweepShapes() {
  const size_t batches[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 63, 64, 65};
  std::vector<Shape> shapes;
  size_t n = 0;
  for (int bits : {2, 3, 4, 8}) {  // 2 and 3 bits run on the 8-bit packing and kernels
    for (bool asymmetric : {false, true}) {
      for (int group_size : {32, 64, 128, 0}) {
        const std::vector<int> cols = ColsFor(group_size);
        for (int rows : {1, 3, 17, 67, 131}) {
          size_t batch = batches[n % std::size(batches)];
          int c = cols[(n * 7 + static_cast<size_t>(bits)) % cols.size()];
          // Keep the largest batches to moderate sizes: the reference and
          // qemu are scalar.
          if (batch > 9 && c * rows > 256 * 67) c = cols[n % std::min<size_t>(cols.size(), 4)];
          shapes.push_back({bits, asymmetric, group_size, rows, c, batch, n % 2 == 0, static_cast<int>(n / 2 % 2) + 1});
          ++n;
        }
      }
    }
  }
  return shapes;
}

// ---------------------------------------------------------------------------
// The reference against float64.

TEST(QGemmReference, MatchesFloat64Evaluation) {
  uint32_t seed = 1;
  for (const Shape& s : SweepShapes()) {
    SCOPED_TRACE(Describe(s));
    const int group = s.group_size == 0 ? s.cols : s.group_size;
    const QMatrix w = RandomQMatrix(s.bits, s.rows, s.cols, group, s.asymmetric, seed++);
    const std::vector<float> bias = s.bias ? RandomBias(s.rows, seed++) : std::vector<float>{};
    const std::vector<float> x = RandomActivations(s.batch, static_cast<size_t>(s.cols), seed++);
    const Exact exact = EvaluateExactly(w, QuantizeRows(famq_qd8_f32_quantize__ref, x, s.batch, s.cols), bias, s.batch);
    const std::vector<float> y = RunLinear(w, bias, x, s.batch, Isa::kRef, s.threads);
    ASSERT_EQ(y.size(), exact.y.size());
    for (size_t i = 0; i < y.size(); ++i) {
      ASSERT_NEAR(y[i], exact.y[i], kQGemmMaxRelError * exact.magnitude[i]) << "output " << i;
    }
  }
}

// ---------------------------------------------------------------------------
// Every ISA against the reference.

class QGemmIsaTest : public testing::TestWithParam<Isa> {
 protected:
  void SetUp() override {
    if (!IsaAvailable(GetParam())) {
      GTEST_SKIP() << "ISA '" << IsaName(GetParam()) << "' is not available on this CPU or in this build";
    }
  }
};

TEST_P(QGemmIsaTest, QuantizerIsBitExactToReference) {
  const QGemmKernels* kernels = GetQGemmKernels(GetParam());
  ASSERT_NE(kernels, nullptr);
  for (size_t k : {32u, 96u, 1024u}) {
    const std::vector<float> x = RandomActivations(9, k, static_cast<uint32_t>(k));
    const QuantizedRows want = QuantizeRows(famq_qd8_f32_quantize__ref, x, 9, k);
    const QuantizedRows got = QuantizeRows(kernels->quantize_row, x, 9, k);
    EXPECT_EQ(got.qx, want.qx) << "k " << k;
    EXPECT_EQ(got.qsum, want.qsum) << "k " << k;
    ASSERT_EQ(got.sx.size(), want.sx.size());
    EXPECT_EQ(0, std::memcmp(got.sx.data(), want.sx.data(), got.sx.size() * sizeof(float))) << "k " << k;
  }
}

TEST_P(QGemmIsaTest, MatchesReferenceOnSweep) {
  uint32_t seed = 1000;
  for (const Shape& s : SweepShapes()) {
    SCOPED_TRACE(Describe(s));
    const int group = s.group_size == 0 ? s.cols : s.group_size;
    const QMatrix w = RandomQMatrix(s.bits, s.rows, s.cols, group, s.asymmetric, seed++);
    const std::vector<float> bias = s.bias ? RandomBias(s.rows, seed++) : std::vector<float>{};
    const std::vector<float> x = RandomActivations(s.batch, static_cast<size_t>(s.cols), seed++);
    const Exact exact = EvaluateExactly(w, QuantizeRows(famq_qd8_f32_quantize__ref, x, s.batch, s.cols), bias, s.batch);
    const std::vector<float> want = RunLinear(w, bias, x, s.batch, Isa::kRef, 1);
    const std::vector<float> got = RunLinear(w, bias, x, s.batch, GetParam(), s.threads);
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_NEAR(got[i], want[i], kQGemmMaxRelError * exact.magnitude[i])
          << "batch row " << i / static_cast<size_t>(s.rows) << ", output " << i % static_cast<size_t>(s.rows);
    }
  }
}

// Every batch tail of the row-blocked kernels (1..9 and around 64) on one
// shape per width, with rows that leave a partial last tile.
TEST_P(QGemmIsaTest, BatchTails) {
  for (int bits : {2, 3, 4, 8}) {
    const QMatrix w = RandomQMatrix(bits, 67, 160, 32, true, 77u + static_cast<uint32_t>(bits));
    const std::vector<float> bias = RandomBias(67, 5);
    for (size_t batch : {1u, 2u, 3u, 4u, 5u, 6u, 7u, 8u, 9u, 15u, 16u, 17u, 63u, 64u, 65u}) {
      SCOPED_TRACE("bits " + std::to_string(bits) + " batch " + std::to_string(batch));
      const std::vector<float> x = RandomActivations(batch, 160, static_cast<uint32_t>(batch));
      const Exact exact = EvaluateExactly(w, QuantizeRows(famq_qd8_f32_quantize__ref, x, batch, 160), bias, batch);
      const std::vector<float> want = RunLinear(w, bias, x, batch, Isa::kRef, 1);
      const std::vector<float> got = RunLinear(w, bias, x, batch, GetParam(), 2);
      ASSERT_EQ(got.size(), want.size());
      for (size_t i = 0; i < got.size(); ++i) {
        ASSERT_NEAR(got[i], want[i], kQGemmMaxRelError * exact.magnitude[i]) << "output " << i;
      }
    }
  }
}

// Zero activations give exactly the bias; a smaller batch than max_batch
// leaves the rest of y alone; the same object runs repeatedly.
TEST_P(QGemmIsaTest, ZeroInputGivesBiasAndBatchBelowMax) {
  const QMatrix w = RandomQMatrix(4, 17, 64, 32, true, 3);
  const std::vector<float> bias = RandomBias(17, 4);
  auto lin = WeightOnlyLinear::Create(w, bias, 4, GetParam(), "zero");
  ASSERT_TRUE(lin.ok()) << lin.status().ToString();
  std::vector<float> x(4 * 64, 0.0f);
  std::vector<float> y(4 * 17, -7.0f);
  for (int repeat = 0; repeat < 2; ++repeat) {
    ASSERT_TRUE(lin->Run(x.data(), y.data(), 2, nullptr).ok());
    for (size_t i = 0; i < 2 * 17; ++i) EXPECT_EQ(y[i], bias[i % 17]) << i;
    for (size_t i = 2 * 17; i < y.size(); ++i) EXPECT_EQ(y[i], -7.0f) << i;
  }
}

std::string IsaParamName(const testing::TestParamInfo<Isa>& info) { return IsaName(info.param); }

INSTANTIATE_TEST_SUITE_P(AllIsas, QGemmIsaTest, testing::ValuesIn(kAllIsas), IsaParamName);

// ---------------------------------------------------------------------------
// Activation quantization edge cases, for the reference and every quantizer.

std::vector<QuantizeRowFn> AvailableQuantizers() {
  std::vector<QuantizeRowFn> fns;
  for (Isa isa : kAllIsas) {
    if (IsaAvailable(isa)) fns.push_back(GetQGemmKernels(isa)->quantize_row);
  }
  return fns;
}

TEST(QGemmQuantize, AllZeroAndSubnormalBlocksAreZero) {
  for (QuantizeRowFn quantize : AvailableQuantizers()) {
    std::vector<float> x(64, 0.0f);
    for (int j = 32; j < 64; ++j) x[j] = (j % 2 ? 1.0f : -1.0f) * 1e-40f;  // subnormal
    x[40] = 0x1p-101f;                                                     // normal, but below kQMinBlockAmax
    std::vector<int8_t> qx(64, 99);
    float sx[2] = {-1.0f, -1.0f};
    int32_t qsum[2] = {-1, -1};
    quantize(64, x.data(), qx.data(), sx, qsum);
    for (int8_t q : qx) EXPECT_EQ(q, 0);
    EXPECT_EQ(sx[0], 0.0f);
    EXPECT_EQ(sx[1], 0.0f);
    EXPECT_EQ(qsum[0], 0);
    EXPECT_EQ(qsum[1], 0);
  }
}

TEST(QGemmQuantize, OneHugeValueTakesTheBlock) {
  for (QuantizeRowFn quantize : AvailableQuantizers()) {
    std::vector<float> x(32, 1.0f);
    x[5] = -3e30f;
    x[6] = 0.9e30f / 127.0f * 63.5f;  // a small share of amax still quantizes
    std::vector<int8_t> qx(32);
    float sx = 0.0f;
    int32_t qsum = 0;
    quantize(32, x.data(), qx.data(), &sx, &qsum);
    EXPECT_EQ(qx[5], -127);
    EXPECT_EQ(qx[6], static_cast<int8_t>(std::nearbyint(x[6] * (127.0f / 3e30f))));
    for (int j = 0; j < 32; ++j) {
      if (j != 5 && j != 6) {
        EXPECT_EQ(qx[j], 0) << j;
      }
    }
    EXPECT_EQ(sx, 3e30f / 127.0f);
    EXPECT_EQ(qsum, -127 + qx[6]);
  }
}

TEST(QGemmQuantize, TiesRoundToEven) {
  for (QuantizeRowFn quantize : AvailableQuantizers()) {
    // amax 127 makes 127 / amax exactly 1, so x * inv is x itself.
    std::vector<float> x(32, 0.0f);
    const float values[] = {127.0f, 0.5f, 1.5f, 2.5f, 3.5f, -0.5f, -1.5f, -2.5f, -3.5f, 126.5f, -126.5f, 4.4999995f};
    const int want[] = {127, 0, 2, 2, 4, 0, -2, -2, -4, 126, -126, 4};
    for (size_t j = 0; j < std::size(values); ++j) x[j] = values[j];
    std::vector<int8_t> qx(32);
    float sx = 0.0f;
    int32_t qsum = 0;
    quantize(32, x.data(), qx.data(), &sx, &qsum);
    int32_t sum = 0;
    for (size_t j = 0; j < std::size(values); ++j) {
      EXPECT_EQ(qx[j], want[j]) << "x = " << values[j];
      sum += want[j];
    }
    EXPECT_EQ(qsum, sum);
    EXPECT_EQ(sx, 1.0f);
  }
}

// ---------------------------------------------------------------------------
// The packed layout, byte by byte as qgemm.h documents it.

TEST(QGemmPack, LayoutMatchesHeaderComment) {
  for (QGemmPacking packing : {QGemmPacking{3, true, 8}, QGemmPacking{3, false, 128}, QGemmPacking{1, false, 0}}) {
    const int bits = packing.nibbles ? 4 : 8;
    const QMatrix w = RandomQMatrix(bits, 5, 96, 32, true, 9);
    const QGemmPackedSizes sizes = PackedSizes(w, packing);
    const size_t R = static_cast<size_t>(packing.tile_rows);
    ASSERT_EQ(sizes.tiles, (5 + R - 1) / R);
    std::vector<uint8_t> codes(sizes.code_bytes);
    std::vector<float> scales(sizes.scale_count);
    std::vector<uint8_t> offsets(sizes.offset_bytes);
    PackQMatrix(w, packing, codes.data(), scales.data(), offsets.data());
    auto u = [&](size_t row, size_t col) {
      return static_cast<uint8_t>((row < 5 ? w.codes[row * 96 + col] : 0) + packing.code_bias);
    };
    const size_t block_bytes = R * (packing.nibbles ? 16 : 32);
    for (size_t t = 0; t < sizes.tiles; ++t) {
      for (size_t b = 0; b < 3; ++b) {
        const uint8_t* block = codes.data() + (t * 3 + b) * block_bytes;
        for (size_t i = 0; i < R; ++i) {
          for (size_t e = 0; e < 4; ++e) {
            const size_t row = t * R + i;
            if (packing.nibbles) {
              for (size_t p = 0; p < 4; ++p) {
                const uint8_t byte = block[(p * R + i) * 4 + e];
                EXPECT_EQ(byte & 0x0F, u(row, 32 * b + 8 * p + e) & 0x0F);
                EXPECT_EQ(byte >> 4, u(row, 32 * b + 8 * p + 4 + e) & 0x0F);
              }
            } else {
              for (size_t q = 0; q < 8; ++q) EXPECT_EQ(block[(q * R + i) * 4 + e], u(row, 32 * b + 4 * q + e));
            }
          }
        }
        for (size_t i = 0; i < R; ++i) {
          const size_t row = t * R + i;
          EXPECT_EQ(scales[(t * 3 + b) * R + i], row < 5 ? w.scales[row * 3 + b] : 0.0f);
          EXPECT_EQ(offsets[(t * 3 + b) * R + i],
                    static_cast<uint8_t>((row < 5 ? w.zeros[row * 3 + b] : 0) + packing.code_bias));
        }
      }
    }
  }
}

// The file's 4-bit layout (two signed codes per byte, even column low).
std::vector<uint8_t> NibblesOf(const QMatrix& w) {
  std::vector<uint8_t> out(w.codes.size() / 2);
  for (size_t i = 0; i < out.size(); ++i) {
    out[i] = static_cast<uint8_t>((w.codes[2 * i] & 0x0F) | ((w.codes[2 * i + 1] & 0x0F) << 4));
  }
  return out;
}

// Packing from a view in place (a record's nibbles, or a QMatrix) and in tile
// ranges (as threads split it) writes exactly PackQMatrix's bytes.
TEST(QGemmPack, ViewsAndTileRangesPackLikeTheQMatrix) {
  for (QGemmPacking packing : {QGemmPacking{8, true, 8}, QGemmPacking{16, true, 8}, QGemmPacking{1, false, 0},
                               QGemmPacking{8, false, 0}, QGemmPacking{16, false, 128}}) {
    for (int bits : {4, 8}) {
      if (packing.nibbles && bits == 8) continue;
      for (bool asym : {false, true}) {
        const QMatrix w = RandomQMatrix(bits, 37, 128, 64, asym, 17);
        const QGemmPackedSizes sizes = PackedSizes(w, packing);
        std::vector<uint8_t> codes(sizes.code_bytes), offsets(sizes.offset_bytes);
        std::vector<float> scales(sizes.scale_count);
        PackQMatrix(w, packing, codes.data(), scales.data(), offsets.data());

        std::vector<uint8_t> nibbles;
        QMatrixView v = ViewOf(w);
        if (bits == 4) {
          nibbles = NibblesOf(w);
          v.codes = nibbles.data();
          v.nibbles = true;
          v.code_count = nibbles.size();
        }
        ASSERT_TRUE(ValidateQMatrixView(v, "v").ok());
        std::vector<uint8_t> codes2(sizes.code_bytes, 0xAA), offsets2(sizes.offset_bytes, 0xAA);
        std::vector<float> scales2(sizes.scale_count, -1.0f);
        // Uneven ranges, as pthreadpool items split them.
        for (size_t t = 0; t < sizes.tiles; t += 2) {
          PackQMatrixTiles(v, packing, t, std::min(t + 2, sizes.tiles), codes2.data(), scales2.data(),
                           offsets2.data());
        }
        EXPECT_EQ(codes, codes2) << "tile_rows " << packing.tile_rows << " bits " << bits << " asym " << asym;
        EXPECT_EQ(scales, scales2);
        EXPECT_EQ(offsets, offsets2);

        // A record with fp16 scales (and, symmetric, no zero points) packs
        // like the QMatrix holding the widened scales.
        QMatrix w16 = w;
        std::vector<uint16_t> half(w.scales.size());
        for (size_t i = 0; i < half.size(); ++i) {
          half[i] = F32ToF16(w.scales[i]);
          w16.scales[i] = F16ToF32(half[i]);
        }
        const QGemmPackedSizes sizes16 = PackedSizes(w16, packing);
        std::vector<uint8_t> codes16(sizes16.code_bytes), offsets16(sizes16.offset_bytes);
        std::vector<float> scales16(sizes16.scale_count);
        PackQMatrix(w16, packing, codes16.data(), scales16.data(), offsets16.data());
        QMatrixView v16 = v;
        v16.scales = nullptr;
        v16.scales_f16 = half.data();
        if (!asym) {
          v16.zeros = nullptr;
          v16.zero_count = 0;
        }
        ASSERT_TRUE(ValidateQMatrixView(v16, "v16").ok());
        std::fill(codes2.begin(), codes2.end(), 0xAA);
        std::fill(offsets2.begin(), offsets2.end(), 0xAA);
        std::fill(scales2.begin(), scales2.end(), -1.0f);
        PackQMatrixTiles(v16, packing, 0, sizes.tiles, codes2.data(), scales2.data(), offsets2.data());
        EXPECT_EQ(codes16, codes2);
        EXPECT_EQ(scales16, scales2);
        EXPECT_EQ(offsets16, offsets2);
        v16.scales = w.scales.data();  // both kinds of scales: refused
        EXPECT_FALSE(ValidateQMatrixView(v16, "v16").ok());

        // Rows read back from the packed form equal QMatrix::Dequant bit for bit.
        QGemmPackedRows rows;
        rows.weights = QGemmWeights{codes.data(), scales.data(), offsets.data(), 37, 128, 2};
        rows.packing = packing;
        rows.bits = bits;
        rows.groups = 2;
        std::vector<float> row(128);
        for (int r = 0; r < 37; ++r) {
          DequantPackedRow(rows, static_cast<size_t>(r), row.data());
          for (int c = 0; c < 128; ++c) {
            ASSERT_EQ(row[static_cast<size_t>(c)], w.Dequant(r, c)) << "row " << r << " col " << c;
          }
        }
      }
    }
  }
}

// The file's bit-stream layout of 2-, 3- and 6-bit codes (code_packing.h).
std::vector<uint8_t> BitStreamOf(const QMatrix& w) {
  std::vector<uint8_t> out(PackedCodeBytes(w.bits, w.codes.size()));
  PackCodes(w.bits, w.codes.data(), w.codes.size(), out.data());
  return out;
}

// A bit-stream view (a 2/3/6-bit record read in place) packs byte for byte
// like the QMatrix holding the same codes one per byte, in every ISA's 8-bit
// packing and in tile ranges; its rows read back as QMatrix::Dequant; and the
// linear built from it computes exactly what the one built from the QMatrix does.
TEST(QGemmPack, BitStreamViewsPackLikeTheQMatrix) {
  for (Isa isa : kAllIsas) {
    const QGemmKernels* kernels = GetQGemmKernels(isa);
    if (kernels == nullptr) continue;  // not in this build
    const QGemmPacking packing = kernels->w8_packing;
    for (int bits : {2, 3, 6}) {
      for (bool asym : {false, true}) {
        // 96 columns: 3 blocks (an odd count) in groups of 32; 128 in groups of 64.
        for (const auto& [cols, group] : {std::pair{96, 32}, std::pair{128, 64}}) {
          SCOPED_TRACE(std::string(IsaName(isa)) + " bits " + std::to_string(bits) + " asym " +
                       std::to_string(asym) + " cols " + std::to_string(cols));
          const QMatrix w = RandomQMatrix(bits, 37, cols, group, asym, 29u + static_cast<uint32_t>(bits));
          const QGemmPackedSizes sizes = PackedSizes(w, packing);
          std::vector<uint8_t> codes(sizes.code_bytes), offsets(sizes.offset_bytes);
          std::vector<float> scales(sizes.scale_count);
          PackQMatrix(w, packing, codes.data(), scales.data(), offsets.data());

          const std::vector<uint8_t> stream = BitStreamOf(w);
          QMatrixView v = ViewOf(w);
          v.codes = stream.data();
          v.bitstream = true;
          v.code_count = stream.size();
          ASSERT_EQ(stream.size(), 37u * static_cast<size_t>(cols) * static_cast<size_t>(bits) / 8);
          ASSERT_TRUE(ValidateQMatrixView(v, "v").ok()) << ValidateQMatrixView(v, "v").message();
          std::vector<uint8_t> codes2(sizes.code_bytes, 0xAA), offsets2(sizes.offset_bytes, 0xAA);
          std::vector<float> scales2(sizes.scale_count, -1.0f);
          for (size_t t = 0; t < sizes.tiles; t += 3) {
            PackQMatrixTiles(v, packing, t, std::min(t + 3, sizes.tiles), codes2.data(), scales2.data(),
                             offsets2.data());
          }
          EXPECT_EQ(codes, codes2);
          EXPECT_EQ(scales, scales2);
          EXPECT_EQ(offsets, offsets2);

          QGemmPackedRows rows;
          const size_t groups = static_cast<size_t>(cols / group);
          rows.weights = QGemmWeights{codes2.data(), scales2.data(), offsets2.data(), 37, static_cast<size_t>(cols),
                                      static_cast<size_t>(group / kQBlock)};
          rows.packing = packing;
          rows.bits = bits;
          rows.groups = groups;
          std::vector<float> row(static_cast<size_t>(cols));
          for (int r = 0; r < 37; ++r) {
            DequantPackedRow(rows, static_cast<size_t>(r), row.data());
            for (int c = 0; c < cols; ++c) ASSERT_EQ(row[static_cast<size_t>(c)], w.Dequant(r, c)) << r << ", " << c;
          }

          if (!IsaAvailable(isa)) continue;
          auto from_view = WeightOnlyLinear::Create(v, {}, 3, isa, "view", nullptr);
          auto from_matrix = WeightOnlyLinear::Create(w, {}, 3, isa, "matrix");
          ASSERT_TRUE(from_view.ok()) << from_view.status().message();
          ASSERT_TRUE(from_matrix.ok()) << from_matrix.status().message();
          const std::vector<float> x = RandomActivations(3, static_cast<size_t>(cols), 5);
          std::vector<float> y1(3 * 37), y2(3 * 37);
          ASSERT_TRUE(from_view->Run(x.data(), y1.data(), 3, nullptr).ok());
          ASSERT_TRUE(from_matrix->Run(x.data(), y2.data(), 3, nullptr).ok());
          EXPECT_EQ(y1, y2);
        }
      }
    }
  }
}

TEST(QGemmPack, BitStreamViewValidation) {
  const QMatrix w = RandomQMatrix(6, 4, 64, 32, false, 3);
  const std::vector<uint8_t> stream = BitStreamOf(w);
  QMatrixView v = ViewOf(w);
  v.codes = stream.data();
  v.bitstream = true;
  v.code_count = stream.size() - 1;  // a short record
  Status s = ValidateQMatrixView(v, "rec");
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("rec: expected 192 code bytes"), std::string::npos) << s.message();
  v.code_count = stream.size();
  EXPECT_TRUE(ValidateQMatrixView(v, "rec").ok());
  v.bits = 4;  // a bit stream is 2, 3 or 6 bits
  s = ValidateQMatrixView(v, "rec");
  EXPECT_NE(s.message().find("only 2-, 3- and 6-bit codes are stored as a bit stream"), std::string::npos)
      << s.message();
  v.bits = 6;
  v.nibbles = true;  // not both
  EXPECT_EQ(ValidateQMatrixView(v, "rec").code(), StatusCode::kInvalidArgument);
  v.nibbles = false;
  v.bits = 5;
  s = ValidateQMatrixView(v, "rec");
  EXPECT_NE(s.message().find("take 2-, 3-, 4-, 6- or 8-bit codes, not 5"), std::string::npos) << s.message();
}

TEST(QGemmPack, ViewValidationNamesWhatIsWrong) {
  const QMatrix w = RandomQMatrix(4, 4, 64, 32, true, 3);
  std::vector<uint8_t> nibbles = NibblesOf(w);
  QMatrixView v = ViewOf(w);
  v.codes = nibbles.data();
  v.nibbles = true;
  v.code_count = nibbles.size() - 1;  // a short record
  Status s = ValidateQMatrixView(v, "rec");
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("rec: expected 128 code bytes"), std::string::npos) << s.message();
  v.code_count = nibbles.size();
  std::vector<int8_t> zeros = w.zeros;
  zeros[5] = 9;  // outside [-8, 7]
  v.zeros = zeros.data();
  s = ValidateQMatrixView(v, "rec");
  EXPECT_NE(s.message().find("zero point 9 of group 5"), std::string::npos) << s.message();
  v.zeros = w.zeros.data();
  std::vector<float> scales = w.scales;
  scales[2] = std::nanf("");
  v.scales = scales.data();
  EXPECT_EQ(ValidateQMatrixView(v, "rec").code(), StatusCode::kInvalidArgument);
  v.scales = w.scales.data();
  v.bits = 8;  // nibbles are 4-bit only
  EXPECT_EQ(ValidateQMatrixView(v, "rec").code(), StatusCode::kInvalidArgument);
}

// ---------------------------------------------------------------------------
// Shape and argument checks.

TEST(WeightOnlyLinearTest, RejectsBadShapesNamingThem) {
  QMatrix w = RandomQMatrix(4, 3, 64, 32, false, 1);
  w.cols = 48;  // not a multiple of 32
  auto r = WeightOnlyLinear::Create(w, {}, 1, Isa::kRef, "layer.q");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("layer.q"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("cols 48"), std::string::npos) << r.status().message();

  w = RandomQMatrix(4, 3, 96, 32, false, 1);
  w.group_size = 48;
  r = WeightOnlyLinear::Create(w, {}, 1, Isa::kRef, "g");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("group_size 48"), std::string::npos) << r.status().message();

  w = RandomQMatrix(8, 3, 96, 32, false, 1);
  w.group_size = 64;  // does not divide 96
  EXPECT_EQ(WeightOnlyLinear::Create(w, {}, 1, Isa::kRef, "g").status().code(), StatusCode::kInvalidArgument);

  for (int bits : {0, 1, 5, 7, 9}) {
    w = RandomQMatrix(4, 3, 64, 32, false, 1);
    w.bits = bits;
    EXPECT_EQ(WeightOnlyLinear::Create(w, {}, 1, Isa::kRef, "b").status().code(), StatusCode::kInvalidArgument) << bits;
  }

  w = RandomQMatrix(3, 3, 64, 32, false, 1);
  w.codes[5] = 4;  // outside [-4, 3]
  EXPECT_EQ(WeightOnlyLinear::Create(w, {}, 1, Isa::kRef, "c3").status().code(), StatusCode::kInvalidArgument);
  w = RandomQMatrix(2, 3, 64, 32, true, 1);
  w.zeros[1] = -3;  // outside [-2, 1]
  EXPECT_EQ(WeightOnlyLinear::Create(w, {}, 1, Isa::kRef, "z2").status().code(), StatusCode::kInvalidArgument);

  w = RandomQMatrix(4, 3, 64, 32, false, 1);
  w.codes[5] = 8;  // outside [-8, 7]
  EXPECT_EQ(WeightOnlyLinear::Create(w, {}, 1, Isa::kRef, "c").status().code(), StatusCode::kInvalidArgument);

  w = RandomQMatrix(4, 3, 64, 32, false, 1);
  w.scales[1] = std::nanf("");
  EXPECT_EQ(WeightOnlyLinear::Create(w, {}, 1, Isa::kRef, "s").status().code(), StatusCode::kInvalidArgument);

  w = RandomQMatrix(4, 3, 64, 32, false, 1);
  w.zeros.pop_back();
  EXPECT_EQ(WeightOnlyLinear::Create(w, {}, 1, Isa::kRef, "z").status().code(), StatusCode::kInvalidArgument);

  w = RandomQMatrix(4, 3, 64, 32, false, 1);
  const std::vector<float> short_bias(2, 0.0f);
  EXPECT_EQ(WeightOnlyLinear::Create(w, short_bias, 1, Isa::kRef, "bias").status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(WeightOnlyLinear::Create(w, {}, 0, Isa::kRef, "max_batch").status().code(), StatusCode::kInvalidArgument);
}

TEST(WeightOnlyLinearTest, RunChecksBatchAndPointers) {
  const QMatrix w = RandomQMatrix(8, 5, 64, 64, true, 2);
  auto lin = WeightOnlyLinear::Create(w, {}, 3, Isa::kRef, "layer.o");
  ASSERT_TRUE(lin.ok());
  std::vector<float> x(4 * 64, 1.0f);
  std::vector<float> y(4 * 5);
  Status st = lin->Run(x.data(), y.data(), 4, nullptr);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("batch 4 exceeds max_batch 3"), std::string::npos) << st.message();
  EXPECT_TRUE(lin->Run(x.data(), y.data(), 0, nullptr).ok());
  EXPECT_EQ(lin->Run(nullptr, y.data(), 1, nullptr).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(lin->bits(), 8);
}

TEST(WeightOnlyLinearTest, UnavailableIsaIsRefusedAndPackedBytesShrinkWithBits) {
  for (Isa isa : kAllIsas) {
    const QMatrix w4 = RandomQMatrix(4, 64, 256, 32, false, 1);
    auto lin4 = WeightOnlyLinear::Create(w4, {}, 1, isa, "p");
    if (!IsaAvailable(isa)) {
      EXPECT_EQ(lin4.status().code(), StatusCode::kUnsupported) << IsaName(isa);
      continue;
    }
    ASSERT_TRUE(lin4.ok());
    const QMatrix w8 = RandomQMatrix(8, 64, 256, 32, false, 1);
    auto lin8 = WeightOnlyLinear::Create(w8, {}, 1, isa, "p");
    ASSERT_TRUE(lin8.ok());
    // scales (4 bytes) and offsets (1 byte) per 32 weights come on top.
    EXPECT_GE(lin8->packed_bytes(), 64u * 256u + 64u * 8u * 5u) << IsaName(isa);
    if (isa != Isa::kRef) {  // the reference keeps one int8 per 4-bit code
      EXPECT_EQ(lin4->packed_bytes(), 64u * 256u / 2u + 64u * 8u * 5u) << IsaName(isa);
    }
    // 3- and 2-bit codes are held as 8-bit ones (one byte per weight in memory).
    for (int bits : {2, 3}) {
      auto low = WeightOnlyLinear::Create(RandomQMatrix(bits, 64, 256, 32, false, 1), {}, 1, isa, "p");
      ASSERT_TRUE(low.ok());
      EXPECT_EQ(low->packed_bytes(), lin8->packed_bytes()) << IsaName(isa) << " bits " << bits;
      EXPECT_EQ(low->bits(), bits);
    }
    // Move-only: a moved-to layer still runs.
    WeightOnlyLinear moved = std::move(lin4).value();
    std::vector<float> x(256, 1.0f);
    std::vector<float> y(64);
    EXPECT_TRUE(moved.Run(x.data(), y.data(), 1, nullptr).ok());
  }
}

// Layers packed into a shared arena compute exactly what layers with their
// own buffers compute, and keep the arena alive after the caller drops it.
TEST(WeightOnlyLinearTest, ArenaPackedLayersMatchOwnBuffersAndOutliveTheCallersArena) {
  for (Isa isa : kAllIsas) {
    if (!IsaAvailable(isa)) continue;
    auto arena = std::make_shared<HugePageArena>(size_t{4} << 20);
    std::vector<WeightOnlyLinear> shared, own;
    for (int bits : {4, 8, 3}) {
      const QMatrix w = RandomQMatrix(bits, 45, 128, 32, true, static_cast<uint64_t>(bits));
      const std::vector<float> bias(45, 0.25f);
      auto a = WeightOnlyLinear::Create(ViewOf(w), bias, 3, isa, "a", nullptr, arena);
      auto b = WeightOnlyLinear::Create(ViewOf(w), bias, 3, isa, "b", nullptr);
      ASSERT_TRUE(a.ok() && b.ok()) << IsaName(isa);
      shared.push_back(std::move(*a));
      own.push_back(std::move(*b));
    }
    EXPECT_EQ(arena.use_count(), 4);  // the caller's and one per layer
    arena.reset();                    // the layers keep it
    std::vector<float> x(3 * 128);
    for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(static_cast<int>(i % 13) - 6) * 0.37f;
    for (size_t l = 0; l < shared.size(); ++l) {
      std::vector<float> ya(3 * 45, -1.0f), yb(3 * 45, -2.0f);
      ASSERT_TRUE(shared[l].Run(x.data(), ya.data(), 3, nullptr).ok());
      ASSERT_TRUE(own[l].Run(x.data(), yb.data(), 3, nullptr).ok());
      EXPECT_EQ(ya, yb) << IsaName(isa) << " layer " << l;
      EXPECT_EQ(shared[l].packed_bytes(), own[l].packed_bytes());
    }
  }
}

// ---------------------------------------------------------------------------
// ISA names, detection and forcing.

TEST(IsaTest, NamesRoundTrip) {
  for (Isa isa : kAllIsas) {
    auto parsed = ParseIsa(IsaName(isa));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, isa);
  }
  auto bad = ParseIsa("sse9");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("'sse9'"), std::string::npos);
  EXPECT_EQ(ParseIsa("AVX2").status().code(), StatusCode::kInvalidArgument);  // exact names only
}

TEST(IsaTest, DetectedIsAvailableAndRefAlways) {
  EXPECT_TRUE(IsaAvailable(Isa::kRef));
  EXPECT_TRUE(IsaAvailable(DetectIsa()));
  std::string available;
  for (Isa isa : kAllIsas) available += IsaAvailable(isa) ? std::string(IsaName(isa)) + " " : "";
  std::printf("[          ] detected ISA: %s; available: %s\n", IsaName(DetectIsa()), available.c_str());
#if defined(__x86_64__)
  EXPECT_FALSE(IsaAvailable(Isa::kNeon));
  EXPECT_FALSE(IsaAvailable(Isa::kNeonDot));
#elif defined(__aarch64__)
  EXPECT_TRUE(IsaAvailable(Isa::kNeon));  // Advanced SIMD is AArch64 baseline
  EXPECT_FALSE(IsaAvailable(Isa::kAvx2));
#endif
}

TEST(IsaTest, ForcedNamesAreParsedAndRefusedWhenUnavailable) {
  EXPECT_EQ(ResolveForcedIsa(nullptr).value(), DetectIsa());
  EXPECT_EQ(ResolveForcedIsa("").value(), DetectIsa());
  EXPECT_EQ(ResolveForcedIsa("ref").value(), Isa::kRef);
  auto unknown = ResolveForcedIsa("fastest");
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(unknown.status().message().find("FAMQ_FORCE_ISA"), std::string::npos);
  EXPECT_NE(unknown.status().message().find("'fastest'"), std::string::npos);
  for (Isa isa : kAllIsas) {
    auto r = ResolveForcedIsa(IsaName(isa));
    if (IsaAvailable(isa)) {
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      EXPECT_EQ(*r, isa);
    } else {
      ASSERT_FALSE(r.ok()) << IsaName(isa);
      EXPECT_EQ(r.status().code(), StatusCode::kUnsupported);
      EXPECT_NE(r.status().message().find(std::string("'") + IsaName(isa) + "'"), std::string::npos)
          << r.status().message();
    }
  }
}

TEST(IsaTest, EnvironmentAndProgrammaticOverride) {
  const char* saved = std::getenv("FAMQ_FORCE_ISA");
  const std::string saved_value = saved != nullptr ? saved : "";
  ASSERT_TRUE(ForceIsa(std::nullopt).ok());

  unsetenv("FAMQ_FORCE_ISA");
  EXPECT_EQ(ActiveIsa().value(), DetectIsa());
  setenv("FAMQ_FORCE_ISA", "ref", 1);
  EXPECT_EQ(ActiveIsa().value(), Isa::kRef);
  setenv("FAMQ_FORCE_ISA", "warp-drive", 1);
  EXPECT_EQ(ActiveIsa().status().code(), StatusCode::kInvalidArgument);

  // The programmatic pin wins over the environment.
  ASSERT_TRUE(ForceIsa(Isa::kRef).ok());
  EXPECT_EQ(ActiveIsa().value(), Isa::kRef);
  for (Isa isa : kAllIsas) {
    if (!IsaAvailable(isa)) {
      EXPECT_EQ(ForceIsa(isa).code(), StatusCode::kUnsupported) << IsaName(isa);
      EXPECT_EQ(ActiveIsa().value(), Isa::kRef);  // a refused pin changes nothing
    }
  }
  ASSERT_TRUE(ForceIsa(std::nullopt).ok());
  EXPECT_EQ(ActiveIsa().status().code(), StatusCode::kInvalidArgument);  // env again

  if (saved != nullptr) {
    setenv("FAMQ_FORCE_ISA", saved_value.c_str(), 1);
  } else {
    unsetenv("FAMQ_FORCE_ISA");
  }
}

}  // namespace
}  // namespace famq
