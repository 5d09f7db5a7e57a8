// The KV-cache attention kernels (kernels/attention.h): the cache writers
// against their definitions (every ISA's f16 writer against F32ToF16), the
// reference against double-precision attention, and every SIMD kernel this
// CPU runs, per query and per block, bit-identical to the per-query
// reference (the specification fixes the order of every fp32 operation).
#include "kernels/attention.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/isa.h"
#include "model/dtype.h"

namespace famq {
namespace {

float Bits(uint32_t b) {
  float f;
  std::memcpy(&f, &b, sizeof f);
  return f;
}

TEST(KvType, NamesParseAndSizes) {
  for (KvType t : {KvType::kF32, KvType::kF16, KvType::kInt8}) {
    auto p = ParseKvType(KvTypeName(t));
    ASSERT_TRUE(p.ok());
    EXPECT_EQ(*p, t);
  }
  auto bad = ParseKvType("fp16");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("f16, f32, int8"), std::string::npos);
  EXPECT_EQ(KvHeadBytes(KvType::kF32, 128), 512u);
  EXPECT_EQ(KvHeadBytes(KvType::kF16, 128), 256u);
  EXPECT_EQ(KvHeadBytes(KvType::kInt8, 128), 132u);
}

// Every binary16 value survives the round trip; every midpoint between two
// neighbours goes to the one with the even code; the edges of the range.
TEST(KvF16, RoundsToNearestEven) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = F16ToF32(static_cast<uint16_t>(h));
    const uint16_t back = F32ToF16(f);
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(F16ToF32(back))) << h;
      continue;
    }
    ASSERT_EQ(back, h) << "half 0x" << std::hex << h;
    // Midpoint to the next code of the same sign (finite neighbours only).
    if ((h & 0x7fffu) < 0x7bffu) {
      const double lo = F16ToF32(static_cast<uint16_t>(h)), hi = F16ToF32(static_cast<uint16_t>(h + 1));
      const float mid = static_cast<float>((lo + hi) / 2);  // exact in binary32
      ASSERT_EQ(static_cast<double>(mid), (lo + hi) / 2);
      const uint16_t even = (h & 1u) == 0 ? static_cast<uint16_t>(h) : static_cast<uint16_t>(h + 1);
      ASSERT_EQ(F32ToF16(mid), even) << "midpoint above 0x" << std::hex << h;
      ASSERT_EQ(F32ToF16(std::nextafter(mid, 0.0f)), h);
      ASSERT_EQ(F32ToF16(std::nextafter(mid, mid * 2)), h + 1);
    }
  }
  EXPECT_EQ(F32ToF16(65519.996f), 0x7bffu);                  // below the midpoint to 65536: 65504
  EXPECT_EQ(F32ToF16(65520.0f), 0x7c00u);                    // the tie rounds (to even) to inf
  EXPECT_EQ(F32ToF16(-1e30f), 0xfc00u);
  EXPECT_EQ(F32ToF16(Bits(0x33000000u)), 0x0000u);           // 2^-25: a tie between 0 and 2^-24, to 0
  EXPECT_EQ(F32ToF16(Bits(0x33000001u)), 0x0001u);           // just above it
  EXPECT_EQ(F32ToF16(Bits(0x00000001u)), 0x0000u);           // fp32 subnormal
  EXPECT_EQ(F32ToF16(Bits(0x80000000u)), 0x8000u);           // -0
}

TEST(KvInt8, StoresCodesAndScalePerHead) {
  std::mt19937 rng(7);
  std::normal_distribution<float> dist(0.0f, 3.0f);
  std::vector<float> x(64);
  for (float& v : x) v = dist(rng);
  x[5] = -20.0f;  // the largest magnitude: its code is -127
  std::vector<int8_t> q(64);
  float scale = -1;
  StoreKv(KvType::kInt8, x.data(), x.size(), q.data(), &scale);
  EXPECT_EQ(scale, 20.0f / 127.0f);
  EXPECT_EQ(q[5], -127);
  for (size_t d = 0; d < x.size(); ++d) {
    EXPECT_EQ(q[d], static_cast<int8_t>(std::rint(x[d] * (127.0f / 20.0f)))) << d;
    EXPECT_LE(std::fabs(q[d] * scale - x[d]), scale * 0.5f + 1e-6f) << d;
  }
  std::vector<float> zero(64, 0.0f);
  zero[3] = 1e-31f;  // below kKvMinAmax: a zero head
  StoreKv(KvType::kInt8, zero.data(), zero.size(), q.data(), &scale);
  EXPECT_EQ(scale, 0.0f);
  for (int8_t c : q) EXPECT_EQ(c, 0);
}

