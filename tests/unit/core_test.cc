#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

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
