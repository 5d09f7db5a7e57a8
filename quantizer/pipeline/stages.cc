#include "pipeline/stages.h"

#include <algorithm>
#include <cstdio>
#include <deque>
#include <future>
#include <map>
#include <mutex>

#include "bundle/bundle.h"
#include "bundle/signing.h"
#include "core/file.h"
#include "pipeline/family.h"
#include "pipeline/openai_backend.h"
#include "engine/sampler.h"
#include "pipeline/records.h"

namespace famq {
namespace {

using OJson = nlohmann::ordered_json;

const char* kTool = "famq " FAMQ_VERSION_STRING;

OJson MemberJson(const FamilyMember& m) {
  return {{"name", m.name}, {"dir", m.dir}, {"config_sha256", m.config_sha256}, {"parameters", m.parameters}};
}

ModelIdentity IdentityFrom(const OJson& j) {
  ModelIdentity m;
  if (j.is_object()) {
    m.name = j.value("name", std::string());
    m.config_sha256 = j.value("config_sha256", std::string());
    m.parameters = j.value("parameters", uint64_t{0});
  }
  return m;
}

// Headers must agree on everything but the tool string and the backends (a
// resumed run may use another server for the rest).
OJson Comparable(OJson h) {
  h.erase("tool");
  h.erase("backend");
  h.erase("scoring_backend");
  h.erase("scoring_paths");  // checked by RunSelect (files from before it was recorded hold none)
  if (h.contains("regenerate")) h["regenerate"] = Comparable(h["regenerate"]);
  return h;
}

// Opens `out` for a stage: a new file with `header`, or the continuation of
// an existing one made with the same settings. *done: groups already there.
Result<std::unique_ptr<StageWriter>> OpenStage(const std::string& out, const std::string& stage, const OJson& header,
                                               std::vector<GroupRecord>* done, OJson* existing = nullptr) {
  done->clear();
  if (!FileExists(out)) return StageWriter::Create(out, header);
  FAMQ_ASSIGN_OR_RETURN(StageFile f, ReadStageFile(out, stage));
  if (existing) *existing = f.header;
  if (Comparable(f.header) != Comparable(header)) {
    return InvalidArgument(out + " holds a `famq " + stage +
                           "` run with other inputs or settings; remove it or choose another output to start afresh");
  }
  *done = std::move(f.groups);
  return StageWriter::Continue(out, f.valid_bytes);
}

int32_t SeparatorToken(const ModelDir& m) {
  if (auto id = m.tokenizer.TokenId("<|endoftext|>")) return *id;
  return m.stop_tokens.empty() ? -1 : m.stop_tokens.front();
}

std::vector<int32_t> Cut(std::vector<int32_t> ids, int cap) {
  if (static_cast<int>(ids.size()) > cap) ids.resize(static_cast<size_t>(cap));
  return ids;
}

// The URL of an "openai:URL" or "openai-chat:URL" backend ("" for others).
std::string BackendUrl(const std::string& backend, bool* chat) {
  *chat = backend.rfind("openai-chat:", 0) == 0;
  if (*chat) return backend.substr(12);
  return backend.rfind("openai:", 0) == 0 ? backend.substr(7) : std::string();
}

// The HTTP regeneration backend of c.backend, connected; nullptr for "engine".
Result<std::unique_ptr<GroupBackend>> MakeHttpGroupBackend(const RegenerateConfig& c, const ModelDir& regen) {
  bool chat = false;
  const std::string url = BackendUrl(c.backend, &chat);
  if (c.backend == "engine") return std::unique_ptr<GroupBackend>();
  if (url.empty()) {
    return InvalidArgument("regenerate: unknown backend '" + c.backend + "' (engine, openai:URL or openai-chat:URL)");
  }
#ifndef FAMQ_HAVE_HTTP
  (void)regen;
  return Unsupported("regenerate: this famq was built without HTTP support (cpp-httplib)");
#else
  OpenAIBackendOptions bo;
  bo.url = url;
  bo.chat = chat;
  bo.timeout_s = c.timeout_s;
  bo.retries = c.retries;
  bo.api_key = c.api_key;
  return MakeOpenAIBackend(bo, &regen.tokenizer);
#endif
}

// The in-process engine as the stage headers and the bundle's provenance
// name it: "engine" (fp32 weights, as before the option existed) or "engine
// with bf16 weights" (EngineOptions::weights).
std::string EngineLabel(const EngineOptions& o) {
  return o.weights == WeightType::kBf16 ? "engine with bf16 weights" : "engine";
}

// How select computes each score (docs/DESIGN.md §1.2), and with what.
struct ScoringPlan {
  std::string fidelity = "engine";     // echo | prompt_logprobs | sampled_logprobs | engine
  std::string consistency = "engine";  // pool_from | embeddings | engine
  std::string fidelity_why, consistency_why;  // why a term fell back to the engine ("": asked for)
  std::unique_ptr<ServerScorer> server;       // --score-backend's server (null: none)
  std::unique_ptr<ServerScorer> embed_server; // --embed-backend's server (null: none)
  std::unique_ptr<ScoringBackend> engine;     // the in-process expert, when a term needs it
  std::mutex engine_mu;                       // the engine takes one pass at a time
  const Tokenizer* tokenizer = nullptr;       // the expert's (texts for the embeddings path)
  std::vector<int32_t> stop_tokens;           // the expert's (left out of a candidate's text)
  std::string engine_label = "engine";        // EngineLabel of the expert's options

