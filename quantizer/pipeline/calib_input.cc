#include "pipeline/calib_input.h"

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/digest.h"
#include "core/file.h"
#include "core/json_parse.h"
#include "engine/sampler.h"

namespace famq {
namespace {

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool Blank(std::string_view line) {
  return std::all_of(line.begin(), line.end(), [](char c) { return c == ' ' || c == '\t' || c == '\r'; });
}

}  // namespace

Result<CalibInput> LoadCalibration(const std::string& path, int max_samples) {
  auto text = ReadFile(path, kMaxCalibBytes);
  if (!text.ok()) return text.status();
  CalibInput in;
  in.source = path;
  in.sha256 = Sha256Hex(*text);
  const bool jsonl = EndsWith(path, ".jsonl") || EndsWith(path, ".ndjson");
  std::string_view rest(*text);
  int line_no = 0;
  std::string paragraph;
  int paragraph_line = 0;
  auto flush = [&] {
    while (!paragraph.empty() && paragraph.back() == '\n') paragraph.pop_back();
    if (!paragraph.empty()) in.samples.push_back({paragraph, paragraph_line});
    paragraph.clear();
  };
  while (!rest.empty()) {
    const size_t nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
    ++line_no;
    if (jsonl) {
      if (Blank(line)) continue;
      nlohmann::json j;
      FAMQ_RETURN_IF_ERROR(ParseJson(line, path + ":" + std::to_string(line_no), &j));
      if (!j.is_object() || !j.contains("text") || !j["text"].is_string()) {
        return InvalidFormat(path + ":" + std::to_string(line_no) + ": expected an object with a string \"text\"");
      }
      std::string t = j["text"].get<std::string>();
      if (t.empty()) return InvalidFormat(path + ":" + std::to_string(line_no) + ": empty \"text\"");
      in.samples.push_back({std::move(t), line_no});
    } else if (Blank(line)) {
      flush();
    } else {
      if (paragraph.empty()) paragraph_line = line_no;
      paragraph.append(line);
      paragraph.push_back('\n');
    }
    if (max_samples > 0 && static_cast<int>(in.samples.size()) >= max_samples) break;
  }
  if (!jsonl && (max_samples <= 0 || static_cast<int>(in.samples.size()) < max_samples)) flush();
  if (in.samples.empty()) return InvalidArgument(path + ": no calibration samples in the file");
  return in;
}

Status DrawCalibSamples(CalibInput& in, int n, uint64_t seed) {
  const int total = static_cast<int>(in.samples.size());
  if (n < 1 || n > total) {
    return InvalidArgument("cannot draw " + std::to_string(n) + " samples from the " + std::to_string(total) + " of " +
                           in.source);
  }
  std::vector<int> idx(total);
  for (int i = 0; i < total; ++i) idx[i] = i;
  Rng rng(seed);
  for (int i = 0; i < n; ++i) {  // partial Fisher-Yates: idx[0..n) is the draw
    const int j = i + static_cast<int>(rng.Next() % static_cast<uint64_t>(total - i));
    std::swap(idx[i], idx[j]);
  }
  idx.resize(n);
  std::sort(idx.begin(), idx.end());
  std::vector<CalibSample> kept;
  kept.reserve(n);
  for (int i : idx) kept.push_back(std::move(in.samples[i]));
  in.samples = std::move(kept);
  in.source += " draw " + std::to_string(n) + " seed " + std::to_string(seed);
  return Status::Ok();
}

Result<CalibInput> LoadCalibrationPreset(const std::string& name, const std::string& models_dir, int max_samples) {
  const std::string path = JoinPath(JoinPath(models_dir, "calib"), name + ".jsonl");
  if (name.empty() || name.find('/') != std::string::npos || !FileExists(path)) {
    std::string known;
    for (const auto& n : CalibrationPresetNames(models_dir)) known += (known.empty() ? "" : ", ") + n;
    return NotFound("no calibration preset '" + name + "' (presets in " + models_dir + "/calib: " +
                    (known.empty() ? "none" : known) + ")");
  }
  auto in = LoadCalibration(path, max_samples);
  if (in.ok()) in->source = "preset:" + name;
  return in;
}

std::vector<std::string> CalibrationPresetNames(const std::string& models_dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(JoinPath(models_dir, "calib"), ec)) {
    const std::string f = e.path().filename().string();
    if (EndsWith(f, ".jsonl")) names.push_back(f.substr(0, f.size() - 6));
  }
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace famq