// A cache of `len` positions x `heads` kv heads x hd, written by StoreKv.
struct Cache {
  KvType type;
  size_t hd, heads, len;
  std::vector<uint8_t> k, v;
  std::vector<float> ks, vs;
  std::vector<float> kf, vf;  // the values as stored (dequantized), [len][heads][hd]

  Cache(KvType t, size_t hd_, size_t heads_, size_t len_, uint32_t seed) : type(t), hd(hd_), heads(heads_), len(len_) {
    const size_t es = KvElementSize(t), n = len * heads * hd;
    k.resize(n * es);
    v.resize(n * es);
    ks.resize(len * heads);
    vs.resize(len * heads);
    kf.resize(n);
    vf.resize(n);
    std::mt19937 rng(seed);
    std::normal_distribution<float> dist(0.0f, 1.5f);
    std::vector<float> x(hd);
    for (int which = 0; which < 2; ++which) {
      std::vector<uint8_t>& dst = which == 0 ? k : v;
      std::vector<float>& sc = which == 0 ? ks : vs;
      std::vector<float>& f = which == 0 ? kf : vf;
      for (size_t i = 0; i < len * heads; ++i) {
        for (float& e : x) e = dist(rng);
        StoreKv(t, x.data(), hd, &dst[i * hd * es], &sc[i]);
        for (size_t d = 0; d < hd; ++d) {
          const uint8_t* p = &dst[(i * hd + d) * es];
          float val = 0;
          if (t == KvType::kF32) {
            std::memcpy(&val, p, 4);
          } else if (t == KvType::kF16) {
            uint16_t h;
            std::memcpy(&h, p, 2);
            val = F16ToF32(h);
          } else {
            val = static_cast<float>(static_cast<int8_t>(*p)) * sc[i];
          }
          f[i * hd + d] = val;
        }
      }
    }
  }
  KvHeadView View(size_t head) const {
    const size_t es = KvElementSize(type);
    return {&k[head * hd * es], &v[head * hd * es], &ks[head], &vs[head], heads * hd, heads};
  }
};

// The reference computes attention: within fp32 rounding of a double-precision
// evaluation over the stored values.
TEST(AttentionRef, MatchesDoubleAttention) {
  for (KvType t : {KvType::kF32, KvType::kF16, KvType::kInt8}) {
    const size_t hd = 64, heads = 2, len = 200;
    Cache c(t, hd, heads, len, 11);
    std::vector<float> q(hd), scores(len), out(hd);
    std::mt19937 rng(3);
    std::normal_distribution<float> dist(0.0f, 1.0f);
    for (float& e : q) e = dist(rng);
    const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
    for (size_t head = 0; head < heads; ++head) {
      const KvHeadView view = c.View(head);
      GetAttentionKernels(Isa::kRef)->attend[static_cast<int>(t)](q.data(), &view, hd, len, scale, scores.data(),
                                                                  out.data());
      std::vector<double> s(len), o(hd, 0.0);
      double m = -1e300, sum = 0;
      for (size_t j = 0; j < len; ++j) {
        double dot = 0;
        for (size_t d = 0; d < hd; ++d) dot += static_cast<double>(q[d]) * c.kf[(j * heads + head) * hd + d];
        s[j] = dot * scale;
        m = std::max(m, s[j]);
      }
      for (double& e : s) sum += (e = std::exp(e - m));
      for (size_t j = 0; j < len; ++j) {
        for (size_t d = 0; d < hd; ++d) o[d] += s[j] / sum * c.vf[(j * heads + head) * hd + d];
      }
      for (size_t d = 0; d < hd; ++d) EXPECT_NEAR(out[d], o[d], 1e-5) << KvTypeName(t) << " head " << head << " d " << d;
    }
  }
}

