// famq-rt act-stats --model DIR (--bundle B --trust PUB.pem | --calib-text FILE) --out STATS.json
// Per-channel max |x| at every linear layer's input over the calibration
// set (fp32 model, masked tokens excluded): which activation ranges a
// calibration set reaches. Run it on evaluation text too and divide to get
// the coverage plots of docs/RESULTS.md.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "core/file.h"
#include "engine/engine.h"
#include "finalize/input_maxima.h"
#include "tools/famq-rt/calib_source.h"
#include "tools/famq-rt/cli_util.h"
#include "tools/famq-rt/commands.h"

namespace famq::cli {
namespace {

struct ActStatsArgs {
  std::string model, out;
  CalibSourceArgs source;
  int threads = 0;
  bool quiet = false;
};

int RunActStats(const ActStatsArgs& a) {
  if (Status st = CheckCalibSourceArgs(a.source); !st.ok()) return Fail(st);
  auto m = OpenModelDir(a.model);
  if (!m.ok()) return Fail(m.status());
  auto calib = LoadCalibSource(a.source, *m, a.quiet);
  if (!calib.ok()) return Fail(calib.status());
  auto maxima = CollectInputMaxima(*m, *calib, a.threads);
  if (!maxima.ok()) return Fail(maxima.status());
  nlohmann::ordered_json j;
  j["model"] = a.model;
  j["source"] = a.source.bundle.empty() ? a.source.calib_text : a.source.bundle;
  j["samples"] = calib->samples.size();
  j["tokens"] = maxima->tokens;
  j["layers"] = nlohmann::ordered_json::array();
  for (const auto& layer : maxima->max_abs) {
    nlohmann::ordered_json l;
    for (int s = 0; s < kLinearSlots; ++s) l[LinearSlotName(static_cast<LinearSlot>(s))] = layer[static_cast<size_t>(s)];
    j["layers"].push_back(std::move(l));
  }
  const std::string text = j.dump() + "\n";
  if (Status st = WriteFileAtomic(a.out, text.data(), text.size()); !st.ok()) return Fail(st);
  if (!a.quiet) {
    std::fprintf(stderr, "[famq-rt] act-stats: %zu samples, %llu tokens, %d blocks -> %s\n", calib->samples.size(),
                 static_cast<unsigned long long>(maxima->tokens), maxima->layers, a.out.c_str());
  }
  return 0;
}

}  // namespace

void RegisterActStats(CLI::App& app, ExitCode* exit_code) {
  auto a = std::make_shared<ActStatsArgs>();
  CLI::App* cmd = app.add_subcommand(
      "act-stats", "Per-channel max |x| at every linear input over a calibration set (JSON): the ranges it reaches");
  cmd->add_option("--model", a->model, "fp model directory (Hugging Face layout)")->required();
  AddCalibSourceOptions(cmd, &a->source);
  cmd->add_option("--threads", a->threads, "Worker threads (0: one per CPU, at most 8)")->check(CLI::Range(0, 256));
  cmd->add_option("--out", a->out, "JSON file to write")->required();
  cmd->add_flag("--quiet", a->quiet, "No summary on stderr");
  cmd->callback([a, exit_code] { exit_code->value = RunActStats(*a); });
}

}  // namespace famq::cli
