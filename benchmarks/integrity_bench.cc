// The cost of a quantized model's integrity check (runtime/qmodel/qmodel.h):
// XXH64 (core/checksum.h) over one buffer, the work VerifyLinear / Tensor()
// do the first time a record is used (the record's own few dozen bytes aside).
//
//   build/host/benchmarks/integrity_bench [google benchmark flags]
//   (docs/BENCHMARKS.md has the flags behind its numbers)
//
// Sizes: 64 KiB (in cache), 4 MiB (about one W4 g32 gate_up of Qwen3-0.6B:
// 6144 x 1024 weights at 5.25 bits), and 297 MiB (Qwen3-0.6B's BF16
// embedding: 151,936 x 1,024 x 2 bytes), read from memory as the loader
// reads them. One thread.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <vector>

#include "core/checksum.h"

namespace famq {
namespace {

void BM_Xxh64(benchmark::State& state) {
  const size_t bytes = static_cast<size_t>(state.range(0));
  std::vector<uint8_t> buf(bytes);
  std::mt19937_64 rng(1);
  for (size_t i = 0; i + 8 <= bytes; i += 8) {
    const uint64_t r = rng();
    for (int k = 0; k < 8; ++k) buf[i + static_cast<size_t>(k)] = static_cast<uint8_t>(r >> (8 * k));
  }
  for (auto _ : state) benchmark::DoNotOptimize(Xxh64(buf.data(), buf.size()));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(bytes));
}
BENCHMARK(BM_Xxh64)->Arg(64 << 10)->Arg(4 << 20)->Arg(151936 * 1024 * 2)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace famq

BENCHMARK_MAIN();
