#include "export/gguf_export.h"

#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/json_parse.h"
#include "export/gguf_writer.h"
#include "model/dtype.h"
#include "qmodel/qmodel.h"
#include "qmodel/qmodel_engine.h"
#include "tokenizer/pretokenizer.h"

namespace famq {
namespace {

using gguf::GgmlType;

// llama.cpp's token types (llama.h `enum llama_token_type`).
constexpr int32_t kTokenNormal = 1, kTokenUnused = 5, kTokenControl = 3, kTokenUserDefined = 4;

const char* ArchName(ModelArch a) {
  switch (a) {
    case ModelArch::kQwen3: return "qwen3";
    case ModelArch::kQwen2: return "qwen2";
    case ModelArch::kLlama: return "llama";
  }
  return "?";
}

// llama.cpp's name of the pre-tokenizer whose regex is `p` (llama-vocab.cpp:
// "gpt-2", "qwen2", "llama-bpe" select the same split regexes).
const char* PreTokenizerName(SplitPattern p) {
  switch (p) {
    case SplitPattern::kGpt2: return "gpt-2";
    case SplitPattern::kQwen2: return "qwen2";
    case SplitPattern::kLlama3: return "llama-bpe";
  }
  return "?";
}

struct TokenizerMeta {
  std::string pre;
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  std::vector<std::string> merges;
};

// The tokenizer metadata llama.cpp needs to encode as famq does, or the reason
// it cannot: famq::Tokenizer has already parsed and bounded the same text.
Result<TokenizerMeta> TokenizerMetadataUnchecked(const std::string& json_text, int vocab_size,
                                                 const std::string& origin) {
  nlohmann::json t;
  FAMQ_RETURN_IF_ERROR(ParseJson(json_text, origin + ": tokenizer.json", &t));
  auto refuse = [&](const std::string& why) {
    return Unsupported(origin + ": the tokenizer cannot be reproduced by llama.cpp: " + why);
  };
  const nlohmann::json& model = t.at("model");
  if (!model.is_object() || model.value("type", std::string()) != "BPE") return refuse("model is not BPE");
  if (model.contains("byte_fallback") && model["byte_fallback"].is_boolean() && model["byte_fallback"].get<bool>()) {
    return refuse("BPE byte_fallback (not byte-level)");
  }
  const bool ignore_merges =
      model.contains("ignore_merges") && model["ignore_merges"].is_boolean() && model["ignore_merges"].get<bool>();

  // Normalizer: llama.cpp applies none; NFC gives the same ids on NFC text.
  const nlohmann::json& norm = t.contains("normalizer") ? t["normalizer"] : nlohmann::json();
  if (!norm.is_null()) {
    const std::string type = norm.is_object() ? norm.value("type", std::string()) : std::string();
    if (type != "NFC") return refuse("normalizer '" + type + "' (llama.cpp applies no normalizer)");
  }

  // Pre-tokenizer: Sequence[Split(regex, Isolated), ByteLevel(use_regex=false)]
  // with a regex llama.cpp has, or a lone ByteLevel(use_regex=true) (GPT-2's).
  const nlohmann::json& pre = t.contains("pre_tokenizer") ? t["pre_tokenizer"] : nlohmann::json();
  std::optional<SplitPattern> pattern;
  auto byte_level_ok = [](const nlohmann::json& b, bool want_regex) {
    return b.is_object() && b.value("type", std::string()) == "ByteLevel" && !b.value("add_prefix_space", false) &&
           b.value("use_regex", true) == want_regex;
  };
  if (pre.is_object() && pre.value("type", std::string()) == "Sequence" && pre.contains("pretokenizers") &&
      pre["pretokenizers"].is_array() && pre["pretokenizers"].size() == 2) {
    const nlohmann::json& split = pre["pretokenizers"][0];
    if (split.is_object() && split.value("type", std::string()) == "Split" &&
        split.value("behavior", std::string()) == "Isolated" && !split.value("invert", false) &&
        split.contains("pattern") && split["pattern"].is_object() && split["pattern"].contains("Regex") &&
        split["pattern"]["Regex"].is_string() && byte_level_ok(pre["pretokenizers"][1], false)) {
      pattern = RecognizeSplitPattern(split["pattern"]["Regex"].get<std::string>());
      if (!pattern) return refuse("its split regex is none of llama.cpp's gpt-2 / qwen2 / llama-bpe pre-tokenizers");
    }
  } else if (byte_level_ok(pre, true)) {
    pattern = SplitPattern::kGpt2;
  }
  if (!pattern) return refuse("the pre-tokenizer is not Split(regex) + ByteLevel or ByteLevel(use_regex)");
  TokenizerMeta meta;
  meta.pre = PreTokenizerName(*pattern);
  if (ignore_merges != (*pattern == SplitPattern::kLlama3)) {
    return refuse(std::string("ignore_merges is ") + (ignore_merges ? "true" : "false") + ", llama.cpp's '" + meta.pre +
                  "' pre-tokenizer has it " + (ignore_merges ? "false" : "true"));
  }

  meta.tokens.assign(static_cast<size_t>(vocab_size), std::string());
  meta.types.assign(static_cast<size_t>(vocab_size), 0);
  auto place = [&](int64_t id, const std::string& text, int32_t type) -> Status {
    if (id < 0 || id >= vocab_size) {
      return refuse("token id " + std::to_string(id) + " is outside the model's vocabulary of " +
                    std::to_string(vocab_size));
    }
    meta.tokens[static_cast<size_t>(id)] = text;
    meta.types[static_cast<size_t>(id)] = type;
    return Status::Ok();
  };
  if (!model.contains("vocab") || !model["vocab"].is_object()) return refuse("no BPE vocab");
  for (auto it = model["vocab"].begin(); it != model["vocab"].end(); ++it) {
    if (!it.value().is_number_integer()) return refuse("a vocab id is not an integer");
    FAMQ_RETURN_IF_ERROR(place(it.value().get<int64_t>(), it.key(), kTokenNormal));
  }
  if (t.contains("added_tokens") && t["added_tokens"].is_array()) {
    for (const nlohmann::json& a : t["added_tokens"]) {
      if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer() || !a.contains("content") ||
          !a["content"].is_string()) {
        return refuse("an added token without id / content");
      }
      const std::string content = a["content"].get<std::string>();
      if (a.value("lstrip", false) || a.value("rstrip", false) || a.value("single_word", false)) {
        return refuse("added token '" + content + "' has lstrip / rstrip / single_word, which GGUF does not carry");
      }
      FAMQ_RETURN_IF_ERROR(place(a["id"].get<int64_t>(), content, a.value("special", false) ? kTokenControl
                                                                                            : kTokenUserDefined));
    }
  }
  for (size_t i = 0; i < meta.tokens.size(); ++i) {
    if (meta.types[i] == 0) {  // an id the tokenizer never produces (padded embedding rows)
      meta.tokens[i] = "[PAD" + std::to_string(i) + "]";
      meta.types[i] = kTokenUnused;
    }
  }
  if (!model.contains("merges") || !model["merges"].is_array()) return refuse("no BPE merges");
  meta.merges.reserve(model["merges"].size());
  for (const nlohmann::json& m : model["merges"]) {
    if (m.is_string()) {
      meta.merges.push_back(m.get<std::string>());
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      std::string s = m[0].get<std::string>();
      s += ' ';
      s += m[1].get<std::string>();
      meta.merges.push_back(std::move(s));
    } else {
      return refuse("a merge is neither \"a b\" nor [\"a\", \"b\"]");
    }
  }
  return meta;
}

// The same; a field of an unexpected JSON type (nlohmann's accessors throw)
// is an error, not an exception.
Result<TokenizerMeta> TokenizerMetadata(const std::string& json_text, int vocab_size, const std::string& origin) {
  try {
    return TokenizerMetadataUnchecked(json_text, vocab_size, origin);
  } catch (const nlohmann::json::exception& e) {
    return InvalidFormat(origin + ": tokenizer.json: " + e.what());
  }
}

// The floating-point tensor `name` as F32 values.
Result<std::vector<float>> FloatValues(const QModel& q, const std::string& name) {
  FAMQ_ASSIGN_OR_RETURN(TensorView v, q.Tensor(name));
  std::vector<float> out(static_cast<size_t>(v.numel()));
  ConvertToF32(v.dtype, v.data, out.size(), out.data());
  return out;
}

std::vector<uint8_t> F32Bytes(const std::vector<float>& v) {
  std::vector<uint8_t> b(v.size() * 4);
  if (!v.empty()) std::memcpy(b.data(), v.data(), b.size());
  return b;
}

std::vector<float> FbFloats(const flatbuffers::Vector<float>* v) {
  return v ? std::vector<float>(v->begin(), v->end()) : std::vector<float>();
}

bool AllOnes(const std::vector<float>& v) {
  for (float x : v) {
    if (x != 1.0f) return false;
  }
  return true;
}

// Indices of the quantized embedding and untied head for QuantSlice / MatrixCache.
constexpr int kEmbeddingIndex = -1, kLmHeadIndex = -2;

// One quantized GGUF tensor: rows [row0, row0 + rows) of linear `index` (a
// block linear, kEmbeddingIndex or kLmHeadIndex), in
// the order perm(r) (identity if empty), each row's scales times row_mul[r]
// (none if empty).
struct QuantSlice {
  int index = 0;
  int row0 = 0, rows = 0;
  std::function<int(int)> perm;
  std::vector<float> row_mul;
};

// One unpacked linear at a time: q|k|v and gate|up are read three / two times
// in a row, so keep the last.
class MatrixCache {
 public:
  explicit MatrixCache(const QModel* q) : q_(q) {}
  // The linear, checked against its integrity digest when first unpacked.
  Result<const QMatrix*> Get(int index) {
    if (!valid_ || index != index_) {
      valid_ = false;
      if (index == kEmbeddingIndex) {
        FAMQ_ASSIGN_OR_RETURN(m_, q_->EmbeddingMatrix());
      } else if (index == kLmHeadIndex) {
        FAMQ_ASSIGN_OR_RETURN(m_, q_->HeadMatrix());
      } else {
        FAMQ_ASSIGN_OR_RETURN(m_, q_->Matrix(index));
      }
      index_ = index;
      valid_ = true;
    }
    return &m_;
  }