// Every available ISA returns the reference's bits, for every type, head
// size and length (1 position included), on a strided multi-head cache.
TEST(AttentionKernels, EveryIsaMatchesReferenceBitForBit) {
  int checked = 0;
  for (Isa isa : kAllIsas) {
    if (isa == Isa::kRef || !IsaAvailable(isa)) continue;
    const AttentionKernels* kernels = GetAttentionKernels(isa);
    ASSERT_NE(kernels, nullptr) << IsaName(isa);
    for (KvType t : {KvType::kF32, KvType::kF16, KvType::kInt8}) {
      for (size_t hd : {8u, 16u, 24u, 32u, 64u, 128u}) {
        for (size_t len : {1u, 2u, 7u, 33u, 300u}) {
          Cache c(t, hd, 3, len, static_cast<uint32_t>(hd * 1000 + len));
          std::vector<float> q(hd), s_ref(len), s_isa(len), o_ref(hd), o_isa(hd, -1.0f);
          std::mt19937 rng(static_cast<uint32_t>(len));
          std::normal_distribution<float> dist(0.0f, 2.0f);
          for (float& e : q) e = dist(rng);
          const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
          const KvHeadView view = c.View(1);
          GetAttentionKernels(Isa::kRef)->attend[static_cast<int>(t)](q.data(), &view, hd, len, scale, s_ref.data(),
                                                                      o_ref.data());
          kernels->attend[static_cast<int>(t)](q.data(), &view, hd, len, scale, s_isa.data(), o_isa.data());
          ASSERT_EQ(std::memcmp(o_ref.data(), o_isa.data(), hd * sizeof(float)), 0)
              << IsaName(isa) << " " << KvTypeName(t) << " hd " << hd << " len " << len << ": out[0] " << o_ref[0]
              << " vs " << o_isa[0];
          EXPECT_EQ(GetAttendFn(isa, t, hd), kernels->attend[static_cast<int>(t)]);
          ++checked;
        }
      }
    }
    // A head size the SIMD kernels do not take runs the reference.
    EXPECT_EQ(GetAttendFn(isa, KvType::kF16, 12), famq_attend_f16__ref);
  }
  if (checked == 0) GTEST_SKIP() << "no SIMD level available on this CPU/build: only the reference runs";
}

// Every ISA's f16 cache writer stores F32ToF16's bits: every binary16 value,
// the midpoints between neighbours and one step either side (ties to even,
// the subnormal range, overflow at 65520), every fp32 exponent and sign with
// the low mantissa bits that decide a rounding (tie bit, sticky bits), NaNs
// with payloads, infinities; lengths that leave a tail.
TEST(KvF16, EveryIsaWriterMatchesF32ToF16) {
  std::vector<float> x;
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = F16ToF32(static_cast<uint16_t>(h));
    x.push_back(f);
    if ((h & 0x7fffu) < 0x7c00u) {
      const float next = F16ToF32(static_cast<uint16_t>((h & 0x7fffu) == 0x7bffu ? h : h + 1));
      const float mid = (h & 0x7fffu) == 0x7bffu ? std::copysign(65520.0f, f)
                                                 : static_cast<float>((static_cast<double>(f) + next) / 2);
      x.push_back(mid);
      x.push_back(std::nextafter(mid, 0.0f));
      x.push_back(std::nextafter(mid, std::copysign(INFINITY, f)));
    }
  }
  const uint32_t lows[] = {0x0000u, 0x0001u, 0x0fffu, 0x1000u, 0x1001u, 0x1fffu, 0x2000u, 0x2001u,
                           0x3000u, 0x5000u, 0x7fffu, 0x8000u, 0x9000u, 0xefffu, 0xf000u, 0xffffu};
  for (uint32_t hi = 0; hi < 0x10000; ++hi) {
    for (uint32_t lo : lows) x.push_back(Bits(hi << 16 | lo));
  }
  std::mt19937 rng(5);
  for (int i = 0; i < 100000; ++i) x.push_back(Bits(static_cast<uint32_t>(rng())));
  std::vector<uint16_t> want(x.size());
  for (size_t i = 0; i < x.size(); ++i) want[i] = F32ToF16(x[i]);
  int checked = 0;
  for (Isa isa : kAllIsas) {
    if (!IsaAvailable(isa)) continue;
    const AttentionKernels* kernels = GetAttentionKernels(isa);
    ASSERT_NE(kernels, nullptr) << IsaName(isa);
    std::vector<uint16_t> got(x.size(), 0xabcdu);
    kernels->f32_to_f16(x.data(), x.size(), got.data());
    for (size_t i = 0; i < x.size(); ++i) {
      uint32_t b;
      std::memcpy(&b, &x[i], 4);
      ASSERT_EQ(got[i], want[i]) << IsaName(isa) << " fp32 0x" << std::hex << b;
    }
    // Short lengths (the tails) and StoreKvWith.
    for (size_t n : {1u, 7u, 8u, 9u, 23u}) {
      std::vector<uint16_t> h(n + 1, 0x5555u);
      StoreKvWith(*kernels, KvType::kF16, &x[1000], n, h.data(), nullptr);
      for (size_t i = 0; i < n; ++i) ASSERT_EQ(h[i], want[1000 + i]) << IsaName(isa) << " n " << n;
      EXPECT_EQ(h[n], 0x5555u) << IsaName(isa) << " wrote past n " << n;
    }
    ++checked;
  }
  EXPECT_GE(checked, 1);
}

// The query rows of a block: `rows` rows of q_stride floats (the engine's
// qkv rows), query (r, g) at r * q_stride + g * hd.
struct BlockCase {
  size_t hd, group, rows;
  std::vector<int32_t> pos;
};

