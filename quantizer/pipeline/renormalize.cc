#include "pipeline/renormalize.h"

#include <algorithm>
#include <cmath>

namespace famq {
namespace {

struct Piece {
  std::vector<int32_t> ids;
  std::vector<uint8_t> mask;
};

Piece CandidatePiece(const GroupRecord& g, const CandidateRecord& c) {
  Piece p;
  p.ids = g.prompt_ids;
  p.mask.reserve(g.prompt_ids.size() + c.ids.size());
  for (uint8_t t : g.template_mask) p.mask.push_back(t ? 0 : 1);
  p.ids.insert(p.ids.end(), c.ids.begin(), c.ids.end());
  p.mask.insert(p.mask.end(), c.ids.size(), 1);
  return p;
}

Piece OriginalPiece(const GroupRecord& g) { return {g.original_ids, std::vector<uint8_t>(g.original_ids.size(), 1)}; }

// Cuts `first` to L, or packs `more` pieces after it (separated) up to L.
void Pack(Piece first, const std::vector<Piece>& more, const RenormOptions& o, BundleSample* s) {
  const size_t L = static_cast<size_t>(o.seq_len);
  s->tokens = std::move(first.ids);
  s->token_mask = std::move(first.mask);
  for (const Piece& p : more) {
    if (s->tokens.size() >= L) break;
    if (o.separator >= 0) {
      s->tokens.push_back(o.separator);
      s->token_mask.push_back(0);
    }
    s->tokens.insert(s->tokens.end(), p.ids.begin(), p.ids.end());
    s->token_mask.insert(s->token_mask.end(), p.mask.begin(), p.mask.end());
  }
  if (s->tokens.size() > L) {
    s->tokens.resize(L);
    s->token_mask.resize(L);
  }
  if (!s->token_mask.empty()) s->token_mask[0] = 0;  // the attention sink
}

}  // namespace

Result<std::vector<BundleSample>> Renormalize(const std::vector<GroupRecord>& groups, const RenormOptions& o,
                                              int* fallback_groups) {
  if (groups.empty()) return InvalidArgument("pack: no groups");
  if (o.seq_len < 2) return InvalidArgument("pack: sequence length must be at least 2");
  if (!(o.tau > 0.0f)) return InvalidArgument("pack: tau must be positive");
  if (!(o.original_mix >= 0.0f && o.original_mix <= 1.0f)) return InvalidArgument("pack: original mix must be in [0, 1]");
  const size_t n = groups.size();
  int fallbacks = 0;
  std::vector<BundleSample> out;

  auto original_sample = [&](size_t i, float weight) {
    BundleSample s;
    std::vector<Piece> more;
    if (!o.no_renorm) {
      for (size_t k = 1; k < n; ++k) more.push_back(OriginalPiece(groups[(i + k) % n]));
    }
    Pack(OriginalPiece(groups[i]), more, o, &s);
    if (o.no_renorm) std::fill(s.token_mask.begin(), s.token_mask.end(), 1);
    s.weight = weight;
    s.group = groups[i].group;
    s.regenerated = false;
    s.text = groups[i].original_text;
    return s;
  };

  if (o.originals_only) {
    for (size_t i = 0; i < n; ++i) out.push_back(original_sample(i, 1.0f / static_cast<float>(n)));
    if (fallback_groups) *fallback_groups = 0;
    return out;
  }

  for (size_t i = 0; i < n; ++i) {
    const GroupRecord& g = groups[i];
    if (!g.selected) return InvalidArgument("pack: group " + std::to_string(g.group) + " was not selected (run famq select)");
    if (g.kept.empty()) {  // every candidate filtered: the original stands in
      ++fallbacks;
      out.push_back(original_sample(i, 0.0f));
      continue;
    }
    // Packing order: kept (best first), then the rest by score.
    std::vector<uint32_t> order = g.kept;
    std::vector<uint32_t> rest;
    for (uint32_t c = 0; c < g.candidates.size(); ++c) {
      if (std::find(order.begin(), order.end(), c) == order.end()) rest.push_back(c);
    }
    std::stable_sort(rest.begin(), rest.end(), [&](uint32_t a, uint32_t b) {
      const float sa = g.candidates[a].scores ? g.candidates[a].scores->total : 0.0f;
      const float sb = g.candidates[b].scores ? g.candidates[b].scores->total : 0.0f;
      return sa > sb;
    });
    order.insert(order.end(), rest.begin(), rest.end());
    for (uint32_t k : g.kept) {
      BundleSample s;
      std::vector<Piece> more;
      if (!o.no_renorm) {
        for (uint32_t c : order) {
          if (c != k) more.push_back(CandidatePiece(g, g.candidates[c]));
        }
      }
      Pack(CandidatePiece(g, g.candidates[k]), more, o, &s);
      if (o.no_renorm) std::fill(s.token_mask.begin(), s.token_mask.end(), 1);
      s.group = g.group;
      s.regenerated = true;
      s.candidate = k;
      s.scores = g.candidates[k].scores;
      s.text = g.candidates[k].text;
      out.push_back(std::move(s));
    }
  }
  if (fallback_groups) *fallback_groups = fallbacks;

  // Weights.
  if (o.no_renorm) {
    for (auto& s : out) s.weight = 1.0f / static_cast<float>(out.size());
    return out;
  }
  const double group_mass = (1.0 - o.original_mix) / static_cast<double>(n);
  size_t at = 0;
  while (at < out.size()) {
    size_t end = at;
    while (end < out.size() && out[end].group == out[at].group) ++end;
    if (!out[at].regenerated) {
      out[at].weight = static_cast<float>(group_mass);
    } else {
      double mx = -1e300, z = 0.0;
      for (size_t i = at; i < end; ++i) mx = std::max(mx, double(out[i].scores ? out[i].scores->total : 0.0f));
      std::vector<double> e(end - at);
      for (size_t i = at; i < end; ++i) {
        const double s = o.uniform_in_group || !out[i].scores ? 0.0 : (out[i].scores->total - mx) / o.tau;
        e[i - at] = o.uniform_in_group ? 1.0 : std::exp(s);
        z += e[i - at];
      }
      for (size_t i = at; i < end; ++i) out[i].weight = static_cast<float>(group_mass * e[i - at] / z);
    }
    at = end;
  }
  if (o.original_mix > 0.0f) {
    for (size_t i = 0; i < n; ++i) out.push_back(original_sample(i, static_cast<float>(o.original_mix / n)));
  }
  // Float rounding: make the weights sum to 1 exactly enough for readers (1e-4).
  double sum = 0.0;
  for (const auto& s : out) sum += s.weight;
  for (auto& s : out) s.weight = static_cast<float>(s.weight / sum);
  return out;
}

}  // namespace famq
