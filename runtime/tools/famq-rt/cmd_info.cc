// famq-rt info (--model DIR | --qmodel Q) [--json]: what a checkpoint or a
// quantized model is, before running it.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "tools/famq-rt/cli_util.h"
#include "tools/famq-rt/commands.h"

namespace famq::cli {
namespace {

void Print(const nlohmann::ordered_json& j, bool json) {
  if (json) {
    std::printf("%s\n", j.dump().c_str());
    return;
  }
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string v = it->is_string() ? it->get<std::string>() : it->dump();
    std::printf("%-24s %s\n", it.key().c_str(), v.c_str());
  }
}

int QModelInfo(const std::string& model, const std::string& qmodel, bool json) {
  auto m = OpenRunnableModel(model, qmodel);
  if (!m.ok()) return Fail(m.status());
  const fb::QModel& r = m->qmodel->root();
  const ModelConfig& c = m->config;
  nlohmann::ordered_json j;
  j["qmodel"] = qmodel;
  j["file_bytes"] = m->qmodel->file_size();
  j["source"] = r.source_name() ? r.source_name()->str() : "";
  j["architecture"] = ModelArchName(c.arch);
  j["parameters"] = c.NumParameters();
  j["scheme"] = fb::EnumNameQScheme(r.scheme());
  j["wbits"] = r.wbits();
  j["abits"] = r.abits();
  j["group_size"] = r.group_size() == 0 ? std::string("channel") : std::to_string(r.group_size());
  j["symmetric"] = r.symmetric();
  // Codes, scales (fp32 or fp16) and zero points (absent when symmetric) as stored.
  auto record_bytes = [](const fb::QuantLinear* l) -> size_t {
    if (l == nullptr) return 0;
    return l->codes()->size() + (l->scales() != nullptr ? 4 * l->scales()->size() : 0) +
           (l->scales_f16() != nullptr ? 2 * l->scales_f16()->size() : 0) +
           (l->zeros() != nullptr ? l->zeros()->size() : 0);
  };
  size_t qbytes = 0, f16 = 0, records = 0;
  auto count = [&](const fb::QuantLinear* l) {
    if (l == nullptr) return;
    qbytes += record_bytes(l);
    f16 += l->scales_f16() != nullptr;
    ++records;
  };
  for (const fb::QuantLinear* l : *r.linears()) count(l);
  for (const fb::QuantLinear* l : {r.embedding(), r.lm_head()}) count(l);
  j["scales"] = f16 == 0 ? "f32" : f16 == records ? "f16" : "mixed";
  j["quantized_linears"] = r.linears()->size();
  j["quantized_bytes"] = qbytes;
  j["head"] = m->qmodel->HeadDescription();
  j["hidden_size"] = c.hidden_size;
  j["num_layers"] = c.num_layers;
  j["vocab_size"] = c.vocab_size;
  j["tokenizer_hash"] = m->tokenizer_sha256;
  j["source_config_sha256"] = r.source_config_sha256() ? r.source_config_sha256()->str() : "";
  j["stop_tokens"] = m->stop_tokens;
  auto isa = ActiveIsa();
  j["kernels"] = r.scheme() == fb::QScheme::W8A8Static ? std::string("XNNPACK qc8")
                                                      : std::string(isa.ok() ? IsaName(*isa) : "unavailable");
  if (const fb::QProvenance* p = r.provenance()) {
    auto s = [](const flatbuffers::String* v) { return v ? v->str() : std::string(); };
    j["method"] = fb::EnumNameQMethod(p->method());
    j["tool"] = s(p->tool());
    j["calibration"] = s(p->calibration());
    j["calib_source"] = s(p->calib_source());
    j["bundle_payload_sha256"] = s(p->bundle_payload_sha256());
    j["bundle_key_id"] = s(p->bundle_key_id());
    j["samples"] = p->samples();
    j["calib_tokens"] = p->calib_tokens();
    j["private_mix"] = p->private_mix();
    if (r.scheme() == fb::QScheme::W8A8Static) {
      j["act_estimator"] = fb::EnumNameActEstimator(p->estimator());
      if (p->method() == fb::QMethod::SmoothQuant) j["smooth_alpha"] = p->smooth_alpha();
    }
    if (p->method() == fb::QMethod::Gptq) {
      j["gptq_damp"] = p->gptq_damp();
      j["gptq_act_order"] = p->gptq_act_order();
    }
    j["finalize_seconds"] = p->seconds();
    j["finalize_peak_rss_bytes"] = p->peak_rss_bytes();
  }
  Print(j, json);
  return 0;
}

}  // namespace

void RegisterInfo(CLI::App& app, ExitCode* exit_code) {
  struct Args {
    std::string model, qmodel;
    bool json = false;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("info", "Describe a Hugging Face model directory or a quantized model");
  cmd->add_option("--model", args->model, "Model directory (config.json, safetensors, tokenizer.json)");
  cmd->add_option("--qmodel", args->qmodel, "Quantized model file from famq-rt finalize");
  cmd->add_flag("--json", args->json, "Print one JSON object");
  cmd->callback([args, exit_code] {
    if (!args->qmodel.empty() || args->model.empty()) {
      exit_code->value = QModelInfo(args->model, args->qmodel, args->json);
      return;
    }
    auto m = OpenModelDir(args->model);
    if (!m.ok()) {
      exit_code->value = Fail(m.status());
      return;
    }
    const ModelConfig& c = m->checkpoint.config();
    nlohmann::ordered_json j;
    j["model"] = args->model;
    j["architecture"] = ModelArchName(c.arch);
    j["parameters"] = c.NumParameters();
    j["weight_dtype"] = m->checkpoint.WeightDTypeName();
    j["hidden_size"] = c.hidden_size;
    j["num_layers"] = c.num_layers;
    j["num_heads"] = c.num_heads;
    j["num_kv_heads"] = c.num_kv_heads;
    j["head_dim"] = c.head_dim;
    j["intermediate_size"] = c.intermediate_size;
    j["vocab_size"] = c.vocab_size;
    j["max_position_embeddings"] = c.max_position_embeddings;
    j["rope_theta"] = c.rope_theta;
    j["rope_scaling"] = c.rope_scaling.llama3 ? "llama3" : "none";
    j["rms_norm_eps"] = c.rms_norm_eps;
    j["tie_word_embeddings"] = c.tie_word_embeddings;
    j["attention_bias"] = c.attention_bias;
    j["qk_norm"] = c.qk_norm;
    j["bos_token_ids"] = c.bos_token_ids;
    j["eos_token_ids"] = c.eos_token_ids;
    j["stop_tokens"] = m->stop_tokens;
    j["files"] = m->checkpoint.files();
    j["tensors"] = m->checkpoint.num_tensors();
    j["tokenizer_vocab"] = m->tokenizer.vocab_size();
    j["tokenizer_hash"] = m->tokenizer.ContentHash();
    j["chat_template"] = m->tokenizer_config && !m->tokenizer_config->chat_template.empty();
    Print(j, args->json);
  });
}

}  // namespace famq::cli
