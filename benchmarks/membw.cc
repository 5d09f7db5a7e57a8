// membw [--threads T] [--mib M] [--passes K] [--json]: the machine's memory
// read bandwidth, for the achieved-bandwidth figure of decode
// (docs/BENCHMARKS.md, "Against llama.cpp"). T threads (default 2) each read
// their own contiguous share of one M MiB buffer (default 1024: far larger
// than any cache) with 64-byte vector loads and four independent XOR
// accumulators, all threads released together for each pass; a pass's rate is
// the buffer's bytes over the time from the first thread's start to the last
// thread's end.
// Prints the median and the best of K passes (default 9) after one warm-up
// pass (which also faults the pages in, each thread its own share).
// Plain C++ with GCC/Clang vector extensions: builds for every target.
#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <thread>
#include <vector>

namespace {

typedef uint64_t V8 __attribute__((vector_size(64)));

// Reads n vectors at p into out[8]; the result depends on every byte so the
// loads stay. (Vectors are not passed by value: their ABI depends on -m flags.)
// On x86-64 the widest loads the CPU has (as famq's kernels use them), chosen at load time.
#if defined(__x86_64__) && defined(__linux__)
__attribute__((target_clones("avx512f", "avx2", "default")))
#endif
void ReadAll(const V8* p, size_t n, uint64_t* out) {
  V8 a = {}, b = {}, c = {}, d = {};
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    a ^= p[i];
    b ^= p[i + 1];
    c ^= p[i + 2];
    d ^= p[i + 3];
  }
  for (; i < n; ++i) a ^= p[i];
  const V8 r = a ^ b ^ c ^ d;
  for (int k = 0; k < 8; ++k) out[k] += r[k];
}

bool ParseInt(const char* s, long lo, long hi, long* out) {
  char* end = nullptr;
  const long v = std::strtol(s, &end, 10);
  if (end == s || *end != '\0' || v < lo || v > hi) return false;
  *out = v;
  return true;
}

int Usage(const char* why) {
  std::fprintf(stderr, "membw: %s\nusage: membw [--threads 1..256] [--mib 16..65536] [--passes 1..1000] [--json]\n",
               why);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  long threads = 2, mib = 1024, passes = 9;
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    long* target = a == "--threads" ? &threads : a == "--mib" ? &mib : a == "--passes" ? &passes : nullptr;
    if (a == "--json") {
      json = true;
    } else if (target == nullptr) {
      return Usage(("unknown argument " + a).c_str());
    } else if (i + 1 >= argc) {
      return Usage((a + " needs a value").c_str());
    } else {
      const long hi = a == "--threads" ? 256 : a == "--mib" ? 65536 : 1000;
      const long lo = a == "--mib" ? 16 : 1;
      if (!ParseInt(argv[++i], lo, hi, target)) return Usage((a + " out of range: " + argv[i]).c_str());
    }
  }
  const size_t bytes = static_cast<size_t>(mib) << 20;
  const size_t vectors = bytes / sizeof(V8);
  V8* buf = static_cast<V8*>(std::aligned_alloc(2u << 20, bytes));
  if (buf == nullptr) {
    std::fprintf(stderr, "membw: cannot allocate %ld MiB\n", mib);
    return 1;
  }
  const size_t nt = static_cast<size_t>(threads);
  std::vector<double> rates;
  std::vector<uint64_t> sink(nt * 8, 0);
  using Clock = std::chrono::steady_clock;
  // Each thread's own start and end of the current pass (not the main
  // thread's wake-up, which a busy machine can delay past the work).
  std::vector<Clock::time_point> starts(nt), ends(nt);
  std::barrier sync(static_cast<std::ptrdiff_t>(nt + 1));
  std::vector<std::thread> pool;
  for (size_t t = 0; t < nt; ++t) {
    pool.emplace_back([&, t] {
      const size_t lo = vectors * t / nt, hi = vectors * (t + 1) / nt;
      // First touch by the reading thread (NUMA placement), distinct bytes per page.
      for (size_t i = lo; i < hi; ++i) {
        uint64_t x = i * 0x9E3779B97F4A7C15ull;
        std::memcpy(&buf[i], &x, sizeof x);
      }
      for (long p = 0; p < passes + 1; ++p) {
        sync.arrive_and_wait();  // released together
        starts[t] = Clock::now();
        ReadAll(buf + lo, hi - lo, &sink[t * 8]);
        ends[t] = Clock::now();
        sync.arrive_and_wait();  // all done
      }
    });
  }
  for (long p = 0; p < passes + 1; ++p) {
    sync.arrive_and_wait();
    sync.arrive_and_wait();
    const double s = std::chrono::duration<double>(*std::max_element(ends.begin(), ends.end()) -
                                                   *std::min_element(starts.begin(), starts.end()))
                         .count();
    if (p > 0) rates.push_back(static_cast<double>(bytes) / s / 1e9);  // pass 0 warms up
  }
  for (auto& th : pool) th.join();
  uint64_t check = 0;
  for (uint64_t x : sink) check ^= x;
  std::free(buf);
  std::vector<double> sorted = rates;
  std::sort(sorted.begin(), sorted.end());
  const double median = sorted[sorted.size() / 2], best = sorted.back();
  if (json) {
    std::printf("{\"threads\": %ld, \"buffer_mib\": %ld, \"passes\": %ld, \"median_gb_per_s\": %.3f, "
                "\"best_gb_per_s\": %.3f, \"checksum\": %llu}\n",
                threads, mib, passes, median, best, static_cast<unsigned long long>(check));
  } else {
    std::printf("read bandwidth, %ld threads, %ld MiB buffer: median %.2f GB/s, best %.2f GB/s of %ld passes\n",
                threads, mib, median, best, passes);
  }
  return 0;
}
