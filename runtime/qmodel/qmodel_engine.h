// Running quantized models: an Engine over a verified QModel, and the one
// opener the commands share for "--model DIR or --qmodel FILE".
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "core/status.h"
#include "engine/engine.h"
#include "kernels/isa.h"
#include "model/model_dir.h"
#include "qmodel/qmodel.h"

namespace famq {

// An engine whose blocks run the quantized linears of `q` (weight-only on
// famq's kernels for `isa`, W8A8 on XNNPACK qc8); norms stay as stored, the
// embedding is looked up where it is stored (fp or quantized rows) and a
// quantized head runs on the weight-only kernels for `isa` (an fp head on
// XNNPACK f32). `q` must outlive the engine.
// Weight-only linears are packed from the records in place on up to
// options.num_threads threads; a tied quantized head also serves the
// embedding lookup (its packed rows), so the embedding is held once.
Result<std::unique_ptr<Engine>> CreateQuantizedEngine(const QModel& q, const EngineOptions& options, Isa isa);

// The same, releasing each record's codes as soon as the engine holds its
// weights (QModel::ReleaseLinear): a running model then holds one copy of its
// weights, and peak memory while loading is about the file plus one record.
// Afterwards `q` serves its header fields only (Matrix() etc. are refused).
Result<std::unique_ptr<Engine>> CreateQuantizedEngineReleasing(QModel& q, const EngineOptions& options, Isa isa);

// A model ready to run: a Hugging Face directory or a quantized model file.
struct RunnableModel : ModelText {
  std::string origin;                      // the directory or the file
  ModelConfig config;
  std::optional<Checkpoint> checkpoint;    // --model
  std::unique_ptr<QModel> qmodel;          // --qmodel
  std::string tokenizer_sha256;            // the family identity

  bool quantized() const { return qmodel != nullptr; }
  // fp32 engine for a directory, the quantized engine (kernels of ActiveIsa())
  // for a file, which releases the file's copy of the weights it packed: one
  // engine per RunnableModel (a second CreateEngine is refused as "released").
  Result<std::unique_ptr<Engine>> CreateEngine(const EngineOptions& options) const;
  // "famq-tiny-s (fp32)" / "q.famq (W4 g32 gptq, weight-only)"
  std::string Describe() const;
};

// Exactly one of model_dir and qmodel_path is non-empty. A quantized model's
// embedded tokenizer must hash to the family id it records.
Result<RunnableModel> OpenRunnableModel(const std::string& model_dir, const std::string& qmodel_path);

}  // namespace famq