 private:
  const QModel* q_;
  bool valid_ = false;
  int index_ = 0;
  QMatrix m_;
};

Status ProduceQuant(MatrixCache* cache, const QuantSlice& s, GgmlType type, const std::string& name,
                    std::vector<uint8_t>* out) {
  FAMQ_ASSIGN_OR_RETURN(const QMatrix* matrix, cache->Get(s.index));
  const QMatrix& m = *matrix;
  const int G = m.groups_per_row();
  const int blocks = m.cols / gguf::kQK;
  out->resize(gguf::RowBytes(type, static_cast<uint64_t>(m.cols)) * static_cast<size_t>(s.rows));
  uint8_t* dst = out->data();
  uint8_t nib[gguf::kQK];
  for (int r = 0; r < s.rows; ++r) {
    const int src = s.row0 + (s.perm ? s.perm(r) : r);
    const float mul = s.row_mul.empty() ? 1.0f : s.row_mul[static_cast<size_t>(r)];
    for (int b = 0; b < blocks; ++b) {
      const int g = b * gguf::kQK / m.group_size;
      const size_t gi = static_cast<size_t>(src) * static_cast<size_t>(G) + static_cast<size_t>(g);
      const float d = m.scales[gi] * mul;
      const int zero = m.zeros[gi];
      const int8_t* codes = m.codes.data() + static_cast<size_t>(src) * static_cast<size_t>(m.cols) +
                            static_cast<size_t>(b) * gguf::kQK;
      if (!(std::fabs(d) <= 65504.0f) || !(std::fabs(d * static_cast<float>(8 + zero)) <= 65504.0f)) {
        return Unsupported(name + ": a scale of " + std::to_string(d) + " does not fit in fp16");
      }
      if (type != GgmlType::kQ4_1 && zero != 0) {
        return Internal(name + ": a zero point in a tensor exported as symmetric");
      }
      if (type == GgmlType::kQ8_0) {
        gguf::BlockQ8_0 blk;
        gguf::PackQ8_0(codes, d, &blk);
        std::memcpy(dst, &blk, sizeof blk);
        dst += sizeof blk;
        continue;
      }
      for (int j = 0; j < gguf::kQK; ++j) nib[j] = static_cast<uint8_t>(codes[j] + 8);
      if (type == GgmlType::kQ4_0) {
        gguf::BlockQ4_0 blk;
        gguf::PackQ4_0(nib, d, &blk);
        std::memcpy(dst, &blk, sizeof blk);
        dst += sizeof blk;
      } else {
        gguf::BlockQ4_1 blk;
        gguf::PackQ4_1(nib, d, -d * static_cast<float>(8 + zero), &blk);
        std::memcpy(dst, &blk, sizeof blk);
        dst += sizeof blk;
      }
    }
  }
  return Status::Ok();
}

std::string Str(const flatbuffers::String* s) { return s ? s->str() : std::string(); }

}  // namespace

