// famq regenerate | select | pack | bundle: the host stage (docs/DESIGN.md §1.1).
// `bundle` runs the three steps with their JSONL files in OUT.work/ and
// resumes where a killed run stopped; the steps are also their own commands.
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "pipeline/stages.h"
#include "tools/famq/commands.h"

namespace famq::host_cli {
namespace {

struct PipelineArgs {
  // inputs
  std::string target, regenerator, expert, calib, calib_preset, models_dir = "models";
  int max_samples = 0, draw = 0;
  uint64_t draw_seed = 0;
  bool allow_foreign = false, self = false;
  // regenerate
  std::string template_name = "chat", cue;
  bool no_cot = false;
  int group_size = 4, max_new_tokens = 192, max_original_tokens = 96, top_k = 0;
  float temperature = 0.8f, top_p = 0.95f;
  uint64_t seed = 0;
  std::string backend = "engine";
  int max_inflight = 4, parallel_candidates = 16;
  double timeout_s = 120.0;
  int retries = 3;
  std::string api_key;  // --api-key, else $FAMQ_BACKEND_API_KEY (BackendApiKey)
  // select
  std::string score_backend;  // "": engine (select), or the --backend server when it serves the expert (bundle)
  std::string embed_backend;  // "": the pooled states from the scoring backend
  int keep = 1;
  ScoreWeights weights;
  PenaltyOptions penalties;
  bool no_compete = false;
  // pack
  RenormOptions renorm;
  std::string sign;
  bool allow_unsigned = false;
  // run
  int threads = 0;
  std::string engine_weights = "fp32";  // --weights: the in-process engine's (ParseWeightType)
  bool quiet = false;
  std::string progress = "human";
  std::string in, out;
};

// The key sent to HTTP backends: --api-key, else $FAMQ_BACKEND_API_KEY
// (famq serve's own key is FAMQ_API_KEY: a host may run both).
std::string BackendApiKey(const PipelineArgs& a) {
  if (!a.api_key.empty()) return a.api_key;
  const char* env = std::getenv("FAMQ_BACKEND_API_KEY");
  return env != nullptr ? env : "";
}

ProgressMode Mode(const PipelineArgs& a) {
  if (a.quiet) return ProgressMode::kQuiet;
  return a.progress == "json" ? ProgressMode::kJson : ProgressMode::kHuman;
}

Result<CalibInput> Calibration(const PipelineArgs& a) {
  if (a.calib.empty() == a.calib_preset.empty()) return InvalidArgument("give exactly one of --calib and --calib-preset");
  auto in = !a.calib.empty() ? LoadCalibration(a.calib, a.max_samples)
                             : LoadCalibrationPreset(a.calib_preset, a.models_dir, a.max_samples);
  if (!in.ok() || a.draw == 0) return in;
  if (Status s = DrawCalibSamples(*in, a.draw, a.draw_seed); !s.ok()) return s;
  return in;
}

Result<RegenerateConfig> MakeRegenerateConfig(const PipelineArgs& a) {
  if (a.target.empty()) return InvalidArgument("--target is required");
  if (a.regenerator.empty() && !a.self) return InvalidArgument("give --regenerator DIR (or --self)");
  RegenerateConfig c;
  c.target = a.target;
  c.regenerator = a.self ? a.target : a.regenerator;
  c.self_calibration = a.self;
  c.allow_foreign_family = a.allow_foreign;
  FAMQ_ASSIGN_OR_RETURN(c.calib, Calibration(a));
  c.prompt.style = a.template_name == "base" ? PromptStyle::kBase : PromptStyle::kChat;
  c.prompt.reasoning_cue = a.cue;
  c.prompt.no_cot = a.no_cot;
  c.prompt.max_original_tokens = a.max_original_tokens;
  c.group.n = a.group_size;
  c.group.temperature = a.temperature;
  c.group.top_p = a.top_p;
  c.group.top_k = a.top_k;
  c.group.max_new_tokens = a.max_new_tokens;
  c.seed = a.seed;
  c.engine.num_threads = a.threads;
  FAMQ_ASSIGN_OR_RETURN(c.engine.weights, ParseWeightType(a.engine_weights));
  c.backend = a.backend;
  c.max_inflight = a.max_inflight;
  c.parallel_candidates = a.parallel_candidates;
  c.timeout_s = a.timeout_s;
  c.retries = a.retries;
  c.api_key = BackendApiKey(a);
  c.progress = Mode(a);
  return c;
}

// --score-backend, or its default: `famq bundle` scores on the --backend
// server when the expert is the regenerator it serves; otherwise the engine.
std::string ScoreBackendArg(const PipelineArgs& a, bool bundle) {
  if (!a.score_backend.empty()) return a.score_backend;
  if (!bundle) return "engine";
  const bool expert_is_regenerator = a.expert.empty() || a.expert == (a.self ? a.target : a.regenerator);
  for (const char* scheme : {"openai:", "openai-chat:"}) {
    if (expert_is_regenerator && a.backend.rfind(scheme, 0) == 0) {
      return "openai:" + a.backend.substr(std::string(scheme).size());
    }
  }
  return "engine";
}

Result<SelectConfig> MakeSelectConfig(const PipelineArgs& a, bool bundle) {
  SelectConfig c;
  FAMQ_ASSIGN_OR_RETURN(c.engine.weights, ParseWeightType(a.engine_weights));
  c.expert = a.expert;
  c.scoring_backend = ScoreBackendArg(a, bundle);
  c.embed_backend = a.embed_backend;
  c.timeout_s = a.timeout_s;
  c.retries = a.retries;
  c.api_key = BackendApiKey(a);
  c.max_inflight = a.max_inflight;
  c.allow_foreign_family = a.allow_foreign;
  c.weights = a.weights;
  c.penalties = a.penalties;
  c.keep = a.keep;
  c.no_compete = a.no_compete;
  c.engine.num_threads = a.threads;
  c.progress = Mode(a);
  return c;
}

PackConfig MakePackConfig(const PipelineArgs& a) {
  PackConfig c;
  c.renorm = a.renorm;
  c.sign_key = a.sign;
  c.allow_unsigned = a.allow_unsigned;
  c.target = a.target;
  c.seed = a.seed;
  return c;
}

void AddInputOptions(CLI::App* cmd, PipelineArgs* a) {
  cmd->add_option("--target", a->target, "Target model directory (the model to quantize)");
  cmd->add_option("--calib", a->calib, "Original calibration data: .jsonl ({\"text\": ...} per line) or plain text");
  cmd->add_option("--calib-preset", a->calib_preset, "A preset from MODELS/calib/NAME.jsonl instead of --calib");
  cmd->add_option("--models-dir", a->models_dir, "Where --calib-preset looks (MODELS/calib)")->capture_default_str();
  cmd->add_option("--max-samples", a->max_samples, "Use only the first N calibration samples (0: all)")
      ->check(CLI::Range(0, 1 << 24));
  cmd->add_option("--draw", a->draw, "Draw N samples at random (seeded by --draw-seed) from the input (0: all)")
      ->check(CLI::Range(0, 1 << 24));
  cmd->add_option("--draw-seed", a->draw_seed, "Seed of --draw")->capture_default_str();
  cmd->add_flag("--allow-foreign-family", a->allow_foreign, "Accept a regenerator/expert with another tokenizer");
}

void AddHttpOptions(CLI::App* cmd, PipelineArgs* a) {
  cmd->add_option("--max-inflight", a->max_inflight, "Requests in flight to an HTTP backend (regeneration, scoring)")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  cmd->add_option("--timeout", a->timeout_s, "Seconds per HTTP request (regeneration and scoring)")
      ->check(CLI::Range(0.1, 86400.0))
      ->capture_default_str();
  cmd->add_option("--retries", a->retries, "Retries per HTTP request (backoff doubles from 0.5 s)")
      ->check(CLI::Range(0, 100))
      ->capture_default_str();
  cmd->add_option("--api-key", a->api_key,
                  "Sent as \"Authorization: Bearer KEY\" to the HTTP backends (regeneration, scoring); default: "
                  "$FAMQ_BACKEND_API_KEY, which keeps the key out of the process list. Never written to stage "
                  "files, bundles or logs");
}

void AddRegenerateOptions(CLI::App* cmd, PipelineArgs* a) {
  cmd->add_option("--regenerator", a->regenerator, "The larger family member that regenerates");
  cmd->add_flag("--self", a->self, "Ablation: the target regenerates its own data (self-calibration)");
  cmd->add_option("--template", a->template_name, "Prompt template: chat (the family's, thinking on) or base")
      ->check(CLI::IsMember({"chat", "base"}))
      ->capture_default_str();
  cmd->add_option("--cue", a->cue, "Reasoning cue after the prompt (default: \"<think>\\n\" chat, "
                                   "\"\\n\\nLet's think step by step.\\n\" base)");
  cmd->add_flag("--no-cot", a->no_cot, "Ablation: no reasoning cue (chat: thinking off)");
  cmd->add_option("--group-size,-G", a->group_size, "Candidates per original (G)")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  cmd->add_option("--temperature", a->temperature, "Sampling temperature")->check(CLI::Range(0.0, 10.0))->capture_default_str();
  cmd->add_option("--top-p", a->top_p, "Nucleus mass")->check(CLI::Range(0.0, 1.0))->capture_default_str();
  cmd->add_option("--top-k", a->top_k, "Top-k (0: off)")->check(CLI::Range(0, 1 << 24));
  cmd->add_option("--max-new-tokens", a->max_new_tokens, "Tokens generated per candidate at most")
      ->check(CLI::Range(1, 1 << 16))
      ->capture_default_str();
  cmd->add_option("--max-original-tokens", a->max_original_tokens, "The original is cut to its first P tokens in the prompt")
      ->check(CLI::Range(1, 1 << 16))
      ->capture_default_str();
  cmd->add_option("--seed", a->seed, "Run seed (group i samples with a seed derived from it)")->capture_default_str();
  cmd->add_option("--backend", a->backend,
                  "engine (in-process), openai:URL (an OpenAI-compatible server; one without /v1/completions is "
                  "used through /v1/chat/completions) or openai-chat:URL (chat completions only)")
      ->capture_default_str();
  cmd->add_option("--parallel-candidates", a->parallel_candidates,
                  "In-process engine: candidates decoded at a time in one batch, over several groups (fewer if "
                  "their KV caches would pass 1 GiB); does not change the candidates")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  AddHttpOptions(cmd, a);
}

void AddSelectOptions(CLI::App* cmd, PipelineArgs* a, bool bundle) {
  cmd->add_option("--expert", a->expert, "Scoring model directory (default: the regenerator)");
  cmd->add_option("--score-backend", a->score_backend,
                  std::string("engine (the in-process expert) or openai:URL: fidelity from echo logprobs, "
                              "prompt_logprobs or (the expert being the regenerator on that server, sampled at "
                              "temperature 1, top-p 1) the sampled tokens' logprobs; pooled states from "
                              "/v1/embeddings (pool_from, else the server's pooling of the texts); a term without "
                              "a path falls back to the engine (recorded). Default: ") +
                      (bundle ? "the --backend server when the expert is the regenerator, else engine" : "engine"));
  cmd->add_option("--embed-backend", a->embed_backend,
                  "openai:URL of a separate server for the pooled states (its /v1/embeddings; same --api-key); "
                  "default: the scoring backend");
  cmd->add_option("--keep,-k", a->keep, "Candidates kept per group (k)")->check(CLI::Range(1, 256))->capture_default_str();
  cmd->add_option("--w-fidelity", a->weights.fidelity, "Score weight a of fidelity")->capture_default_str();
  cmd->add_option("--w-consistency", a->weights.consistency, "Score weight b of consistency")->capture_default_str();
  cmd->add_option("--w-diversity", a->weights.diversity, "Score weight d of diversity")->capture_default_str();
  cmd->add_option("--min-new-tokens", a->penalties.min_new_tokens, "Hard filter: fewer generated tokens")->capture_default_str();
  cmd->add_option("--min-distinct2", a->penalties.min_distinct2, "Hard filter: lower distinct-bigram ratio")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  cmd->add_option("--unfinished-penalty", a->penalties.unfinished, "Penalty for a candidate cut at max new tokens")
      ->capture_default_str();
  cmd->add_flag("--no-compete", a->no_compete, "Ablation: keep k random candidates (scores still recorded)");
}

void AddPackOptions(CLI::App* cmd, PipelineArgs* a) {
  cmd->add_option("--seq-len,-L", a->renorm.seq_len, "Tokens per calibration sample (L)")
      ->check(CLI::Range(2, 1 << 16))
      ->capture_default_str();
  cmd->add_option("--tau", a->renorm.tau, "Softmax temperature of the sample weights in a group")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--original-mix", a->renorm.original_mix, "Mass of the original samples (lambda)")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  cmd->add_flag("--no-renorm", a->renorm.no_renorm, "Ablation: no packing, uniform weights, no token masks");
  cmd->add_flag("--originals-only", a->renorm.originals_only, "Baseline: the original samples, packed the same way");
  cmd->add_option("--sign", a->sign, "Private key (PEM) that signs the bundle (famq keygen)");
  cmd->add_flag("--allow-unsigned", a->allow_unsigned, "Write an unsigned bundle when no --sign is given");
}

void AddRunOptions(CLI::App* cmd, PipelineArgs* a) {
  cmd->add_option("--threads", a->threads, "Worker threads (0: one per CPU, at most 8)")->check(CLI::Range(0, 256));
  AddWeightsFlag(cmd, &a->engine_weights);
  cmd->add_flag("-q,--quiet", a->quiet, "No progress on stderr");
  cmd->add_option("--progress", a->progress, "Progress format on stderr: human or json")
      ->check(CLI::IsMember({"human", "json"}));
}

int RunRegenerateCmd(const PipelineArgs& a) {
  auto c = MakeRegenerateConfig(a);
  if (!c.ok()) return Fail(c.status());
  Status s = RunRegenerate(*c, a.out);
  return s.ok() ? 0 : Fail(s);
}

int RunSelectCmd(const PipelineArgs& a) {
  auto c = MakeSelectConfig(a, false);
  if (!c.ok()) return Fail(c.status());
  Status s = RunSelect(*c, a.in, a.out);
  return s.ok() ? 0 : Fail(s);
}

int RunPackCmd(const PipelineArgs& a) {
  PackConfig c = MakePackConfig(a);
  if (a.in.empty()) {
    if (!a.renorm.originals_only) return Fail(InvalidArgument("give --in select.jsonl (or --originals-only)"));
    if (a.target.empty()) return Fail(InvalidArgument("--originals-only needs --target"));
    auto calib = Calibration(a);
    if (!calib.ok()) return Fail(calib.status());
    c.calib = std::move(*calib);
  }
  Status s = RunPack(c, a.in, a.out);
  if (!s.ok()) return Fail(s);
  if (!a.quiet) std::fprintf(stderr, "[famq pack] wrote %s\n", a.out.c_str());
  return 0;
}

int RunBundleCmd(const PipelineArgs& a) {
  if (a.sign.empty() && !a.allow_unsigned) {
    return Fail(InvalidArgument("give --sign KEY.pem (famq keygen makes one) or --allow-unsigned"));
  }
  if (a.renorm.originals_only) {
    PipelineArgs p = a;
    p.in.clear();
    return RunPackCmd(p);
  }
  const std::string work = a.out + ".work";
  std::error_code ec;
  std::filesystem::create_directories(work, ec);
  if (ec) return Fail(IoError(work + ": cannot create (" + ec.message() + ")"));
  auto rc = MakeRegenerateConfig(a);
  if (!rc.ok()) return Fail(rc.status());
  const std::string regen = work + "/regenerate.jsonl", sel = work + "/select.jsonl";
  Status s = RunRegenerate(*rc, regen);
  if (!s.ok()) return Fail(s);
  auto sc = MakeSelectConfig(a, true);
  if (!sc.ok()) return Fail(sc.status());
  s = RunSelect(*sc, regen, sel);
  if (!s.ok()) return Fail(s);
  s = RunPack(MakePackConfig(a), sel, a.out);
  if (!s.ok()) return Fail(s);
  if (!a.quiet) std::fprintf(stderr, "[famq bundle] wrote %s (stage files in %s)\n", a.out.c_str(), work.c_str());
  return 0;
}

}  // namespace

void RegisterPipeline(CLI::App& app, ExitCode* exit_code) {
  {
    auto a = std::make_shared<PipelineArgs>();
    CLI::App* cmd = app.add_subcommand("regenerate", "Regenerate calibration candidates with a larger family member");
    AddInputOptions(cmd, a.get());
    AddRegenerateOptions(cmd, a.get());
    AddRunOptions(cmd, a.get());
    cmd->add_option("--out", a->out, "Output JSONL (resumed if it exists with the same settings)")->required();
    cmd->callback([a, exit_code] { exit_code->value = RunRegenerateCmd(*a); });
  }
  {
    auto a = std::make_shared<PipelineArgs>();
    CLI::App* cmd = app.add_subcommand("select", "Score candidates with the expert and keep the top k per group");
    AddSelectOptions(cmd, a.get(), false);
    AddHttpOptions(cmd, a.get());
    AddRunOptions(cmd, a.get());
    cmd->add_flag("--allow-foreign-family", a->allow_foreign, "Accept an expert with another tokenizer");
    cmd->add_option("--in", a->in, "famq regenerate output")->required();
    cmd->add_option("--out", a->out, "Output JSONL (resumed if it exists with the same settings)")->required();
    cmd->callback([a, exit_code] { exit_code->value = RunSelectCmd(*a); });
  }
  {
    auto a = std::make_shared<PipelineArgs>();
    CLI::App* cmd = app.add_subcommand("pack", "Re-normalize selected samples and write a signed bundle");
    AddPackOptions(cmd, a.get());
    AddInputOptions(cmd, a.get());
    AddRunOptions(cmd, a.get());
    cmd->add_option("--in", a->in, "famq select output (not needed with --originals-only)");
    cmd->add_option("--out", a->out, "Bundle file (written atomically)")->required();
    cmd->callback([a, exit_code] { exit_code->value = RunPackCmd(*a); });
  }
  {
    auto a = std::make_shared<PipelineArgs>();
    CLI::App* cmd = app.add_subcommand(
        "bundle", "Regenerate, compete, re-normalize, pack and sign: the whole host stage (resumable)");
    AddInputOptions(cmd, a.get());
    AddRegenerateOptions(cmd, a.get());
    AddSelectOptions(cmd, a.get(), true);
    AddPackOptions(cmd, a.get());
    AddRunOptions(cmd, a.get());
    cmd->add_option("--out", a->out, "Bundle file; stage files go to OUT.work/")->required();
    cmd->callback([a, exit_code] { exit_code->value = RunBundleCmd(*a); });
  }
}

}  // namespace famq::host_cli
