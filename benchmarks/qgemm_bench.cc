// Weight-only quantized linear kernels (runtime/kernels) against XNNPACK's
// f32 fully-connected operator on the same shapes, in one run.
//
//   build/host/benchmarks/qgemm_bench [--threads=N] [google benchmark flags]
//   (docs/BENCHMARKS.md has the flags behind its numbers)
//
// Shapes are Qwen3-0.6B's linear layers (out x in): 1024x1024 (o_proj-like),
// 3072x1024 (gate/up), 1024x3072 (down), and the 151936x1024 LM head (batch 1
// only), at batch m = 1 (decode: a GEMV) and m = 64 (prefill). Weights are
// random, group size 32, asymmetric zero points. Counters:
//   weight_bytes/s  packed weight bytes streamed per second (codes + scales +
//                   zero-point offsets; f32: the fp32 matrix)
//   tokens/s        activation rows per second
#include <benchmark/benchmark.h>
#include <pthreadpool.h>
#include <xnnpack.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "linear/fp32_linear.h"
#include "kernels/isa.h"
#include "linear/weight_only_linear.h"
#include "core/qmatrix.h"

namespace famq {
namespace {

constexpr int kGroupSize = 32;

size_t g_threads = 2;

pthreadpool_t Pool() {
  static pthreadpool_t pool = g_threads > 1 ? pthreadpool_create(g_threads) : nullptr;
  return pool;
}

// One random matrix per (bits, rows, cols), shared by every ISA.
const QMatrix& Weights(int bits, int rows, int cols) {
  static std::map<std::tuple<int, int, int>, QMatrix> cache;
  auto [it, inserted] = cache.try_emplace({bits, rows, cols});
  QMatrix& w = it->second;
  if (inserted) {
    w.bits = bits;
    w.rows = rows;
    w.cols = cols;
    w.group_size = kGroupSize;
    std::mt19937 rng(static_cast<uint32_t>(bits * 7919 + rows + cols));
    std::uniform_int_distribution<int> code(w.CodeMin(), w.CodeMax());
    std::uniform_real_distribution<float> scale(0.001f, 0.02f);
    w.codes.resize(static_cast<size_t>(rows) * static_cast<size_t>(cols));
    for (int8_t& c : w.codes) c = static_cast<int8_t>(code(rng));
    const size_t groups = static_cast<size_t>(rows) * static_cast<size_t>(w.groups_per_row());
    w.scales.resize(groups);
    w.zeros.resize(groups);
    for (size_t g = 0; g < groups; ++g) {
      w.scales[g] = scale(rng);
      w.zeros[g] = static_cast<int8_t>(code(rng));
    }
  }
  return w;
}

std::vector<float> RandomFloats(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = normal(rng);
  return v;
}

void SetCounters(benchmark::State& state, size_t weight_bytes, int m) {
  state.counters["weight_bytes/s"] =
      benchmark::Counter(static_cast<double>(weight_bytes), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["tokens/s"] = benchmark::Counter(m, benchmark::Counter::kIsIterationInvariantRate);
}

void BenchQGemm(benchmark::State& state, Isa isa, int bits, int rows, int cols, int m) {
  if (!IsaAvailable(isa)) {
    state.SkipWithError("ISA not available on this CPU");
    return;
  }
  auto lin = WeightOnlyLinear::Create(Weights(bits, rows, cols), {}, m, isa, "bench");
  if (!lin.ok()) {
    state.SkipWithError(lin.status().ToString().c_str());
    return;
  }
  const std::vector<float> x = RandomFloats(static_cast<size_t>(m) * static_cast<size_t>(cols), 1);
  std::vector<float> y(static_cast<size_t>(m) * static_cast<size_t>(rows));
  for (auto _ : state) {
    Status st = lin->Run(x.data(), y.data(), static_cast<size_t>(m), Pool());
    if (!st.ok()) {
      state.SkipWithError(st.ToString().c_str());
      return;
    }
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  SetCounters(state, lin->packed_bytes(), m);
}

struct XnnDeleter {
  void operator()(xnn_operator_t op) const { xnn_delete_operator(op); }
};

void BenchXnnF32(benchmark::State& state, int rows, int cols, int m) {
  if (!InitXnnpack().ok()) {
    state.SkipWithError("xnn_initialize failed");
    return;
  }
  // Generated once per shape: repetitions re-run this function (setup included).
  static std::map<std::pair<int, int>, std::vector<float>> weights;
  std::vector<float>& w = weights[{rows, cols}];
  if (w.empty()) w = RandomFloats(static_cast<size_t>(rows) * static_cast<size_t>(cols), 2);
  xnn_operator_t raw = nullptr;
  if (xnn_create_fully_connected_nc_f32(static_cast<size_t>(cols), static_cast<size_t>(rows), static_cast<size_t>(cols),
                                        static_cast<size_t>(rows), w.data(), /*bias=*/nullptr,
                                        -std::numeric_limits<float>::infinity(), std::numeric_limits<float>::infinity(),
                                        0, &raw) != xnn_status_success) {
    state.SkipWithError("xnn_create_fully_connected_nc_f32 failed");
    return;
  }
  std::unique_ptr<xnn_operator, XnnDeleter> op(raw);
  const std::vector<float> x = RandomFloats(static_cast<size_t>(m) * static_cast<size_t>(cols), 1);
  std::vector<float> y(static_cast<size_t>(m) * static_cast<size_t>(rows));
  if (xnn_setup_fully_connected_nc_f32(op.get(), static_cast<size_t>(m), x.data(), y.data(), Pool()) !=
      xnn_status_success) {
    state.SkipWithError("xnn_setup_fully_connected_nc_f32 failed");
    return;
  }
  for (auto _ : state) {
    xnn_run_operator(op.get(), Pool());
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  SetCounters(state, static_cast<size_t>(rows) * static_cast<size_t>(cols) * sizeof(float), m);
}

// Appends the pieces (GCC 12's -Wrestrict misfires on "literal" + std::string).
std::string Cat(std::initializer_list<std::string> pieces) {
  std::string out;
  for (const std::string& piece : pieces) out += piece;
  return out;
}

void RegisterAll() {
  struct Shape {
    int rows;
    int cols;
    std::vector<int> batches;
  };
  const Shape shapes[] = {{1024, 1024, {1, 64}}, {3072, 1024, {1, 64}}, {1024, 3072, {1, 64}}, {151936, 1024, {1}}};
  for (const Shape& s : shapes) {
    for (int m : s.batches) {
      const std::string shape = Cat({std::to_string(s.rows), "x", std::to_string(s.cols), "/m", std::to_string(m)});
      benchmark::RegisterBenchmark(Cat({"xnnpack_f32/", shape}).c_str(), BenchXnnF32, s.rows, s.cols, m)
          ->UseRealTime()
          ->Unit(benchmark::kMicrosecond);
      for (int bits : {4, 8}) {
        for (Isa isa : kAllIsas) {
          if (!IsaAvailable(isa)) continue;
          const std::string name = Cat({"w", std::to_string(bits), "g32/", shape, "/", IsaName(isa)});
          benchmark::RegisterBenchmark(name.c_str(), BenchQGemm, isa, bits, s.rows, s.cols, m)
              ->UseRealTime()
              ->Unit(benchmark::kMicrosecond);
        }
      }
    }
  }
}

}  // namespace
}  // namespace famq

int main(int argc, char** argv) {
  // --threads=N (default 2) is ours; the rest goes to Google Benchmark.
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    if (std::strncmp(argv[i], "--threads=", 10) == 0) {
      famq::g_threads = static_cast<size_t>(std::strtoul(argv[i] + 10, nullptr, 10));
    } else {
      args.push_back(argv[i]);
    }
  }
  int count = static_cast<int>(args.size());
  benchmark::Initialize(&count, args.data());
  if (benchmark::ReportUnrecognizedArguments(count, args.data())) return 1;
  benchmark::AddCustomContext("threads", std::to_string(famq::g_threads));
  benchmark::AddCustomContext("detected_isa", famq::IsaName(famq::DetectIsa()));
  famq::RegisterAll();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
