#include "pipeline/records.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/file.h"

namespace famq {
namespace {

using Json = nlohmann::json;

template <typename T>
Status GetVec(const Json& j, const char* key, std::vector<T>* out, const std::string& where) {
  if (!j.contains(key) || !j[key].is_array()) return InvalidFormat(where + ": missing array \"" + key + "\"");
  out->clear();
  out->reserve(j[key].size());
  for (const auto& v : j[key]) {
    if (!v.is_number()) return InvalidFormat(where + ": \"" + key + "\" holds a non-number");
    out->push_back(v.get<T>());
  }
  return Status::Ok();
}

nlohmann::ordered_json ScoresJson(const ScoreTerms& t) {
  return {{"fidelity", t.fidelity},   {"consistency", t.consistency},
          {"diversity", t.diversity}, {"penalty", t.penalty},
          {"total", t.total},         {"distinct2", t.distinct2},
          {"generated_tokens", t.generated_tokens}, {"finished", t.finished}};
}

}  // namespace

nlohmann::ordered_json GroupToJson(const GroupRecord& g) {
  nlohmann::ordered_json j;
  j["group"] = g.group;
  j["line"] = g.line;
  j["original_text"] = g.original_text;
  j["original_ids"] = g.original_ids;
  j["prompt_ids"] = g.prompt_ids;
  j["template_mask"] = g.template_mask;
  auto cands = nlohmann::ordered_json::array();
  for (const auto& c : g.candidates) {
    nlohmann::ordered_json cj;
    cj["ids"] = c.ids;
    cj["finished"] = c.finished;
    cj["text"] = c.text;
    if (!c.ids_from.empty()) cj["ids_from"] = c.ids_from;
    if (!c.logprobs.empty()) cj["logprobs"] = c.logprobs;
    if (c.scores) cj["scores"] = ScoresJson(*c.scores);
    if (!c.embedding.empty()) cj["embedding"] = c.embedding;
    cands.push_back(std::move(cj));
  }
  j["candidates"] = std::move(cands);
  if (g.selected) j["kept"] = g.kept;
  return j;
}

Result<GroupRecord> GroupFromJson(const Json& j, const std::string& where) {
  if (!j.is_object()) return InvalidFormat(where + ": not a JSON object");
  GroupRecord g;
  if (!j.contains("group") || !j["group"].is_number_unsigned()) return InvalidFormat(where + ": missing \"group\"");
  g.group = j["group"].get<uint32_t>();
  g.line = j.value("line", 0);
  g.original_text = j.value("original_text", std::string());
  FAMQ_RETURN_IF_ERROR(GetVec(j, "original_ids", &g.original_ids, where));
  FAMQ_RETURN_IF_ERROR(GetVec(j, "prompt_ids", &g.prompt_ids, where));
  FAMQ_RETURN_IF_ERROR(GetVec(j, "template_mask", &g.template_mask, where));
  if (g.template_mask.size() != g.prompt_ids.size()) {
    return InvalidFormat(where + ": template_mask and prompt_ids differ in length");
  }
  if (!j.contains("candidates") || !j["candidates"].is_array()) return InvalidFormat(where + ": missing \"candidates\"");
  for (const auto& cj : j["candidates"]) {
    CandidateRecord c;
    FAMQ_RETURN_IF_ERROR(GetVec(cj, "ids", &c.ids, where));
    c.finished = cj.value("finished", false);
    c.text = cj.value("text", std::string());
    if (cj.contains("ids_from") && cj["ids_from"].is_string()) c.ids_from = cj["ids_from"].get<std::string>();
    if (cj.contains("logprobs")) {
      FAMQ_RETURN_IF_ERROR(GetVec(cj, "logprobs", &c.logprobs, where));
      for (double l : c.logprobs) {
        if (!(l <= 0.0)) return InvalidFormat(where + ": \"logprobs\" holds a positive number");
      }
    }
    if (cj.contains("scores")) {
      const auto& s = cj["scores"];
      ScoreTerms t;
      t.fidelity = s.value("fidelity", 0.0f);
      t.consistency = s.value("consistency", 0.0f);
      t.diversity = s.value("diversity", 0.0f);
      t.penalty = s.value("penalty", 0.0f);
      t.total = s.value("total", 0.0f);
      t.distinct2 = s.value("distinct2", 0.0f);
      t.generated_tokens = s.value("generated_tokens", 0u);
      t.finished = s.value("finished", false);
      c.scores = t;
    }
    if (cj.contains("embedding")) FAMQ_RETURN_IF_ERROR(GetVec(cj, "embedding", &c.embedding, where));
    g.candidates.push_back(std::move(c));
  }
  if (j.contains("kept")) {
    FAMQ_RETURN_IF_ERROR(GetVec(j, "kept", &g.kept, where));
    for (uint32_t k : g.kept) {
      if (k >= g.candidates.size()) return InvalidFormat(where + ": kept candidate " + std::to_string(k) + " does not exist");
    }
    g.selected = true;
  }
  return g;
}

Result<StageFile> ReadStageFile(const std::string& path, const std::string& expected_stage) {
  auto text = ReadFile(path, size_t{4} << 30);
  if (!text.ok()) return text.status();
  StageFile f;
  std::string_view rest(*text);
  size_t offset = 0;
  int line_no = 0;
  while (!rest.empty()) {
    const size_t nl = rest.find('\n');
    if (nl == std::string_view::npos) break;  // partial last line: ignored
    std::string_view line = rest.substr(0, nl);
    rest = rest.substr(nl + 1);
    ++line_no;
    const std::string where = path + ":" + std::to_string(line_no);
    auto j = Json::parse(line, nullptr, false);
    if (j.is_discarded()) return InvalidFormat(where + ": not valid JSON");
    if (line_no == 1) {
      if (!j.is_object() || j.value("famq_stage", std::string()) != expected_stage) {
        return InvalidFormat(where + ": not a `famq " + expected_stage + "` output (header line missing)");
      }
      f.header = nlohmann::ordered_json::parse(line);
    } else {
      FAMQ_ASSIGN_OR_RETURN(GroupRecord g, GroupFromJson(j, where));
      if (g.group != f.groups.size()) {
        return InvalidFormat(where + ": group " + std::to_string(g.group) + " out of order (expected " +
                             std::to_string(f.groups.size()) + ")");
      }
      f.groups.push_back(std::move(g));
    }
    offset += nl + 1;
  }
  if (line_no == 0) return InvalidFormat(path + ": empty (no header line)");
  f.valid_bytes = offset;
  return f;
}

StageWriter::~StageWriter() {
  if (fd_ >= 0) ::close(fd_);
}

Result<std::unique_ptr<StageWriter>> StageWriter::Create(const std::string& path, const nlohmann::ordered_json& header) {
  // The header goes in through a temp file + rename, so the file never exists without it.
  const std::string h = header.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
  FAMQ_RETURN_IF_ERROR(WriteFileAtomic(path, h.data(), h.size()));
  return Continue(path, h.size());
}

Result<std::unique_ptr<StageWriter>> StageWriter::Continue(const std::string& path, size_t valid_bytes) {
  std::unique_ptr<StageWriter> w(new StageWriter());
  w->path_ = path;
  w->fd_ = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (w->fd_ < 0) return IoError(path + ": cannot open for writing (" + std::strerror(errno) + ")");
  if (::ftruncate(w->fd_, static_cast<off_t>(valid_bytes)) != 0 ||
      ::lseek(w->fd_, static_cast<off_t>(valid_bytes), SEEK_SET) < 0) {
    return IoError(path + ": cannot cut to its last complete line (" + std::strerror(errno) + ")");
  }
  return w;
}

Status StageWriter::Append(const nlohmann::ordered_json& line) {
  const std::string s = line.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
  FAMQ_RETURN_IF_ERROR(WriteAll(fd_, s.data(), s.size(), path_));
  if (::fsync(fd_) != 0) return IoError(path_ + ": fsync failed (" + std::strerror(errno) + ")");
  return Status::Ok();
}

}  // namespace famq
