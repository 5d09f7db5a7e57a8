// famq-rt info --model DIR [--json]: what a checkpoint is, before running it.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "tools/famq-rt/cli_util.h"
#include "tools/famq-rt/commands.h"

namespace famq::cli {

void RegisterInfo(CLI::App& app, ExitCode* exit_code) {
  struct Args {
    std::string model;
    bool json = false;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("info", "Describe a Hugging Face model directory");
  cmd->add_option("--model", args->model, "Model directory (config.json, safetensors, tokenizer.json)")->required();
  cmd->add_flag("--json", args->json, "Print one JSON object");
  cmd->callback([args, exit_code] {
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
    if (args->json) {
      std::printf("%s\n", j.dump().c_str());
      return;
    }
    for (auto it = j.begin(); it != j.end(); ++it) {
      const std::string v = it->is_string() ? it->get<std::string>() : it->dump();
      std::printf("%-24s %s\n", it.key().c_str(), v.c_str());
    }
  });
}

}  // namespace famq::cli