void RunBlock(Isa isa, KvType t, const BlockCase& bc, uint32_t seed) {
  const size_t hd = bc.hd, group = bc.group, rows = bc.rows;
  const size_t kv_heads = 3, head = 1;
  size_t max_len = 0;
  for (int32_t p : bc.pos) max_len = std::max(max_len, static_cast<size_t>(p) + 1);
  const Cache c(t, hd, kv_heads, max_len, seed);
  const KvHeadView view = c.View(head);
  // q and out rows hold all kv heads' groups (as the engine's) plus a gap.
  const size_t q_stride = kv_heads * group * hd + 8, out_stride = kv_heads * group * hd + 16;
  std::vector<float> q(rows * q_stride);
  std::mt19937 rng(seed + 1);
  std::normal_distribution<float> dist(0.0f, 2.0f);
  for (float& e : q) e = dist(rng);
  std::vector<float> out(rows * out_stride, -7.0f);
  const size_t off = head * group * hd;  // this kv head's group of query heads
  const AttendBlock blk{q.data() + off, q_stride, out.data() + off, out_stride, bc.pos.data(), rows, group};
  // Exactly the scratch the header asks for (ASan sees an overrun).
  std::vector<float> scratch(AttendBlockScratchFloats(rows, group, hd, max_len));
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  GetAttentionKernels(isa)->attend_block[static_cast<int>(t)](&blk, &view, hd, scale, scratch.data());
  std::vector<float> scores(max_len), want(hd);
  for (size_t r = 0; r < rows; ++r) {
    for (size_t g = 0; g < group; ++g) {
      GetAttentionKernels(Isa::kRef)->attend[static_cast<int>(t)](
          &q[r * q_stride + off + g * hd], &view, hd, static_cast<size_t>(bc.pos[r]) + 1, scale, scores.data(),
          want.data());
      ASSERT_EQ(std::memcmp(want.data(), &out[r * out_stride + off + g * hd], hd * sizeof(float)), 0)
          << IsaName(isa) << " " << KvTypeName(t) << " hd " << hd << " group " << group << " rows " << rows
          << ": row " << r << " (pos " << bc.pos[r] << ") head " << g << ": out[0] " << want[0] << " vs "
          << out[r * out_stride + off + g * hd];
    }
    // Nothing outside the block's queries is written.
    for (size_t e = 0; e < out_stride; ++e) {
      if (e >= off && e < off + group * hd) continue;
      ASSERT_EQ(out[r * out_stride + e], -7.0f) << IsaName(isa) << " row " << r << " element " << e;
    }
  }
}

// Every ISA's block kernel (the reference's included) returns, for every
// query of the block, the per-query reference's bits: f32, f16, int8; head
// sizes 8 .. 128; GQA groups of 1, 2 and 4; consecutive positions from 0
// and from inside the cache (a later chunk), row counts that key tiles
// (kAttendKeyTile) and query pairs do not divide, positions out of order
// and repeated (rows of one sequence in any order).
TEST(AttentionBlock, EveryIsaMatchesPerQueryReferenceBitForBit) {
  std::vector<BlockCase> shapes;
  for (size_t hd : {8u, 24u, 64u, 128u}) {
    for (size_t group : {1u, 2u, 4u}) {
      for (size_t rows : {1u, 2u, 5u, 16u}) {
        for (int32_t first : {0, 3, 61}) {
          BlockCase b{hd, group, rows, {}};
          for (size_t r = 0; r < rows; ++r) b.pos.push_back(first + static_cast<int32_t>(r));
          shapes.push_back(b);
        }
      }
    }
  }
  shapes.push_back({64, 2, 37, {}});
  for (int32_t r = 0; r < 37; ++r) shapes.back().pos.push_back(r);
  shapes.push_back({128, 2, 6, {70, 2, 33, 31, 32, 0}});  // any order
  shapes.push_back({128, 1, 3, {64, 64, 1}});             // repeated
  shapes.push_back({64, 4, 3, {300, 299, 301}});
  int checked = 0;
  for (Isa isa : kAllIsas) {
    if (!IsaAvailable(isa)) continue;
    for (KvType t : {KvType::kF32, KvType::kF16, KvType::kInt8}) {
      uint32_t seed = 100;
      for (const BlockCase& bc : shapes) {
        RunBlock(isa, t, bc, ++seed);
        if (HasFatalFailure()) return;
        ++checked;
      }
      EXPECT_EQ(GetAttendBlockFn(isa, t, 64), GetAttentionKernels(isa)->attend_block[static_cast<int>(t)]);
    }
    EXPECT_EQ(GetAttendBlockFn(isa, KvType::kF16, 12), famq_attend_block_f16__ref);
  }
  EXPECT_GT(checked, 0);
}

}  // namespace
}  // namespace famq
