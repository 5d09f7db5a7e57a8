#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "core/file.h"
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
