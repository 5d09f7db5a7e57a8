#include "bundle/bundle_json.h"

#include <cstdio>

#include "tokenizer/unicode.h"

namespace famq {
namespace {

std::string Str(const flatbuffers::String* s) { return s ? s->str() : std::string(); }

nlohmann::ordered_json ModelJson(const fb::ModelId* m) {
  if (m == nullptr) return nullptr;
  return {{"name", Str(m->name())}, {"config_sha256", Str(m->config_sha256())}, {"parameters", m->parameters()}};
}

}  // namespace

nlohmann::ordered_json BundleToJson(const Bundle& bundle, bool with_tokens) {
  const fb::Payload& p = bundle.payload();
  nlohmann::ordered_json j;
  j["format_version"] = p.format_version();
  const auto& v = bundle.verification();
  j["verification"] = {{"signed", v.is_signed},
                       {"signature_checked", v.signature_checked},
                       {"key_id", v.key_id},
                       {"payload_sha256", v.payload_sha256},
                       {"file_bytes", bundle.file_size()}};
  const fb::Family* f = p.family();
  j["family"] = {{"tokenizer_sha256", Str(f->tokenizer_sha256())},
                 {"target", ModelJson(f->target())},
                 {"regenerator", ModelJson(f->regenerator())},
                 {"expert", ModelJson(f->expert())},
                 {"foreign_allowed", f->foreign_allowed()}};
  const fb::Recipe* r = p.recipe();
  j["recipe"] = {{"seq_len", r->seq_len()},
                 {"group_size", r->group_size()},
                 {"keep", r->keep()},
                 {"temperature", r->temperature()},
                 {"top_p", r->top_p()},
                 {"max_new_tokens", r->max_new_tokens()},
                 {"prompt_template", r->prompt_template() == fb::PromptTemplate::Chat ? "chat" : "base"},
                 {"reasoning_cue", Str(r->reasoning_cue())},
                 {"weights", {{"fidelity", r->weight_fidelity()},
                              {"consistency", r->weight_consistency()},
                              {"diversity", r->weight_diversity()}}},
                 {"tau", r->tau()},
                 {"original_mix", r->original_mix()},
                 {"min_new_tokens", r->min_new_tokens()},
                 {"min_distinct2", r->min_distinct2()},
                 {"ablations", {{"self", r->self_calibration()},
                                {"no_cot", r->no_cot()},
                                {"no_compete", r->no_compete()},
                                {"no_renorm", r->no_renorm()},
                                {"originals_only", r->originals_only()}}}};
  const fb::Provenance* pr = p.provenance();
  j["provenance"] = pr == nullptr ? nlohmann::ordered_json(nullptr)
                                  : nlohmann::ordered_json{{"tool", Str(pr->tool())},
                                                           {"seed", pr->seed()},
                                                           {"backend", Str(pr->backend())},
                                                           {"scoring_backend", Str(pr->scoring_backend())},
                                                           {"calib_sha256", Str(pr->calib_sha256())},
                                                           {"calib_source", Str(pr->calib_source())}};
  j["counts"] = {{"originals", p.num_originals()},
                 {"candidates", p.num_candidates()},
                 {"kept", p.num_kept()},
                 {"samples", p.samples()->size()},
                 {"tokens", p.total_tokens()}};
  auto samples = nlohmann::ordered_json::array();
  for (const fb::Sample* s : *p.samples()) {
    nlohmann::ordered_json sj;
    sj["group"] = s->group();
    sj["candidate"] = s->candidate();
    sj["kind"] = s->kind() == fb::SampleKind::Regenerated ? "regenerated" : "original";
    sj["weight"] = s->weight();
    sj["score"] = s->scores() ? nlohmann::ordered_json(s->scores()->total()) : nlohmann::ordered_json(nullptr);
    if (const fb::Scores* sc = s->scores()) {
      sj["scores"] = {{"fidelity", sc->fidelity()},   {"consistency", sc->consistency()},
                      {"diversity", sc->diversity()}, {"penalty", sc->penalty()},
                      {"distinct2", sc->distinct2()}, {"generated_tokens", sc->generated_tokens()},
                      {"finished", sc->finished()}};
    }
    sj["num_tokens"] = s->tokens()->size();
    size_t counted = 0;
    for (uint8_t m : *s->token_mask()) counted += m;
    sj["counted_tokens"] = counted;
    if (with_tokens) {
      sj["tokens"] = std::vector<int32_t>(s->tokens()->begin(), s->tokens()->end());
      sj["token_mask"] = std::vector<uint8_t>(s->token_mask()->begin(), s->token_mask()->end());
    }
    sj["text"] = Str(s->text());
    samples.push_back(std::move(sj));
  }
  j["samples"] = std::move(samples);
  return j;
}

std::string TerminalSafe(std::string_view text, size_t max_chars) {
  std::string out;
  size_t chars = 0;
  char hex[12];
  for (size_t i = 0; i < text.size();) {
    if (chars == max_chars) {
      out += "...";
      break;
    }
    ++chars;
    const auto b = static_cast<unsigned char>(text[i]);
    if (b == '\n' || b == '\t' || b == '\r') {
      out.push_back(' ');
      ++i;
      continue;
    }
    if (b < 0x20 || b == 0x7f) {
      std::snprintf(hex, sizeof hex, "\\x%02x", b);
      out += hex;
      ++i;
      continue;
    }
    if (b < 0x80) {
      out.push_back(static_cast<char>(b));
      ++i;
      continue;
    }
    // A well-formed UTF-8 sequence is kept, except C1 controls (U+0080-U+009F).
    const size_t len = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC2 ? 2 : 0;
    if (len == 0 || i + len > text.size() || !unicode::IsValidUtf8(text.substr(i, len))) {
      std::snprintf(hex, sizeof hex, "\\x%02x", b);
      out += hex;
      ++i;
      continue;
    }
    if (b == 0xC2 && static_cast<unsigned char>(text[i + 1]) < 0xA0) {
      std::snprintf(hex, sizeof hex, "\\u%04x", static_cast<unsigned char>(text[i + 1]));
      out += hex;
    } else {
      out.append(text.substr(i, len));
    }
    i += len;
  }
  return out;
}

}  // namespace famq
