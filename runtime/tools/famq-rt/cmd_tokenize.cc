// famq-rt tokenize --model DIR (--text TEXT | --file FILE): token ids of text,
// no special tokens added. Needs only DIR/tokenizer.json.
//
//   --text TEXT  prints one JSON array of ids.
//   --file FILE  reads one JSON string per line (JSON Lines) and prints one
//                JSON array of ids per line; a final empty line is ignored.
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string_view>

#include "core/json_parse.h"
#include "tools/famq-rt/cli_util.h"
#include "tools/famq-rt/commands.h"

namespace famq::cli {
namespace {

std::string IdsJson(const std::vector<int32_t>& ids) {
  std::string s = "[";
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) s.push_back(',');
    s += std::to_string(ids[i]);
  }
  s.push_back(']');
  return s;
}

int TokenizeFile(const Tokenizer& tokenizer, const std::string& path) {
  auto text = ReadTextArg(path);
  if (!text.ok()) return Fail(text.status());
  const std::string_view all = *text;
  std::vector<int32_t> ids;
  std::string out;
  size_t line_no = 0;
  for (size_t pos = 0; pos < all.size();) {
    size_t end = all.find('\n', pos);
    if (end == std::string_view::npos) end = all.size();
    std::string_view line = all.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const std::string where = path + ":" + std::to_string(line_no);
    nlohmann::json j;
    if (!ParseJson(line, where, &j).ok() || !j.is_string()) {
      std::fprintf(stderr, "famq-rt: %s: not a JSON string\n", where.c_str());
      return 1;
    }
    ids.clear();
    if (Status s = tokenizer.Encode(j.get_ref<const std::string&>(), &ids); !s.ok()) {
      std::fprintf(stderr, "famq-rt: %s: %s\n", where.c_str(), s.ToString().c_str());
      return 1;
    }
    out = IdsJson(ids);
    out.push_back('\n');
    std::fwrite(out.data(), 1, out.size(), stdout);
  }
  return 0;
}

}  // namespace

void RegisterTokenize(CLI::App& app, ExitCode* exit_code) {
  struct Args {
    std::string model, text, file;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("tokenize", "Print the token ids of text (no special tokens added)");
  cmd->add_option("--model", args->model, "Model directory holding tokenizer.json")->required();
  CLI::Option* text = cmd->add_option("--text", args->text, "Text to tokenize; prints one JSON array");
  CLI::Option* file = cmd->add_option("--file", args->file,
                                      "JSON Lines file of strings; prints one JSON array per line");
  text->excludes(file);
  cmd->callback([args, exit_code, text, file] {
    if (text->count() + file->count() != 1) {
      exit_code->value = Fail(InvalidArgument("tokenize: give exactly one of --text and --file"));
      return;
    }
    auto tokenizer = OpenTokenizer(args->model);
    if (!tokenizer.ok()) {
      exit_code->value = Fail(tokenizer.status());
      return;
    }
    if (file->count()) {
      exit_code->value = TokenizeFile(*tokenizer, args->file);
      return;
    }
    std::vector<int32_t> ids;
    if (Status s = tokenizer->Encode(args->text, &ids); !s.ok()) {
      exit_code->value = Fail(s);
      return;
    }
    std::printf("%s\n", IdsJson(ids).c_str());
  });
}

}  // namespace famq::cli