  ServerScorer* fidelity_server() const { return fidelity == "echo" || fidelity == "prompt_logprobs" ? server.get() : nullptr; }
  ServerScorer* pool_server() const {
    if (consistency == "engine") return nullptr;
    return embed_server ? embed_server.get() : server.get();
  }
  bool needs_engine() const { return fidelity == "engine" || consistency == "engine"; }
  // Whether the groups may be scored several at a time (any server in use).
  bool concurrent() const { return fidelity_server() != nullptr || pool_server() != nullptr; }
  // The longest sequence every backend in use accepts.
  int max_seq_len() const {
    int m = INT32_MAX;
    if (engine && needs_engine()) m = std::min(m, engine->max_seq_len());
    if (fidelity_server()) m = std::min(m, fidelity_server()->max_seq_len());
    if (pool_server()) m = std::min(m, pool_server()->max_seq_len());
    return m;
  }
  // The engine's pass (serialized).
  Status EngineRun(std::span<const int32_t> ids, int score_from, int pool_from, double* mean, std::vector<float>* pooled) {
    std::lock_guard<std::mutex> lock(engine_mu);
    return engine->Run(ids, score_from, pool_from, mean, pooled);
  }
  // The scoring_backend string of the select header and the bundle's provenance.
  std::string Describe() const {
    if (fidelity == "engine" && consistency == "engine") {
      std::string why = fidelity_why;
      if (!consistency_why.empty() && consistency_why != fidelity_why) why += (why.empty() ? "" : "; ") + consistency_why;
      return why.empty() ? engine_label : engine_label + " (fallback: " + why + ")";
    }
    std::string d = server ? server->Describe() : engine_label;
    d += " (fidelity: ";
    d += fidelity;
    if (fidelity == "sampled_logprobs") d += " reported by the regenerator";
    if (fidelity == "engine" && engine_label != "engine") d += " with bf16 weights";
    if (fidelity == "engine" && !fidelity_why.empty()) d += " (fallback: " + fidelity_why + ")";
    d += "; consistency: ";
    d += consistency;
    if (consistency == "engine" && engine_label != "engine") d += " with bf16 weights";
    if (consistency == "engine" && !consistency_why.empty()) d += " (fallback: " + consistency_why + ")";
    if (consistency != "engine" && embed_server) d += " from " + embed_server->Describe() + " (model " + embed_server->model() + ")";
    return d + ")";
  }
};

// Why the regenerator's sampled-token logprobs cannot stand for the
// expert's fidelity ("" when they can): the expert must be the regenerator,
// served by the scoring server that regenerated through /v1/completions,
// sampling from the model's raw distribution (temperature 1, top_p 1, no
// top_k; famq sends no penalties), and every candidate must carry them.
[[maybe_unused]] std::string SampledLogprobsRefusal(const StageFile& regen, const FamilyMember& em, const ServerScorer& server) {
  const OJson& h = regen.header;
  const std::string backend = h.value("backend", std::string());
  const std::string want = server.Describe();
  if (backend != want && backend.rfind(want + " (", 0) != 0) {
    return "the candidates were not regenerated through /v1/completions of " + want + " (backend: " + backend + ")";
  }
  const OJson& r = h["family"]["regenerator"];
  if (r.value("config_sha256", std::string()) != em.config_sha256 || r.value("name", std::string()) != em.name) {
    return "the expert is not the regenerator";
  }
  const OJson& o = h["options"];
  if (o.value("temperature", 0.0) != 1.0 || o.value("top_p", 0.0) != 1.0 || o.value("top_k", 0) > 0) {
    return "the regenerator sampled with temperature " + o["temperature"].dump() + ", top_p " + o["top_p"].dump() +
           ", top_k " + o["top_k"].dump() +
           ": its reported logprobs need not be the model's raw distribution (regenerate with --temperature 1 "
           "--top-p 1 --top-k 0)";
  }
  for (const auto& g : regen.groups) {
    for (size_t j = 0; j < g.candidates.size(); ++j) {
      const CandidateRecord& c = g.candidates[j];
      const size_t n = c.ids.size(), k = c.logprobs.size();
      const bool aligned = k == n || (c.finished && n > 0 && k == n - 1);
      if (!aligned || (k == 0 && n > (c.finished ? 1u : 0u))) {
        return "group " + std::to_string(g.group) + " candidate " + std::to_string(j) +
               " has no sampled logprobs from the server";
      }
    }
  }
  return "";
}

// Builds the plan of c.scoring_backend and c.embed_backend (probing the
// servers once). The engine is created by the caller when the plan needs it.
Result<std::unique_ptr<ScoringPlan>> MakeScoringPlan(const SelectConfig& c, const ModelDir& expert,
                                                     const FamilyMember& em, const StageFile& regen) {
  auto plan = std::make_unique<ScoringPlan>();
  plan->tokenizer = &expert.tokenizer;
  plan->stop_tokens = expert.stop_tokens;
  plan->engine_label = EngineLabel(c.engine);
  const bool server_asked = c.scoring_backend != "engine";
  if (server_asked && c.scoring_backend.rfind("openai:", 0) != 0) {
    return InvalidArgument("select: unknown scoring backend '" + c.scoring_backend + "' (engine or openai:URL)");
  }
  if (!c.embed_backend.empty() && c.embed_backend.rfind("openai:", 0) != 0 &&
      c.embed_backend.rfind("http", 0) != 0) {
    return InvalidArgument("select: --embed-backend '" + c.embed_backend + "' must be openai:URL or a URL");
  }
  if (!server_asked && c.embed_backend.empty()) return plan;
#ifndef FAMQ_HAVE_HTTP
  (void)expert;
  (void)em;
  (void)regen;
  return Unsupported("select: this famq was built without HTTP support (cpp-httplib)");
#else
  const int local_max_seq = c.engine.max_seq_len > 0
                                ? c.engine.max_seq_len
                                : std::min(expert.checkpoint.config().max_position_embeddings, 2048);
  OpenAIBackendOptions bo;
  bo.timeout_s = c.timeout_s;
  bo.retries = c.retries;
  bo.api_key = c.api_key;
  std::string pool_missing, pool_detail;
  if (server_asked) {
    bo.url = c.scoring_backend.substr(7);
    FAMQ_ASSIGN_OR_RETURN(OpenAIScorerProbe probe, ProbeOpenAIScorer(bo, local_max_seq));
    plan->server = std::move(probe.server);
    if (!plan->server->fidelity_path().empty()) {
      plan->fidelity = plan->server->fidelity_path();
    } else {
      const std::string refusal = SampledLogprobsRefusal(regen, em, *plan->server);
      if (refusal.empty()) {
        plan->fidelity = "sampled_logprobs";
      } else {
        plan->fidelity_why = probe.fidelity_missing + ", and " + refusal;
        std::fprintf(stderr, "[famq select] %s (%s); %s: fidelity falls back to the in-process expert\n",
                     probe.fidelity_missing.c_str(), probe.fidelity_detail.c_str(), refusal.c_str());
      }
    }
    if (c.embed_backend.empty()) {
      plan->consistency = plan->server->pool_path().empty() ? "engine" : plan->server->pool_path();
      pool_missing = probe.pool_missing;
      pool_detail = probe.pool_detail;
    }
  }
  if (!c.embed_backend.empty()) {
    bo.url = c.embed_backend.rfind("openai:", 0) == 0 ? c.embed_backend.substr(7) : c.embed_backend;
    FAMQ_ASSIGN_OR_RETURN(OpenAIScorerProbe probe, ProbeOpenAIScorer(bo, local_max_seq, false));
    plan->embed_server = std::move(probe.server);
    plan->consistency = plan->embed_server->pool_path().empty() ? "engine" : plan->embed_server->pool_path();
    pool_missing = probe.pool_missing;
    pool_detail = probe.pool_detail;
  }
  if (plan->consistency == "engine") {
    plan->consistency_why = pool_missing;
    std::fprintf(stderr, "[famq select] %s (%s): consistency falls back to the in-process expert\n",
                 pool_missing.c_str(), pool_detail.c_str());
  }
  if (plan->fidelity == "engine" && plan->consistency == "engine") {
    std::fprintf(stderr, "[famq select] scoring falls back to the in-process expert\n");
  }
  return plan;
#endif
}

// The expert's view of one group: the original's pooled state and each
// candidate's fidelity and pooled state (prompt + candidate, cut to the
// expert's context; both from the end of the prompt), each through the
// plan's path for it.
struct GroupPasses {
  std::vector<float> original;
  std::vector<double> fidelity;
  std::vector<std::vector<float>> embeddings;
  long long tokens = 0;
};

Result<GroupPasses> RunGroupPasses(ScoringPlan& plan, const GroupRecord& g, const std::string& where) {
  GroupPasses out;
  const int max_seq = plan.max_seq_len();
  std::vector<int32_t> orig = Cut(g.original_ids, max_seq);
  if (orig.empty()) return InvalidFormat(where + ": group " + std::to_string(g.group) + " has no original tokens");
  const int orig_pool = orig.size() > 1 ? 1 : 0;
  if (plan.consistency == "engine") {
    FAMQ_RETURN_IF_ERROR(plan.EngineRun(orig, static_cast<int>(orig.size()), orig_pool, nullptr, &out.original));
  } else if (plan.consistency == "pool_from") {
    FAMQ_RETURN_IF_ERROR(plan.pool_server()->PoolIds(orig, orig_pool, &out.original));
  } else {
    FAMQ_RETURN_IF_ERROR(plan.pool_server()->EmbedText(plan.tokenizer->Decode(orig), &out.original));
  }
  const auto check_length = [&](const std::vector<float>& v) -> Status {
    if (v.empty() || v.size() == out.original.size()) return Status::Ok();
    return InvalidFormat(where + ": group " + std::to_string(g.group) + ": the pooled vectors differ in length (" +
                         std::to_string(v.size()) + " and " + std::to_string(out.original.size()) + ")");
  };
  for (const auto& cand : g.candidates) {
    std::vector<int32_t> ids = g.prompt_ids;
    ids.insert(ids.end(), cand.ids.begin(), cand.ids.end());
    ids = Cut(std::move(ids), max_seq);
    const int p = static_cast<int>(std::min(g.prompt_ids.size(), ids.size() - 1));
    double fidelity = 0.0;
    std::vector<float> emb;
    if (plan.fidelity == "engine" && plan.consistency == "engine") {
      FAMQ_RETURN_IF_ERROR(plan.EngineRun(ids, p, p, &fidelity, &emb));  // one pass, as before
    } else if (plan.fidelity_server() && plan.consistency == "pool_from" && plan.pool_server() == plan.fidelity_server()) {
      FAMQ_RETURN_IF_ERROR(plan.server->Run(ids, p, p, &fidelity, &emb));  // the exact server
    } else {
      if (plan.fidelity == "engine") {
        FAMQ_RETURN_IF_ERROR(plan.EngineRun(ids, p, p, &fidelity, nullptr));
      } else if (plan.fidelity == "sampled_logprobs") {
        double sum = 0.0;
        for (double l : cand.logprobs) sum += l;
        fidelity = cand.logprobs.empty() ? 0.0 : sum / static_cast<double>(cand.logprobs.size());
      } else {
        FAMQ_RETURN_IF_ERROR(plan.fidelity_server()->Fidelity(ids, p, &fidelity));
      }
      if (plan.consistency == "engine") {
        FAMQ_RETURN_IF_ERROR(plan.EngineRun(ids, p, p, nullptr, &emb));
      } else if (plan.consistency == "pool_from") {
        FAMQ_RETURN_IF_ERROR(plan.pool_server()->PoolIds(ids, p, &emb));
      } else {
        // The generated text alone (a final stop token left out): the server pools what it is given.
        std::vector<int32_t> gen = cand.ids;
        if (!gen.empty() && std::find(plan.stop_tokens.begin(), plan.stop_tokens.end(), gen.back()) !=
                                plan.stop_tokens.end()) {
          gen.pop_back();
        }
        const std::string text = plan.tokenizer->Decode(gen);
        if (!text.empty()) FAMQ_RETURN_IF_ERROR(plan.pool_server()->EmbedText(text, &emb));
      }
    }
    FAMQ_RETURN_IF_ERROR(check_length(emb));
    out.tokens += static_cast<long long>(ids.size());
    out.fidelity.push_back(fidelity);
    out.embeddings.push_back(std::move(emb));
  }
  return out;
}

}  // namespace

Status RunRegenerate(const RegenerateConfig& c, const std::string& out) {
  if (c.calib.samples.empty()) return InvalidArgument("regenerate: no calibration samples");
  FAMQ_ASSIGN_OR_RETURN(ModelDir target, OpenModelDir(c.target));
  FAMQ_ASSIGN_OR_RETURN(FamilyMember tm, DescribeMember(target, c.target));
  std::optional<ModelDir> regen_dir;
  FamilyMember rm = tm;
  if (c.regenerator != c.target) {
    FAMQ_ASSIGN_OR_RETURN(ModelDir r, OpenModelDir(c.regenerator));
    regen_dir.emplace(std::move(r));
    FAMQ_ASSIGN_OR_RETURN(rm, DescribeMember(*regen_dir, c.regenerator));
    FAMQ_RETURN_IF_ERROR(CheckSameFamily(tm, rm, "regenerator", c.allow_foreign_family));
  }
  const ModelDir& regen = regen_dir ? *regen_dir : target;
  FAMQ_ASSIGN_OR_RETURN(std::unique_ptr<GroupBackend> backend, MakeHttpGroupBackend(c, regen));
  const std::string cue = EffectiveReasoningCue(c.prompt);
  OJson header{{"famq_stage", "regenerate"},
               {"version", 1},
               {"tool", kTool},
               {"family", {{"tokenizer_sha256", tm.tokenizer_sha256},
                           {"target", MemberJson(tm)},
                           {"regenerator", MemberJson(rm)},
                           {"foreign_allowed", c.allow_foreign_family}}},
               {"calib", {{"source", c.calib.source}, {"sha256", c.calib.sha256}, {"samples", c.calib.samples.size()}}},
               {"options", {{"template", c.prompt.style == PromptStyle::kChat ? "chat" : "base"},
                            {"reasoning_cue", cue},
                            {"no_cot", c.prompt.no_cot},
                            {"self", c.self_calibration},
                            {"max_original_tokens", c.prompt.max_original_tokens},
                            {"group_size", c.group.n},
                            {"temperature", c.group.temperature},
                            {"top_p", c.group.top_p},
                            {"top_k", c.group.top_k},
                            {"max_new_tokens", c.group.max_new_tokens},
                            {"seed", c.seed},
                            {"original_cap", c.original_cap},
                            {"separator", SeparatorToken(target)}}},
               {"backend", backend ? backend->Describe() : EngineLabel(c.engine)}};
  std::vector<GroupRecord> done;
  FAMQ_ASSIGN_OR_RETURN(auto writer, OpenStage(out, "regenerate", header, &done));
  const size_t n = c.calib.samples.size();
  if (done.size() >= n) {
    if (c.progress != ProgressMode::kQuiet) std::fprintf(stderr, "[famq regenerate] %s is complete\n", out.c_str());
    return Status::Ok();
  }
  if (!done.empty() && c.progress != ProgressMode::kQuiet) {
    std::fprintf(stderr, "[famq regenerate] resuming %s after group %zu of %zu\n", out.c_str(), done.size(), n);
  }

  std::unique_ptr<Engine> engine;
  std::unique_ptr<BatchDecoder> decoder;
  int inflight = 1;
  if (backend) {
    inflight = std::max(1, c.max_inflight);
  } else {
    // Slot 0 is the decoder's scratch; enough groups in flight to fill the
    // other slots, and one more ready to start as soon as a slot frees up.
    EngineOptions eo = c.engine;
    const int slots = DecodeSlots(regen.checkpoint.config(), eo, c.parallel_candidates);
    eo.max_sequences = 1 + slots;
    FAMQ_ASSIGN_OR_RETURN(engine, Engine::Create(regen.checkpoint, eo));
    FAMQ_ASSIGN_OR_RETURN(decoder, BatchDecoder::Create(engine.get()));
    backend = std::make_unique<EngineGroupBackend>(decoder.get());
    inflight = (slots + c.group.n - 1) / c.group.n + 1;
  }
  GroupParams gp = c.group;
  gp.stop_tokens = regen.stop_tokens;
  Progress progress("regenerate", static_cast<int>(n), c.progress);
  long long tokens = 0;
  // Groups run `inflight` at a time (HTTP); records are written in group order.
  struct Pending {
    GroupRecord g;
    std::future<Result<std::vector<GeneratedCandidate>>> result;
  };
  std::deque<Pending> window;
  std::map<std::string, long long> ids_from;  // an HTTP backend's sources of token ids, counted
  auto finish_front = [&]() -> Status {
    Pending p = std::move(window.front());
    window.pop_front();
    FAMQ_ASSIGN_OR_RETURN(auto cands, p.result.get());
    for (auto& cand : cands) {
      CandidateRecord r;
      r.text = regen.tokenizer.Decode(cand.ids);
      tokens += static_cast<long long>(cand.ids.size());
      r.ids = std::move(cand.ids);
      r.finished = cand.finished;
      if (!cand.ids_from.empty()) ++ids_from[cand.ids_from];
      r.ids_from = std::move(cand.ids_from);
      r.logprobs = std::move(cand.logprobs);
      p.g.candidates.push_back(std::move(r));
    }
    FAMQ_RETURN_IF_ERROR(writer->Append(GroupToJson(p.g)));
    progress.Update(static_cast<int>(p.g.group + 1), tokens);
    return Status::Ok();
  };
  for (size_t i = done.size(); i < n; ++i) {
    const CalibSample& s = c.calib.samples[i];
    auto prompt = BuildRegenerationPrompt(regen, s.text, c.prompt);
    if (!prompt.ok()) {
      return Status(prompt.status().code(), c.calib.source + ":" + std::to_string(s.line) + ": " +
                                                prompt.status().message());
    }
    GroupRecord g;
    g.group = static_cast<uint32_t>(i);
    g.line = s.line;
    g.original_text = s.text;
    std::vector<int32_t> orig;
    FAMQ_RETURN_IF_ERROR(target.tokenizer.Encode(s.text, &orig));
    g.original_ids = Cut(std::move(orig), c.original_cap);
    g.prompt_ids = prompt->ids;
    g.template_mask = prompt->template_mask;
    gp.seed = GroupSeed(c.seed, i);
    GroupBackend* be = backend.get();
    GroupRequest request{g.prompt_ids, regen.tokenizer.Decode(prompt->original_ids), c.prompt.no_cot};
    auto job = [be, request = std::move(request), gp] { return be->Generate(request, gp); };
    window.push_back({std::move(g), std::async(inflight > 1 ? std::launch::async : std::launch::deferred, job)});
    if (static_cast<int>(window.size()) >= inflight) FAMQ_RETURN_IF_ERROR(finish_front());
  }
  while (!window.empty()) FAMQ_RETURN_IF_ERROR(finish_front());
  progress.Finish(tokens);
  if (!ids_from.empty() && c.progress != ProgressMode::kQuiet) {
    std::string line;
    for (const auto& [source, count] : ids_from) {
      line += line.empty() ? "" : ", ";
      line += std::to_string(count);
      line += " from ";
      line += source;
    }
    std::fprintf(stderr, "[famq regenerate] candidates' token ids: %s (per candidate: \"ids_from\" in %s)\n",
                 line.c_str(), out.c_str());
  }
  return Status::Ok();
}

Status RunSelect(const SelectConfig& c, const std::string& regenerate_jsonl, const std::string& out) {
  if (c.keep < 1) return InvalidArgument("select: --keep must be at least 1");
  FAMQ_ASSIGN_OR_RETURN(StageFile regen, ReadStageFile(regenerate_jsonl, "regenerate"));
  const size_t n = regen.header["calib"].value("samples", size_t{0});
  if (regen.groups.size() < n) {
    return InvalidArgument(regenerate_jsonl + " is incomplete (" + std::to_string(regen.groups.size()) + " of " +
                           std::to_string(n) + " groups): rerun famq regenerate to finish it");
  }
  const std::string expert_dir =
      c.expert.empty() ? regen.header["family"]["regenerator"].value("dir", std::string()) : c.expert;
  FAMQ_ASSIGN_OR_RETURN(ModelDir expert_model, OpenModelDir(expert_dir));
  FAMQ_ASSIGN_OR_RETURN(FamilyMember em, DescribeMember(expert_model, expert_dir));
  FamilyMember tm;
  tm.dir = regen.header["family"]["target"].value("dir", std::string());
  tm.tokenizer_sha256 = regen.header["family"].value("tokenizer_sha256", std::string());
  FAMQ_RETURN_IF_ERROR(CheckSameFamily(tm, em, "expert", c.allow_foreign_family));
  const uint64_t seed = regen.header["options"].value("seed", uint64_t{0});
  FAMQ_ASSIGN_OR_RETURN(std::unique_ptr<ScoringPlan> plan, MakeScoringPlan(c, expert_model, em, regen));
  const OJson paths{{"fidelity", plan->fidelity}, {"consistency", plan->consistency}};
  OJson header{{"famq_stage", "select"},
               {"version", 1},
               {"tool", kTool},
               {"regenerate", regen.header},
               {"expert", MemberJson(em)},
               {"options", {{"weights", {{"fidelity", c.weights.fidelity},
                                         {"consistency", c.weights.consistency},
                                         {"diversity", c.weights.diversity}}},
                            {"min_new_tokens", c.penalties.min_new_tokens},
                            {"min_distinct2", c.penalties.min_distinct2},
                            {"unfinished_penalty", c.penalties.unfinished},
                            {"keep", c.keep},
                            {"no_compete", c.no_compete}}},
               {"scoring_backend", plan->Describe()},
               {"scoring_paths", paths}};
  std::vector<GroupRecord> done;
  OJson existing;
  FAMQ_ASSIGN_OR_RETURN(auto writer, OpenStage(out, "select", header, &done, &existing));
  // A resumed run scores the rest the same way: the paths give other
  // quantities. (A file from before scoring_paths was recorded: the exact ones.)
  if (existing.is_object()) {
    const OJson before = existing.contains("scoring_paths")
                             ? existing["scoring_paths"]
                             : OJson{{"fidelity", "exact"}, {"consistency", "exact"}};
    const auto exact = [](const OJson& p, const char* k, const char* a, const char* b) {
      const std::string v = p.value(k, std::string());
      return v == "exact" || v == "engine" || v == a || v == b;
    };
    const bool same = existing.contains("scoring_paths")
                          ? before == paths
                          : exact(paths, "fidelity", "echo", "prompt_logprobs") &&
                                exact(paths, "consistency", "pool_from", "pool_from");
    if (!same) {
      return InvalidArgument(out + " was scored with fidelity " + before.value("fidelity", std::string()) +
                             " and consistency " + before.value("consistency", std::string()) + ", this run has " +
                             plan->fidelity + " and " + plan->consistency +
                             ": resume with the same servers, or remove it to start afresh");
    }
  }
  if (done.size() >= n) {
    if (c.progress != ProgressMode::kQuiet) std::fprintf(stderr, "[famq select] %s is complete\n", out.c_str());
    return Status::Ok();
  }
  std::vector<std::vector<float>> kept_embeddings;
  for (const auto& g : done) {
    for (uint32_t k : g.kept) kept_embeddings.push_back(g.candidates[k].embedding);
  }
  if (plan->needs_engine()) {
    FAMQ_ASSIGN_OR_RETURN(plan->engine, Expert::Create(expert_model, c.engine));
  }
  ScoringPlan* expert = plan.get();
  Progress progress("select", static_cast<int>(n), c.progress);
  long long tokens = 0;
  // The expert's passes over a group depend on nothing but the group, so a
  // server (which may take several requests at once) scores up to
  // max_inflight groups ahead; diversity, which depends on the candidates
  // kept before, is combined in group order below.
  const int ahead = expert->concurrent() ? std::max(1, c.max_inflight) : 1;  // the engine's passes: serialized
  std::deque<std::future<Result<GroupPasses>>> window;
  size_t next = done.size();
  auto launch = [&] {
    const GroupRecord* g = &regen.groups[next];
    auto job = [expert, g, where = regenerate_jsonl] { return RunGroupPasses(*expert, *g, where); };
    window.push_back(std::async(ahead > 1 ? std::launch::async : std::launch::deferred, job));
    ++next;
  };
  for (size_t i = done.size(); i < n; ++i) {
    while (next < n && static_cast<int>(window.size()) < ahead) launch();
    auto passes_or = window.front().get();
    window.pop_front();
    if (!passes_or.ok()) return passes_or.status();
    GroupPasses& passes = *passes_or;
    GroupRecord g = regen.groups[i];
    tokens += passes.tokens;
    std::vector<ScoreTerms> scores;
    std::vector<std::vector<float>>& embs = passes.embeddings;
    for (size_t j = 0; j < g.candidates.size(); ++j) {
      CandidateRecord& cand = g.candidates[j];
      const std::vector<float>& emb = embs[j];
      float max_cos = 0.0f;
      for (const auto& k : kept_embeddings) {
        if (!emb.empty() && !k.empty() && emb.size() != k.size()) {
          return InvalidFormat("select: group " + std::to_string(i) + ": the pooled vectors differ in length (" +
                               std::to_string(emb.size()) + " numbers against a kept candidate's " +
                               std::to_string(k.size()) + ")");
        }
        max_cos = std::max(max_cos, Cosine(emb, k));
      }
      const float diversity = kept_embeddings.empty() ? 1.0f : 1.0f - max_cos;
      cand.scores = CombineScore(passes.fidelity[j], Cosine(emb, passes.original), diversity, cand.ids,
                                 cand.finished, c.weights, c.penalties);
      scores.push_back(*cand.scores);
    }
    if (c.no_compete) {
      std::vector<uint32_t> all(g.candidates.size());
      for (uint32_t j = 0; j < all.size(); ++j) all[j] = j;
      Rng rng(GroupSeed(seed ^ 0x5e1ec7ull, i));
      for (size_t j = all.size(); j > 1; --j) std::swap(all[j - 1], all[rng.Next() % j]);
      all.resize(std::min<size_t>(all.size(), static_cast<size_t>(c.keep)));
      g.kept = all;
    } else {
      g.kept = TopK(scores, c.keep);
    }
    for (uint32_t k : g.kept) {
      g.candidates[k].embedding = embs[k];
      kept_embeddings.push_back(embs[k]);
    }
    g.selected = true;
    FAMQ_RETURN_IF_ERROR(writer->Append(GroupToJson(g)));
    progress.Update(static_cast<int>(i + 1), tokens);
  }
  progress.Finish(tokens);
  return Status::Ok();
}

Status RunPack(const PackConfig& c, const std::string& select_jsonl, const std::string& out) {
  BundleContents b;
  std::vector<GroupRecord> groups;
  RenormOptions ro = c.renorm;
  OJson regen_header, sel_header;
  if (select_jsonl.empty()) {
    if (!ro.originals_only) return InvalidArgument("pack: give the select output (or --originals-only)");
    if (c.calib.samples.empty()) return InvalidArgument("pack: no calibration samples");
    FAMQ_ASSIGN_OR_RETURN(ModelDir target, OpenModelDir(c.target));
    FAMQ_ASSIGN_OR_RETURN(FamilyMember tm, DescribeMember(target, c.target));
    for (size_t i = 0; i < c.calib.samples.size(); ++i) {
      GroupRecord g;
      g.group = static_cast<uint32_t>(i);
      g.line = c.calib.samples[i].line;
      g.original_text = c.calib.samples[i].text;
      FAMQ_RETURN_IF_ERROR(target.tokenizer.Encode(g.original_text, &g.original_ids));
      if (g.original_ids.empty()) {
        return InvalidArgument(c.calib.source + ":" + std::to_string(g.line) + ": sample encodes to no tokens");
      }
      g.original_ids = Cut(std::move(g.original_ids), c.original_cap);
      groups.push_back(std::move(g));
    }
    if (ro.separator < 0) ro.separator = SeparatorToken(target);
    b.family.tokenizer_sha256 = tm.tokenizer_sha256;
    b.family.target = {tm.name, tm.config_sha256, tm.parameters};
    b.provenance = {kTool, c.seed, "none", "none", c.calib.sha256, c.calib.source};
  } else {
    FAMQ_ASSIGN_OR_RETURN(StageFile sel, ReadStageFile(select_jsonl, "select"));
    sel_header = sel.header;
    regen_header = sel.header["regenerate"];
    const size_t n = regen_header["calib"].value("samples", size_t{0});
    if (sel.groups.size() < n) {
      return InvalidArgument(select_jsonl + " is incomplete (" + std::to_string(sel.groups.size()) + " of " +
                             std::to_string(n) + " groups): rerun famq select to finish it");
    }
    groups = std::move(sel.groups);
    const OJson& fam = regen_header["family"];
    b.family.tokenizer_sha256 = fam.value("tokenizer_sha256", std::string());
    b.family.target = IdentityFrom(fam["target"]);
    if (!c.target.empty()) {  // one regeneration may serve every member of the family
      FAMQ_ASSIGN_OR_RETURN(ModelDir target, OpenModelDir(c.target));
      FAMQ_ASSIGN_OR_RETURN(FamilyMember tm, DescribeMember(target, c.target));
      if (tm.tokenizer_sha256 != b.family.tokenizer_sha256) {
        return InvalidArgument("pack: --target " + c.target + " has another tokenizer than the regenerated data (" +
                               tm.tokenizer_sha256.substr(0, 12) + " vs " +
                               b.family.tokenizer_sha256.substr(0, 12) + ")");
      }
      if (regen_header["options"].value("self", false) && tm.name != b.family.target.name) {
        return InvalidArgument("pack: self-calibration data of " + b.family.target.name + " cannot be packed for " +
                               tm.name);
      }
      b.family.target = {tm.name, tm.config_sha256, tm.parameters};
    }
    b.family.regenerator = IdentityFrom(fam["regenerator"]);
    b.family.expert = IdentityFrom(sel_header["expert"]);
    b.family.foreign_allowed = fam.value("foreign_allowed", false);
    const OJson& o = regen_header["options"];
    if (ro.separator < 0) ro.separator = o.value("separator", -1);
    b.recipe.group_size = o.value("group_size", 0u);
    b.recipe.temperature = o.value("temperature", 0.0f);
    b.recipe.top_p = o.value("top_p", 1.0f);
    b.recipe.max_new_tokens = o.value("max_new_tokens", 0u);
    b.recipe.chat_template = o.value("template", std::string()) == "chat";
    b.recipe.reasoning_cue = o.value("reasoning_cue", std::string());
    b.recipe.no_cot = o.value("no_cot", false);
    b.recipe.self_calibration = o.value("self", false);
    const OJson& so = sel_header["options"];
    b.recipe.keep = so.value("keep", 1u);
    b.recipe.weight_fidelity = so["weights"].value("fidelity", 0.0f);
    b.recipe.weight_consistency = so["weights"].value("consistency", 0.0f);
    b.recipe.weight_diversity = so["weights"].value("diversity", 0.0f);
    b.recipe.no_compete = so.value("no_compete", false);
    b.recipe.min_new_tokens = so.value("min_new_tokens", 0u);
    b.recipe.min_distinct2 = so.value("min_distinct2", 0.0f);
    ro.uniform_in_group = ro.uniform_in_group || b.recipe.no_compete;
    b.provenance = {regen_header.value("tool", std::string(kTool)), o.value("seed", uint64_t{0}),
                    regen_header.value("backend", std::string("engine")),
                    sel_header.value("scoring_backend", std::string("engine")),
                    regen_header["calib"].value("sha256", std::string()),
                    regen_header["calib"].value("source", std::string())};
  }
  int fallbacks = 0;
  FAMQ_ASSIGN_OR_RETURN(b.samples, Renormalize(groups, ro, &fallbacks));
  b.recipe.seq_len = static_cast<uint32_t>(ro.seq_len);
  b.recipe.tau = ro.tau;
  b.recipe.original_mix = ro.original_mix;
  b.recipe.no_renorm = ro.no_renorm;
  b.recipe.originals_only = ro.originals_only;
  b.num_originals = static_cast<uint32_t>(groups.size());
  for (const auto& g : groups) b.num_candidates += static_cast<uint32_t>(g.candidates.size());
  FAMQ_ASSIGN_OR_RETURN(std::vector<uint8_t> payload, SerializeBundlePayload(b));
  std::vector<uint8_t> bytes;
  if (!c.sign_key.empty()) {
    FAMQ_ASSIGN_OR_RETURN(PrivateKey key, PrivateKey::Load(c.sign_key));
    FAMQ_ASSIGN_OR_RETURN(std::vector<uint8_t> sig, key.Sign(Sha256(payload.data(), payload.size())));
    bytes = BuildBundleContainer(payload, key.key_id(), sig);
  } else if (c.allow_unsigned) {
    bytes = BuildBundleContainer(payload, "", {});
  } else {
    return InvalidArgument("pack: give --sign KEY.pem (or --allow-unsigned to write an unsigned bundle)");
  }
  if (fallbacks > 0) {
    std::fprintf(stderr, "[famq pack] %d of %zu groups had every candidate filtered; their originals stand in\n",
                 fallbacks, groups.size());
  }
  return WriteFileAtomic(out, bytes.data(), bytes.size());
}

}  // namespace famq