Result<GgufExportReport> ExportGguf(const std::string& qmodel_path, const std::string& out_path) {
  if (out_path.empty()) return InvalidArgument("export: no output path");
  FAMQ_ASSIGN_OR_RETURN(RunnableModel rm, OpenRunnableModel("", qmodel_path));
  const QModel& q = *rm.qmodel;
  const fb::QModel& r = q.root();
  const ModelConfig& c = q.config();
  const std::string& origin = q.origin();
  auto refuse = [&](const std::string& why) { return Unsupported(origin + ": not exported to GGUF: " + why); };

  // --- what GGUF can hold exactly ---
  if (r.scheme() == fb::QScheme::W8A8Static) {
    return refuse("static W8A8 (llama.cpp has no static int8 activation ranges; finalize a weight-only model)");
  }
  if (r.wbits() != 4 && r.wbits() != 8) {
    return refuse("W" + std::to_string(r.wbits()) + " has no exact GGUF block type (W4 and W8 only)");
  }
  if (r.wbits() == 8 && !r.symmetric()) {
    return refuse("W8 with zero points (Q8_0 is symmetric; finalize with --symmetric)");
  }
  if (c.rope_scaling.llama3) return refuse("llama3 rope scaling is not exported (no rope_freqs tensor yet)");
  const GgmlType wtype = r.wbits() == 8 ? GgmlType::kQ8_0 : (r.symmetric() ? GgmlType::kQ4_0 : GgmlType::kQ4_1);
  const int L = c.num_layers, H = c.hidden_size, I = c.intermediate_size, QD = c.q_dim(), KV = c.kv_dim();
  bool folded = false;
  for (int i = 0; i < static_cast<int>(r.linears()->size()); ++i) {
    const fb::QuantLinear* l = r.linears()->Get(static_cast<flatbuffers::uoffset_t>(i));
    const std::string name = Str(l->name());
    const uint32_t g = l->group_size();
    if (g % 32 != 0) {
      return refuse(name + ": group " + std::to_string(g) +
                    " is not a multiple of 32 (GGUF blocks hold 32 weights with one scale)");
    }
    if (l->bits() != r.wbits()) return refuse(name + ": mixed bit widths");
    const std::vector<float> mult = FbFloats(l->input_multiplier());
    if (mult.empty() || AllOnes(mult)) continue;
    folded = true;
    if (i % 4 == 1 && c.num_heads != c.num_kv_heads) {
      return refuse(name + ": an AWQ input multiplier on o_proj under grouped-query attention (" +
                    std::to_string(c.num_heads) + " query heads, " + std::to_string(c.num_kv_heads) +
                    " value heads) cannot be folded exactly into v_proj; famq's AWQ no longer scales o_proj there, "
                    "finalize again");
    }
    for (float x : mult) {
      if (!(x > 0.0f) || !std::isfinite(x)) return refuse(name + ": an input multiplier that is not positive");
    }
  }

  FAMQ_ASSIGN_OR_RETURN(TokenizerMeta tok, TokenizerMetadata(Str(r.tokenizer_json()), c.vocab_size, origin));

  // --- metadata ---
  gguf::Writer w;
  const std::string arch = ArchName(c.arch);
  const std::string a = arch + ".";
  w.AddString("general.architecture", arch);
  w.AddString("general.name", Str(r.source_name()));
  w.AddU32("general.quantization_version", 2);
  w.AddU32("general.file_type", wtype == GgmlType::kQ4_0 ? 2u : wtype == GgmlType::kQ4_1 ? 3u : 7u);
  w.AddU32(a + "context_length", static_cast<uint32_t>(c.max_position_embeddings));
  w.AddU32(a + "embedding_length", static_cast<uint32_t>(H));
  w.AddU32(a + "block_count", static_cast<uint32_t>(L));
  w.AddU32(a + "feed_forward_length", static_cast<uint32_t>(I));
  w.AddU32(a + "attention.head_count", static_cast<uint32_t>(c.num_heads));
  w.AddU32(a + "attention.head_count_kv", static_cast<uint32_t>(c.num_kv_heads));
  w.AddU32(a + "attention.key_length", static_cast<uint32_t>(c.head_dim));
  w.AddU32(a + "attention.value_length", static_cast<uint32_t>(c.head_dim));
  w.AddU32(a + "rope.dimension_count", static_cast<uint32_t>(c.head_dim));
  w.AddF32(a + "rope.freq_base", c.rope_theta);
  w.AddF32(a + "attention.layer_norm_rms_epsilon", c.rms_norm_eps);
  w.AddU32(a + "vocab_size", static_cast<uint32_t>(c.vocab_size));

  w.AddString("tokenizer.ggml.model", "gpt2");
  w.AddString("tokenizer.ggml.pre", tok.pre);
  w.AddStringArray("tokenizer.ggml.tokens", tok.tokens);
  w.AddI32Array("tokenizer.ggml.token_type", tok.types);
  w.AddStringArray("tokenizer.ggml.merges", tok.merges);
  auto id_of = [&](const std::string& content) -> std::optional<int32_t> {
    if (content.empty()) return std::nullopt;
    return rm.tokenizer.TokenId(content);
  };
  std::optional<int32_t> bos = rm.bos_token;
  if (!bos && !c.bos_token_ids.empty()) bos = c.bos_token_ids[0];
  std::optional<int32_t> eos, pad;
  if (rm.tokenizer_config) {
    eos = id_of(rm.tokenizer_config->eos_token);
    pad = id_of(rm.tokenizer_config->pad_token);
  }
  if (!eos && !c.eos_token_ids.empty()) eos = c.eos_token_ids[0];
  if (!eos && !rm.stop_tokens.empty()) eos = rm.stop_tokens[0];
  if (bos) w.AddU32("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(*bos));
  if (eos) w.AddU32("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(*eos));
  if (pad) w.AddU32("tokenizer.ggml.padding_token_id", static_cast<uint32_t>(*pad));
  w.AddBool("tokenizer.ggml.add_bos_token", rm.add_bos);
  w.AddBool("tokenizer.ggml.add_eos_token", false);
  if (rm.tokenizer_config && !rm.tokenizer_config->chat_template.empty()) {
    w.AddString("tokenizer.chat_template", rm.tokenizer_config->chat_template);
  }

  // famq's provenance.
  w.AddString("famq.source_tool", "famq-rt " FAMQ_VERSION_STRING " export");
  w.AddString("famq.scheme", std::string("W") + std::to_string(r.wbits()) + " " +
                                 (r.group_size() == 0 ? std::string("per-channel") : "g" + std::to_string(r.group_size())) +
                                 (r.symmetric() ? " symmetric" : " asymmetric"));
  w.AddString("famq.tokenizer_sha256", Str(r.tokenizer_sha256()));
  w.AddString("famq.source_config_sha256", Str(r.source_config_sha256()));
  if (const fb::QProvenance* p = r.provenance()) {
    w.AddString("famq.finalize_tool", Str(p->tool()));
    w.AddString("famq.method", fb::EnumNameQMethod(p->method()));
    w.AddString("famq.calibration", Str(p->calibration()));
    w.AddString("famq.calib_source", Str(p->calib_source()));
    w.AddString("famq.bundle_payload_sha256", Str(p->bundle_payload_sha256()));
    w.AddString("famq.bundle_key_id", Str(p->bundle_key_id()));
    w.AddU32("famq.samples", p->samples());
    w.AddU64("famq.calib_tokens", p->calib_tokens());
    w.AddF32("famq.private_mix", p->private_mix());
    if (p->method() == fb::QMethod::Gptq) {
      w.AddF32("famq.gptq_damp", p->gptq_damp());
      w.AddBool("famq.gptq_act_order", p->gptq_act_order());
    }
  }
  w.AddBool("famq.folded_input_multipliers", folded);

  // --- tensors ---
  auto cache = std::make_shared<MatrixCache>(&q);
  const auto u64 = [](int x) { return static_cast<uint64_t>(x); };
  auto copy_float = [&](const std::string& gguf_name, const std::string& famq_name) -> Status {
    FAMQ_ASSIGN_OR_RETURN(TensorView v, q.Tensor(famq_name));
    const GgmlType t = v.dtype == DType::kBF16 ? GgmlType::kBF16 : v.dtype == DType::kF16 ? GgmlType::kF16 : GgmlType::kF32;
    std::vector<uint64_t> ne(v.shape.rbegin(), v.shape.rend());
    const QModel* qp = &q;
    return w.AddTensor(gguf_name, std::move(ne), t, [qp, famq_name](std::vector<uint8_t>* b) -> Status {
      FAMQ_ASSIGN_OR_RETURN(TensorView tv, qp->Tensor(famq_name));
      b->assign(tv.data, tv.data + tv.num_bytes);
      return Status::Ok();
    });
  };
  auto add_f32 = [&](const std::string& gguf_name, std::vector<float> values) -> Status {
    const uint64_t n = values.size();
    auto shared = std::make_shared<std::vector<float>>(std::move(values));
    return w.AddTensor(gguf_name, {n}, GgmlType::kF32, [shared](std::vector<uint8_t>* b) -> Status {
      *b = F32Bytes(*shared);
      return Status::Ok();
    });
  };
  auto add_quant = [&](const std::string& gguf_name, QuantSlice s, int cols) -> Status {
    auto sp = std::make_shared<QuantSlice>(std::move(s));
    return w.AddTensor(gguf_name, {u64(cols), u64(sp->rows)}, wtype,
                       [cache, sp, wtype, gguf_name](std::vector<uint8_t>* b) -> Status {
                         return ProduceQuant(cache.get(), *sp, wtype, gguf_name, b);
                       });
  };
  // Llama: HF's rotate-half rows (i, i + d/2) of each head become llama.cpp's
  // interleaved pairs (2i, 2i + 1) (convert_hf_to_gguf's permute).
  const int D = c.head_dim;
  std::function<int(int)> rot;
  if (c.arch == ModelArch::kLlama) {
    rot = [D](int rr) {
      const int h = rr / D, k = rr % D;
      return h * D + (k % 2) * (D / 2) + k / 2;
    };
  }
  auto permuted = [&](const std::vector<float>& v) {
    if (!rot) return v;
    std::vector<float> o(v.size());
    for (size_t i = 0; i < v.size(); ++i) o[i] = v[static_cast<size_t>(rot(static_cast<int>(i)))];
    return o;
  };

  // A quantized embedding / head keeps its own type (it may have other bits
  // than the blocks): W8 -> Q8_0, W6 -> Q8_0 (a 6-bit code is an int8 code; a
  // g32 group is one Q8_0 block with the same scale), W4 -> Q4_0, or Q4_1 with
  // zero points.
  auto add_quant_embedding = [&](const std::string& gguf_name, int index, const fb::QuantLinear& l) -> Status {
    const bool zeros = !RecordIsSymmetric(l);
    const bool q8 = l.bits() == 8 || l.bits() == 6;
    if (q8 && zeros) {
      return refuse(gguf_name + ": W" + std::to_string(l.bits()) + " with zero points (Q8_0 is symmetric)");
    }
    if (l.bits() != 4 && !q8) return refuse(gguf_name + ": W" + std::to_string(l.bits()) + " has no GGUF block type");
    const GgmlType t = q8 ? GgmlType::kQ8_0 : (zeros ? GgmlType::kQ4_1 : GgmlType::kQ4_0);
    auto sp = std::make_shared<QuantSlice>(QuantSlice{index, 0, static_cast<int>(l.rows()), nullptr, {}});
    return w.AddTensor(gguf_name, {u64(H), u64(c.vocab_size)}, t, [cache, sp, t, gguf_name](std::vector<uint8_t>* b) {
      return ProduceQuant(cache.get(), *sp, t, gguf_name, b);
    });
  };
  if (const fb::QuantLinear* e = q.embedding_record()) {
    FAMQ_RETURN_IF_ERROR(add_quant_embedding("token_embd.weight", kEmbeddingIndex, *e));
  } else {
    FAMQ_RETURN_IF_ERROR(copy_float("token_embd.weight", "model.embed_tokens.weight"));
  }
  FAMQ_ASSIGN_OR_RETURN(std::vector<float> final_norm, FloatValues(q, "model.norm.weight"));
  FAMQ_RETURN_IF_ERROR(add_f32("output_norm.weight", std::move(final_norm)));
  if (const fb::QuantLinear* h = q.lm_head_record()) {
    FAMQ_RETURN_IF_ERROR(add_quant_embedding("output.weight", kLmHeadIndex, *h));
  } else if (q.Tensor("lm_head.weight").ok()) {
    FAMQ_RETURN_IF_ERROR(copy_float("output.weight", "lm_head.weight"));
  }

  for (int l = 0; l < L; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    const std::string b = "blk." + std::to_string(l) + ".";
    auto linear = [&](int slot) { return r.linears()->Get(static_cast<flatbuffers::uoffset_t>(4 * l + slot)); };
    const std::vector<float> m_qkv = FbFloats(linear(0)->input_multiplier());
    const std::vector<float> m_o = FbFloats(linear(1)->input_multiplier());
    const std::vector<float> m_gu = FbFloats(linear(2)->input_multiplier());
    const std::vector<float> m_down = FbFloats(linear(3)->input_multiplier());

    FAMQ_ASSIGN_OR_RETURN(std::vector<float> attn_norm, FloatValues(q, p + "input_layernorm.weight"));
    if (!m_qkv.empty()) {
      for (int j = 0; j < H; ++j) attn_norm[static_cast<size_t>(j)] *= m_qkv[static_cast<size_t>(j)];
    }
    FAMQ_RETURN_IF_ERROR(add_f32(b + "attn_norm.weight", std::move(attn_norm)));

    std::vector<float> v_mul;  // o_proj's multiplier folded into v rows (MHA only; checked above)
    if (!m_o.empty() && !AllOnes(m_o)) v_mul = m_o;
    FAMQ_RETURN_IF_ERROR(add_quant(b + "attn_q.weight", {4 * l, 0, QD, rot, {}}, H));
    FAMQ_RETURN_IF_ERROR(add_quant(b + "attn_k.weight", {4 * l, QD, KV, rot, {}}, H));
    FAMQ_RETURN_IF_ERROR(add_quant(b + "attn_v.weight", {4 * l, QD + KV, KV, nullptr, v_mul}, H));
    const std::vector<float> qkv_bias = FbFloats(linear(0)->bias());
    if (!qkv_bias.empty()) {
      auto part = [&](int from, int n) {
        return std::vector<float>(qkv_bias.begin() + from, qkv_bias.begin() + from + n);
      };
      std::vector<float> vb = part(QD + KV, KV);
      for (size_t j = 0; j < vb.size() && !v_mul.empty(); ++j) vb[j] *= v_mul[j];
      FAMQ_RETURN_IF_ERROR(add_f32(b + "attn_q.bias", permuted(part(0, QD))));
      FAMQ_RETURN_IF_ERROR(add_f32(b + "attn_k.bias", permuted(part(QD, KV))));
      FAMQ_RETURN_IF_ERROR(add_f32(b + "attn_v.bias", std::move(vb)));
    }
    if (c.qk_norm) {
      FAMQ_ASSIGN_OR_RETURN(std::vector<float> qn, FloatValues(q, p + "self_attn.q_norm.weight"));
      FAMQ_ASSIGN_OR_RETURN(std::vector<float> kn, FloatValues(q, p + "self_attn.k_norm.weight"));
      FAMQ_RETURN_IF_ERROR(add_f32(b + "attn_q_norm.weight", std::move(qn)));
      FAMQ_RETURN_IF_ERROR(add_f32(b + "attn_k_norm.weight", std::move(kn)));
    }
    FAMQ_RETURN_IF_ERROR(add_quant(b + "attn_output.weight", {4 * l + 1, 0, H, nullptr, {}}, QD));
    if (linear(1)->bias() && linear(1)->bias()->size() > 0) return refuse("a bias on o_proj");

    FAMQ_ASSIGN_OR_RETURN(std::vector<float> ffn_norm, FloatValues(q, p + "post_attention_layernorm.weight"));
    if (!m_gu.empty()) {
      for (int j = 0; j < H; ++j) ffn_norm[static_cast<size_t>(j)] *= m_gu[static_cast<size_t>(j)];
    }
    FAMQ_RETURN_IF_ERROR(add_f32(b + "ffn_norm.weight", std::move(ffn_norm)));
    FAMQ_RETURN_IF_ERROR(add_quant(b + "ffn_gate.weight", {4 * l + 2, 0, I, nullptr, {}}, H));
    FAMQ_RETURN_IF_ERROR(add_quant(b + "ffn_up.weight", {4 * l + 2, I, I, nullptr, m_down}, H));
    FAMQ_RETURN_IF_ERROR(add_quant(b + "ffn_down.weight", {4 * l + 3, 0, H, nullptr, {}}, I));
    if ((linear(2)->bias() && linear(2)->bias()->size() > 0) || (linear(3)->bias() && linear(3)->bias()->size() > 0)) {
      return refuse("a bias on an MLP linear");
    }
  }

  FAMQ_ASSIGN_OR_RETURN(uint64_t bytes, w.WriteAtomic(out_path));
  GgufExportReport rep;
  rep.architecture = arch;
  rep.weight_type = gguf::GgmlTypeName(wtype);
  rep.pre_tokenizer = tok.pre;
  rep.tensors = w.tensor_count();
  rep.bytes = bytes;
  rep.folded_multipliers = folded;
  return rep;
}

}  // namespace famq
