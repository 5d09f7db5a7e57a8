#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/checksum.h"
#include "core/huge_page_arena.h"
#include "core/file.h"
#include "core/json_parse.h"
#include "core/status.h"

namespace famq {
namespace {

Result<int> ParsePositive(int v) {
  if (v <= 0) return InvalidArgument("value " + std::to_string(v) + " is not positive");
  return v;
}

Status UseParse(int v, int* out) {
  FAMQ_ASSIGN_OR_RETURN(*out, ParsePositive(v));
  return Status::Ok();
}

TEST(StatusTest, ResultCarriesValueOrError) {
  int out = 0;
  EXPECT_TRUE(UseParse(3, &out).ok());
  EXPECT_EQ(out, 3);
  Status s = UseParse(-1, &out);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.ToString(), "invalid argument: value -1 is not positive");
}

TEST(FileTest, AtomicWriteThenMapAndRead) {
  std::string path = testing::TempDir() + "famq_core_test.bin";
  const std::string payload = "famq\0payload";
  ASSERT_TRUE(WriteFileAtomic(path, payload.data(), payload.size()).ok());
  auto mapped = MappedFile::Open(path);
  ASSERT_TRUE(mapped.ok()) << mapped.status().ToString();
  ASSERT_EQ(mapped->size(), payload.size());
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(mapped->data()), mapped->size()), payload);
  auto text = ReadFile(path);
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(*text, payload);
  EXPECT_EQ(ReadFile(path, 3).status().code(), StatusCode::kOutOfMemory);
  std::remove(path.c_str());
}

TEST(FileTest, MissingFileIsNotFoundAndNamed) {
  auto r = MappedFile::Open("/nonexistent/famq/file.bin");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("/nonexistent/famq/file.bin"), std::string::npos);
}

}  // namespace
}  // namespace famq

// Every block is cache-line aligned, inside a chunk and disjoint from every
// other (each is filled with its own byte and read back after all the
// allocations), also when threads allocate at once and when a request is
// larger than a chunk (its own chunk; the shared one goes on being used).
TEST(HugePageArenaTest, BlocksAreAlignedDisjointAndThreadSafe) {
  using famq::HugePageArena;
  using famq::kCacheLine;
  HugePageArena arena(size_t{2} << 20);
  struct Block {
    uint8_t* p;
    size_t n;
    uint8_t fill;
  };
  std::vector<std::vector<Block>> per_thread(4);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < per_thread.size(); ++t) {
    threads.emplace_back([&arena, &blocks = per_thread[t], t] {
      for (size_t i = 0; i < 200; ++i) {
        const size_t n = i == 100 && t == 0 ? (size_t{5} << 20) : 1 + (i * 7919 + t * 104729) % 70000;
        uint8_t* p = arena.Allocate(n);
        if (p == nullptr) return;
        const auto fill = static_cast<uint8_t>(t * 61 + i);
        std::memset(p, fill, n);
        blocks.push_back({p, n, fill});
      }
    });
  }
  for (auto& th : threads) th.join();
  size_t total = 0;
  for (const auto& blocks : per_thread) {
    ASSERT_EQ(blocks.size(), 200u);
    for (const Block& b : blocks) {
      EXPECT_EQ(reinterpret_cast<uintptr_t>(b.p) % kCacheLine, 0u);
      for (size_t i = 0; i < b.n; i += 997) ASSERT_EQ(b.p[i], b.fill);
      ASSERT_EQ(b.p[b.n - 1], b.fill);
      total += b.n;
    }
  }
  EXPECT_GE(arena.reserved_bytes(), total);
  // 2 MiB chunks hold at least 29 of these blocks of < 70000 bytes, so little is left unused.
  EXPECT_LE(arena.reserved_bytes(), total + total / 8 + (size_t{4} << 20));
}

TEST(JsonParseTest, RejectsDeepNestingBeforeBuildingTheValue) {
  // 300,000 levels: parsing would succeed, but copying or dumping the value
  // would overflow the stack (the crash a crafted request caused).
  const std::string deep = std::string(300000, '[') + std::string(300000, ']');
  nlohmann::json j;
  const famq::Status st = famq::ParseJson(deep, "request body", &j);
  EXPECT_EQ(st.code(), famq::StatusCode::kInvalidFormat);
  EXPECT_NE(st.message().find("request body"), std::string::npos);
  EXPECT_NE(st.message().find("nested deeper than"), std::string::npos);

  const std::string ok_text = std::string(famq::kMaxJsonDepth, '[') + std::string(famq::kMaxJsonDepth, ']');
  EXPECT_TRUE(famq::ParseJson(ok_text, "x", &j).ok());
  const std::string one_more = "[" + ok_text + "]";
  EXPECT_FALSE(famq::ParseJson(one_more, "x", &j).ok());
}

