#include "pipeline/regenerate.h"

#include <algorithm>

#include "engine/sampler.h"
#include "chat_template/chat_template.h"

namespace famq {
namespace {

constexpr char kPlaceholder[] = "\x01" "famq-original" "\x01";

Status Append(const Tokenizer& tok, const std::string& text, uint8_t mask, RegenPrompt* p) {
  if (text.empty()) return Status::Ok();
  std::vector<int32_t> ids;
  FAMQ_RETURN_IF_ERROR(tok.Encode(text, &ids));
  p->ids.insert(p->ids.end(), ids.begin(), ids.end());
  p->template_mask.insert(p->template_mask.end(), ids.size(), mask);
  return Status::Ok();
}

uint64_t Mix(uint64_t a, uint64_t b) {
  Rng r(a ^ (b * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull));
  r.Next();
  return r.Next();
}

}  // namespace

std::string DefaultReasoningCue(PromptStyle style) {
  return style == PromptStyle::kChat ? "<think>\n" : "\n\nLet's think step by step.\n";
}

std::string EffectiveReasoningCue(const PromptOptions& o) {
  if (o.no_cot) return "";
  return o.reasoning_cue.empty() ? DefaultReasoningCue(o.style) : o.reasoning_cue;
}

Result<RegenPrompt> BuildRegenerationPrompt(const ModelDir& model, const std::string& original,
                                            const PromptOptions& o) {
  if (o.max_original_tokens <= 0) return InvalidArgument("regenerate: max original tokens must be positive");
  RegenPrompt p;
  std::vector<int32_t> orig;
  FAMQ_RETURN_IF_ERROR(model.tokenizer.Encode(original, &orig));
  if (orig.empty()) return InvalidArgument("regenerate: the original sample encodes to no tokens");
  if (static_cast<int>(orig.size()) > o.max_original_tokens) orig.resize(static_cast<size_t>(o.max_original_tokens));
  const std::string cue = EffectiveReasoningCue(o);
  if (o.style == PromptStyle::kBase) {
    if (model.add_bos && model.bos_token) {
      p.ids.push_back(*model.bos_token);
      p.template_mask.push_back(1);
    }
    p.ids.insert(p.ids.end(), orig.begin(), orig.end());
    p.template_mask.insert(p.template_mask.end(), orig.size(), 0);
    FAMQ_RETURN_IF_ERROR(Append(model.tokenizer, cue, 1, &p));
    p.original_ids = std::move(orig);
    return p;
  }
  if (!model.tokenizer_config || model.tokenizer_config->chat_template.empty()) {
    return InvalidArgument("regenerate: the model has no chat_template in tokenizer_config.json (use --template base)");
  }
  FAMQ_ASSIGN_OR_RETURN(ChatTemplate tmpl, ChatTemplate::Parse(model.tokenizer_config->chat_template));
  ChatTemplateOptions opt;
  opt.enable_thinking = !o.no_cot;
  opt.bos_token = model.tokenizer_config->bos_token;
  opt.eos_token = model.tokenizer_config->eos_token;
  FAMQ_ASSIGN_OR_RETURN(std::string rendered, tmpl.Render({ChatMessage{"user", kPlaceholder}}, opt));
  const size_t at = rendered.find(kPlaceholder);
  if (at == std::string::npos || rendered.find(kPlaceholder, at + 1) != std::string::npos) {
    return Unsupported("regenerate: the chat template does not place the user message exactly once");
  }
  FAMQ_RETURN_IF_ERROR(Append(model.tokenizer, rendered.substr(0, at), 1, &p));
  p.ids.insert(p.ids.end(), orig.begin(), orig.end());
  p.template_mask.insert(p.template_mask.end(), orig.size(), 0);
  FAMQ_RETURN_IF_ERROR(Append(model.tokenizer, rendered.substr(at + sizeof(kPlaceholder) - 1), 1, &p));
  FAMQ_RETURN_IF_ERROR(Append(model.tokenizer, cue, 1, &p));
  p.original_ids = std::move(orig);
  return p;
}

int DecodeSlots(const ModelConfig& c, const EngineOptions& o, int wanted, size_t cache_budget_bytes) {
  const size_t want = static_cast<size_t>(std::max(1, wanted));
  const size_t context = static_cast<size_t>(o.max_seq_len > 0 ? o.max_seq_len
                                                                 : std::min(c.max_position_embeddings, 2048));
  const size_t per_slot = 2 * static_cast<size_t>(c.num_layers) * context * static_cast<size_t>(c.kv_dim()) *
                          sizeof(float);
  const size_t fit = per_slot == 0 ? want : cache_budget_bytes / per_slot;
  return static_cast<int>(std::clamp<size_t>(fit, 1, want));
}

bool AppendToken(const GroupParams& g, int32_t token, GeneratedCandidate* c) {
  c->ids.push_back(token);
  c->finished = std::find(g.stop_tokens.begin(), g.stop_tokens.end(), token) != g.stop_tokens.end();
  return c->finished || static_cast<int>(c->ids.size()) == g.max_new_tokens;
}

uint64_t GroupSeed(uint64_t run_seed, uint64_t group) { return Mix(run_seed, group); }
uint64_t CandidateSeed(uint64_t group_seed, uint64_t candidate) { return Mix(group_seed, candidate + 1); }

Result<SamplingParams> CheckGroupRequest(const Engine& engine, std::span<const int32_t> prompt, const GroupParams& g) {
  if (g.n < 1 || g.n > 1024) return InvalidArgument("regenerate: group size must be in [1, 1024]");
  if (g.max_new_tokens < 1) return InvalidArgument("regenerate: max new tokens must be positive");
  if (prompt.empty()) return InvalidArgument("regenerate: empty prompt");
  if (static_cast<int64_t>(prompt.size()) + g.max_new_tokens > engine.max_seq_len()) {
    return InvalidArgument("regenerate: prompt (" + std::to_string(prompt.size()) + " tokens) + max new tokens (" +
                           std::to_string(g.max_new_tokens) + ") exceed the context of " +
                           std::to_string(engine.max_seq_len()));
  }
  for (int32_t t : prompt) {
    if (t < 0 || t >= engine.vocab_size()) {
      return InvalidArgument("regenerate: prompt token id " + std::to_string(t) + " outside the vocabulary of " +
                             std::to_string(engine.vocab_size()));
    }
  }
  SamplingParams sp;
  sp.temperature = g.temperature;
  sp.top_p = g.top_p;
  sp.top_k = g.top_k;
  FAMQ_RETURN_IF_ERROR(ValidateSamplingParams(sp));
  return sp;
}

Result<std::vector<GeneratedCandidate>> GenerateGroup(Engine& engine, std::span<const int32_t> prompt,
                                                      const GroupParams& g) {
  FAMQ_ASSIGN_OR_RETURN(SamplingParams sp, CheckGroupRequest(engine, prompt, g));
  const size_t vocab = static_cast<size_t>(engine.vocab_size());
  const int start = static_cast<int>(prompt.size());
  // Candidates decode `width` at a time, one sequence slot each, every step
  // one batched forward pass over the unfinished ones.
  const int width = std::min({g.n, engine.max_sequences(), engine.max_batch()});
  std::vector<float> prompt_logits(vocab), logits(static_cast<size_t>(width) * vocab);
  FAMQ_RETURN_IF_ERROR(engine.Forward(prompt, 0, prompt_logits.data(), false));
  for (int s = 1; s < width; ++s) FAMQ_RETURN_IF_ERROR(engine.CopySequence(0, s, start));
  std::vector<Sampler> samplers(static_cast<size_t>(width), Sampler(engine.vocab_size(), sp));
  std::vector<int32_t> row_tok(static_cast<size_t>(width)), row_pos(static_cast<size_t>(width)),
      row_seq(static_cast<size_t>(width)), row_cand(static_cast<size_t>(width));
  std::vector<GeneratedCandidate> out(static_cast<size_t>(g.n));
  for (auto& c : out) c.ids.reserve(static_cast<size_t>(g.max_new_tokens));
  // Appends `tok` to candidate j; true when j is done.
  auto take = [&](int j, int32_t tok) { return AppendToken(g, tok, &out[static_cast<size_t>(j)]); };
  for (int first = 0; first < g.n; first += width) {
    const int count = std::min(width, g.n - first);
    int rows = 0;
    for (int s = 0; s < count; ++s) {
      Sampler& sampler = samplers[static_cast<size_t>(s)];
      sampler.Reseed(CandidateSeed(g.seed, static_cast<uint64_t>(first + s)));
      if (!take(first + s, sampler.Sample(prompt_logits.data()))) row_cand[static_cast<size_t>(rows++)] = s;
    }
    while (rows > 0) {
      for (int r = 0; r < rows; ++r) {
        const size_t ri = static_cast<size_t>(r);
        const GeneratedCandidate& c = out[static_cast<size_t>(first + row_cand[ri])];
        row_tok[ri] = c.ids.back();
        row_pos[ri] = start + static_cast<int>(c.ids.size()) - 1;
        row_seq[ri] = row_cand[ri];
      }
      const size_t n = static_cast<size_t>(rows);
      FAMQ_RETURN_IF_ERROR(engine.ForwardRows(std::span(row_tok).first(n), std::span(row_pos).first(n),
                                              std::span(row_seq).first(n), logits.data()));
      int kept = 0;
      for (int r = 0; r < rows; ++r) {
        const int s = row_cand[static_cast<size_t>(r)];
        const int32_t tok = samplers[static_cast<size_t>(s)].Sample(&logits[static_cast<size_t>(r) * vocab]);
        if (!take(first + s, tok)) row_cand[static_cast<size_t>(kept++)] = s;
      }
      rows = kept;
    }
  }
  return out;
}

}  // namespace famq