TEST(JsonParseTest, BracketsInsideStringsDoNotCount) {
  EXPECT_EQ(famq::JsonNestingDepth(R"({"a": "[[[[{{{{\"[[[", "b": [1, {"c": "]]]}}"}]})", 64), 3);
  nlohmann::ordered_json j;
  ASSERT_TRUE(famq::ParseJson(R"({"s": "[[[[[[[[[[\\\"", "v": [1]})", "x", &j, 2).ok());
  EXPECT_EQ(j["v"][0], 1);
  EXPECT_EQ(famq::ParseJson("{\"a\": ", "config.json", &j).code(), famq::StatusCode::kInvalidFormat);
}

// --- XXH64 against the reference library -------------------------------------

namespace famq {
namespace {

// xxHash's sanity buffer (its tests/sanity_test_vectors.h): byte i = top byte of PRIME32 * PRIME64^i.
std::vector<uint8_t> SanityBuffer(size_t n) {
  std::vector<uint8_t> b(n);
  uint64_t gen = 2654435761u;
  for (size_t i = 0; i < n; ++i) {
    b[i] = static_cast<uint8_t>(gen >> 56);
    gen *= 11400714785074694797ull;
  }
  return b;
}

TEST(Xxh64Test, MatchesTheReferenceLibrary) {
  // Computed with Debian's libxxhash 0.8.1 (XXH64 through ctypes) on the sanity
  // buffer: every tail path (0-31 bytes, 4-byte, 1-byte) and several stripes.
  struct Case {
    size_t len;
    uint64_t seed, expected;
  };
  const Case cases[] = {
      {0, 0u, 0xEF46DB3751D8E999ULL},    {0, 2654435761u, 0xAC75FDA2929B17EFULL},
      {1, 0u, 0xE934A84ADB052768ULL},    {1, 2654435761u, 0x5014607643A9B4C3ULL},
      {3, 0u, 0xFF7E1959CB50794AULL},    {3, 2654435761u, 0xAA8584E83660F7D1ULL},
      {4, 0u, 0x9136A0DCA57457EEULL},    {4, 2654435761u, 0xCAAB286BD8E9FDB5ULL},
      {7, 0u, 0x6C83909A9F01ED25ULL},    {7, 2654435761u, 0xF98D03B1AD6F9293ULL},
      {8, 0u, 0xCDBCF538E71D1348ULL},    {8, 2654435761u, 0xFE0C047A5353CDACULL},
      {14, 0u, 0x8282DCC4994E35C8ULL},   {14, 2654435761u, 0xC3BD6BF63DEB6DF0ULL},
      {31, 0u, 0x299B39A290E6D783ULL},   {31, 2654435761u, 0xDA673D5FEB5C1D79ULL},
      {32, 0u, 0x18B216492BB44B70ULL},   {32, 2654435761u, 0xB3F33BDF93ADE409ULL},
      {33, 0u, 0x55C8DC3E578F5B59ULL},   {33, 2654435761u, 0xE92C292F64BC3071ULL},
      {63, 0u, 0xA9EFBE0FA0F3F4E7ULL},   {63, 2654435761u, 0x6C911FADB05B6FC2ULL},
      {64, 0u, 0xEF558F8ACAC2B5CDULL},   {64, 2654435761u, 0xB5EEBA99264CC44FULL},
      {100, 0u, 0x4BFE019CD91D9EA4ULL},  {100, 2654435761u, 0x4853706DC9625CAEULL},
      {222, 0u, 0xB641AE8CB691C174ULL},  {222, 2654435761u, 0x20CB8AB7AE10C14AULL},
      {1000, 0u, 0x52BD1358F22E9EF7ULL}, {1000, 2654435761u, 0x72751A2408017E26ULL},
      {4161, 0u, 0xCD3D6DF2DB509A75ULL}, {4161, 2654435761u, 0x2394CB79E97368D1ULL},
  };
  const std::vector<uint8_t> buf = SanityBuffer(4161);
  for (const Case& c : cases) EXPECT_EQ(Xxh64(buf.data(), c.len, c.seed), c.expected) << c.len << " " << c.seed;
  // Unaligned starts read the same bytes the same way.
  std::vector<uint8_t> shifted(buf.size() + 3);
  std::memcpy(shifted.data() + 3, buf.data(), buf.size());
  EXPECT_EQ(Xxh64(shifted.data() + 3, 1000, 0), 0x52BD1358F22E9EF7ULL);
}

// --- WriteFileAtomic: no link is followed, the mode is exact, nothing is left behind

std::string FreshDir(const std::string& name) {
  const std::string dir = testing::TempDir() + "famq_atomic_" + name + "_" + std::to_string(::getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

std::vector<std::string> DirEntries(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

std::string Slurp(const std::string& path) {
  auto t = ReadFile(path);
  return t.ok() ? *t : std::string("<unreadable>");
}

unsigned ModeOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::lstat(path.c_str(), &st), 0);
  return st.st_mode & 07777;
}

int g_suffix_calls = 0;
std::string PredictableSuffix() {
  std::string s = "n";  // appended, not "n" + ...: GCC 12's -Wrestrict misfires on that at -O3
  s += std::to_string(g_suffix_calls++);
  return s;
}

TEST(AtomicWriteTest, PlantedSymlinksAtTemporaryNamesAreNeverFollowed) {
  const std::string dir = FreshDir("links");
  const std::string victim = dir + "/victim.txt";
  ASSERT_TRUE(WriteFileAtomic(victim, "precious", 8).ok());
  const std::string out = dir + "/key.pem";
  // The old predictable name, and the first two names this test's suffix source will hand out.
  const std::vector<std::string> traps = {out + ".tmp." + std::to_string(::getpid()), dir + "/.key.pem.tmp-n0",
                                          dir + "/.key.pem.tmp-n1"};
  for (const std::string& t : traps) ASSERT_EQ(::symlink(victim.c_str(), t.c_str()), 0) << t;
  g_suffix_calls = 0;
  internal::g_temp_suffix_for_test = &PredictableSuffix;
  const Status st = WriteFileAtomic(out, "SECRET", 6, 0600);
  internal::g_temp_suffix_for_test = nullptr;
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(g_suffix_calls, 3);  // two taken names retried, the third was free
  EXPECT_EQ(Slurp(victim), "precious");
  EXPECT_EQ(Slurp(out), "SECRET");
  EXPECT_EQ(ModeOf(out), 0600u);
  for (const std::string& t : traps) {
    struct stat st2 {};
    ASSERT_EQ(::lstat(t.c_str(), &st2), 0);
    EXPECT_TRUE(S_ISLNK(st2.st_mode)) << t;  // left alone, not replaced or written through
  }
  // Every name taken: a clear error, nothing created.
  const std::vector<std::string> before = DirEntries(dir);
  internal::g_temp_suffix_for_test = [] { return std::string("n0"); };
  const Status full = WriteFileAtomic(out, "X", 1, 0600);
  internal::g_temp_suffix_for_test = nullptr;
  EXPECT_EQ(full.code(), StatusCode::kIoError);
  EXPECT_NE(full.message().find("temporary name"), std::string::npos) << full.ToString();
  EXPECT_EQ(DirEntries(dir), before);
  EXPECT_EQ(Slurp(out), "SECRET");
  std::filesystem::remove_all(dir);
}

TEST(AtomicWriteTest, ModeIsExactEvenOverAWiderFile) {
  const std::string dir = FreshDir("mode");
  const std::string key = dir + "/key.pem";
  {
    std::FILE* f = std::fopen(key.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fputs("old public content", f);
    std::fclose(f);
  }
  ASSERT_EQ(::chmod(key.c_str(), 0644), 0);
  const mode_t old_umask = ::umask(0);  // a umask of 0 must not widen a key either
  const Status st = WriteFileAtomic(key, "PRIVATE", 7, 0600);
  ::umask(old_umask);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(ModeOf(key), 0600u);
  EXPECT_EQ(Slurp(key), "PRIVATE");
  ASSERT_TRUE(WriteFileAtomic(key, "PUBLIC", 6, 0644).ok());
  EXPECT_EQ(ModeOf(key), 0644u);
  EXPECT_EQ(DirEntries(dir), std::vector<std::string>{"key.pem"});
  std::filesystem::remove_all(dir);
}

TEST(AtomicWriteTest, ASymlinkAtThePathIsReplacedNotWrittenThrough) {
  const std::string dir = FreshDir("final_link");
  const std::string target = dir + "/target.txt";
  ASSERT_TRUE(WriteFileAtomic(target, "target", 6).ok());
  const std::string out = dir + "/out.famq";
  ASSERT_EQ(::symlink(target.c_str(), out.c_str()), 0);
  ASSERT_TRUE(WriteFileAtomic(out, "new", 3).ok());
  struct stat st {};
  ASSERT_EQ(::lstat(out.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(Slurp(out), "new");
  EXPECT_EQ(Slurp(target), "target");
  std::filesystem::remove_all(dir);
}

TEST(AtomicWriteTest, AFailedRenameLeavesNothingBehind) {
  const std::string dir = FreshDir("fail");
  const std::string busy = dir + "/busy";
  std::filesystem::create_directories(busy + "/inside");  // rename(file, non-empty dir) fails
  const Status st = WriteFileAtomic(busy, "data", 4);
  EXPECT_EQ(st.code(), StatusCode::kIoError);
  EXPECT_NE(st.message().find(busy), std::string::npos) << st.ToString();
  EXPECT_EQ(DirEntries(dir), std::vector<std::string>{"busy"});
  EXPECT_EQ(WriteFileAtomic(dir + "/missing_dir/x", "d", 1).code(), StatusCode::kIoError);
  EXPECT_EQ(WriteFileAtomic(dir + "/", "d", 1).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(DirEntries(dir), std::vector<std::string>{"busy"});
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace famq
