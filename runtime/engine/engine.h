// The fp32 reference engine: a decoder-only transformer (Qwen3 / Qwen2 /
// Llama) with RMSNorm, RoPE, grouped-query attention, optional QK-norm and
// qkv bias, SwiGLU and tied or untied embeddings. Linear layers run on
// XNNPACK f32 fully-connected operators over a pthreadpool (or, with
// EngineOptions::weights = kBf16, on BF16 weights read in place from the
// checkpoint); every buffer is allocated in Create(), so Forward() allocates
// nothing.
#pragma once

#include <pthreadpool.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "engine/layer_linear.h"
#include "linear/fp32_linear.h"
#include "kernels/attention.h"
#include "kernels/qgemm_pack.h"
#include "model/checkpoint.h"

namespace famq {

// How Engine::Create(checkpoint, ...) holds and runs the weights of the
// linear layers and the head (activations and sums are fp32 either way; the
// embedding table and norms are read from the checkpoint as they are).
enum class WeightType : int {
  // An fp32 copy packed by XNNPACK: 4 bytes per weight on top of the mapped
  // checkpoint. The reference arithmetic (finalize's calibration, golden tests).
  kF32 = 0,
  // The checkpoint's BF16 tensors read in place (linear/bf16_linear.h): no
  // copy, so about 2 bytes per weight (the map). BF16 checkpoints only:
  // Create refuses F32 / F16 ones (InvalidArgument) rather than converting.
  kBf16 = 1,
};
// "fp32", "bf16" (the names of --weights).
const char* WeightTypeName(WeightType type);
// Parses a name WeightTypeName prints; InvalidArgument naming the valid ones.
Result<WeightType> ParseWeightType(std::string_view name);

struct EngineOptions {
  int num_threads = 0;      // 0: one per online CPU, at most 8
  int max_seq_len = 0;      // KV-cache capacity; 0: min(max_position_embeddings, 2048)
  int max_batch = 64;       // tokens per prefill chunk (and rows of all-logits output)
  // KV-cache sequence slots, for decoding several sequences in one batch
  // (ForwardRows). Each slot holds max_seq_len positions of every layer's
  // keys and values of every layer (see max_kv_cache_bytes for the bytes).
  int max_sequences = 1;
  // Element type of the KV cache (kernels/attention.h). The library's
  // default is f32, the reference arithmetic (finalize's calibration, the
  // host stage, golden tests); the device runtime's entry points (famq-rt
  // generate/logits/bench/ppl --kv-type, the C API's famq_model_options)
  // default to f16.
  KvType kv_type = KvType::kF32;
  // The KV cache (2 * layers * max_sequences * max_seq_len * kv_heads *
  // KvHeadBytes(kv_type, head_dim) bytes) may take at most this many bytes; a config asking for more (a crafted
  // model can ask for far more than its weights) fails with OutOfMemory
  // before anything is allocated. 0: kDefaultMaxKvCacheBytes.
  uint64_t max_kv_cache_bytes = 0;
  // Linear layers of Create(checkpoint, ...); ignored by Create(config, weights, ...).
  WeightType weights = WeightType::kF32;
  // Create(checkpoint, ...): false builds no LM head (finalize's block-by-block
  // pass computes no logits; an fp32 head of a 151,936-token vocabulary is
  // 4 bytes x vocab x hidden). Asking such an engine for logits fails
  // (kInternal, "empty layer"); ForwardLayer and Embed work.
  bool lm_head = true;
  // Create(checkpoint, ...): true builds no block linears; LoadBlockLinears
  // builds one block's when it is needed (finalize: only the block being
  // calibrated is held in fp32, never the whole model). A block without them
  // fails to run (kInternal, "empty layer").
  bool defer_block_linears = false;
};

// The default bound on EngineOptions::max_kv_cache_bytes: 8 GiB (an 8B model
// with 36 layers and 8 KV heads at 16,384 positions needs 4.8 GiB in float32).
inline constexpr uint64_t kDefaultMaxKvCacheBytes = uint64_t{8} << 30;

// The linear layers of a transformer block, in execution order.
enum class LinearSlot { kQkv = 0, kOProj = 1, kGateUp = 2, kDown = 3 };
inline constexpr int kLinearSlots = 4;
// "qkv", "o_proj", "gate_up", "down_proj"
const char* LinearSlotName(LinearSlot slot);

// The weight shape of a slot for a config: rows = output features (blocks
// stacked: q|k|v, gate|up), cols = input features.
struct LinearShape {
  int rows = 0, cols = 0;
};
LinearShape LinearSlotShape(const ModelConfig& config, LinearSlot slot);

// Sees every linear layer's input (as the layer consumed it) and output
// during Engine::ForwardLayer: calibration statistics are collected here.
class LinearObserver {
 public:
  virtual ~LinearObserver() = default;
  // x[n][in], y[n][out] of `slot` in `layer`; an error stops the forward pass.
  virtual Status OnLinear(int layer, LinearSlot slot, const float* x, const float* y, int n) = 0;
};

// The weights of one block, ready to run.
struct EngineLayer {
  std::vector<float> input_norm, post_norm, q_norm, k_norm;  // q/k norms empty without QK-norm
  LayerLinear linears[kLinearSlots];
};

// Rows of a matrix quantized group-wise, read in place where the quantized
// model stores them (schema/qmodel.fbs QuantLinear): row r, column c is
// scales[r][c / group_size] * (code - zeros[r][c / group_size]), exactly
// QMatrix::Dequant; 8-bit codes one per byte, 4-bit two per byte (even
// column in the low nibble), both signed; 6-bit as runtime/qmodel/code_packing.h's
// bit stream (unsigned code + 32, least significant bit first).
struct PackedQuantRows {
  int bits = 0, rows = 0, cols = 0, group_size = 0;  // bits 4, 6 or 8; cols a multiple of 32
  const uint8_t* codes = nullptr;  // [rows][cols * bits / 8]
  const float* scales = nullptr;   // [rows][cols / group_size]
  const uint16_t* scales_f16 = nullptr;  // or the scales in IEEE binary16 (exactly one of the two is set)
  const int8_t* zeros = nullptr;   // [rows][cols / group_size]; nullptr: all 0 (symmetric)
  // out[cols] = row r dequantized (r in [0, rows); unchecked).
  void DequantRow(int r, float* out) const;
};

// The token embedding table [vocab][hidden]: floating-point rows (a
// TensorView into a checkpoint or a quantized model), quantized rows
// (PackedQuantRows into a quantized model) or the packed weights of a tied
// quantized head (QGemmPackedRows: the embedding is then held once, in the
// kernels' layout); one row is converted per token, nothing is allocated.
// Either way the storage must outlive the engine.
struct EmbeddingSource {
  TensorView fp;              // used when neither of the two below is set
  PackedQuantRows quantized;  // a quantized model's QModel.embedding, read in place
  QGemmPackedRows packed;     // the head's packed weights (weights.codes null: unused)

  bool is_packed() const { return packed.weights.codes != nullptr; }
  bool is_quantized() const { return quantized.codes != nullptr || is_packed(); }
  int64_t rows() const;
  int64_t cols() const;
  // out[cols] = row `token` (in range; unchecked).
  void Row(int64_t token, float* out) const;
  // Bytes one lookup reads: a row's codes, scales and zero points, or its floats.
  size_t RowBytes() const;
};

// Everything Engine runs, built from a checkpoint or from a quantized model.
struct EngineWeights {
  EmbeddingSource embed;          // [vocab][hidden], rows converted on lookup; must outlive the engine
  std::vector<float> final_norm;  // [hidden]
  std::vector<EngineLayer> layers;
  LayerLinear lm_head;
};

// A KV cache kept outside the engine (chat sessions keep one each and swap
// it in for their turn): the same type, layout and size as the engine's own.
// k, v: [layer][slot][pos][kv_head][head_dim] elements of `type` (raw bytes);
// int8 only: k_scale, v_scale [layer][slot][pos][kv_head] (kernels/attention.h).
struct KvCache {
  KvType type = KvType::kF32;
  std::vector<uint8_t> k, v;
  std::vector<float> k_scale, v_scale;
  size_t bytes() const { return k.size() + v.size() + (k_scale.size() + v_scale.size()) * sizeof(float); }
};

class Engine {
 public:
  // An engine over a checkpoint (which must outlive it), its linear layers as
  // options.weights says; InvalidArgument for kBf16 on a checkpoint whose
  // weights are not all BF16.
  static Result<std::unique_ptr<Engine>> Create(const Checkpoint& checkpoint, const EngineOptions& options);
  // An engine over prepared weights (quantized models: see qmodel/qmodel_engine.h).
  static Result<std::unique_ptr<Engine>> Create(const ModelConfig& config, EngineWeights weights,
                                                const EngineOptions& options);
  // The prefill chunk Create() will use for these options: linear layers
  // built for an engine must accept this many rows.
  static Result<int> ResolveMaxBatch(const ModelConfig& config, const EngineOptions& options);
  // The worker threads `options` ask for: num_threads, or one per online CPU
  // (at most 8) when it is 0 or less; InvalidArgument above 256.
  static Result<int> ResolveNumThreads(const EngineOptions& options);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Runs `tokens` at positions [pos, pos + n) of sequence slot 0 and
  // appends their keys/values to its cache (entries at positions >= pos are
  // overwritten).
  // logits == nullptr: no head is computed.
  // all_logits == false: logits[vocab] receives the last token's logits; any n.
  // all_logits == true: logits[n][vocab] receives every token's; n <= max_batch().
  Status Forward(std::span<const int32_t> tokens, int pos, float* logits, bool all_logits);

  // Like Forward with all_logits, and also the final-normalized hidden state
  // of every token (the model's last hidden state, as Hugging Face returns it
  // in hidden_states[-1]): logits[n][vocab] (nullptr: no head) and
  // hidden[n][hidden_size] (nullptr: none). n <= max_batch().
  Status ForwardHidden(std::span<const int32_t> tokens, int pos, float* logits, float* hidden);

  // One step for several sequences at once (batched decoding): row i runs
  // tokens[i] at position positions[i] of sequence slot seqs[i], attending
  // to that slot's cache at positions [0, positions[i]] (the earlier ones
  // must have been written, by Forward for slot 0, ForwardRows or
  // CopySequence); logits[n][vocab] receives every row's logits. Rows must
  // name distinct (slot, position) pairs; n <= max_batch(). A row's result
  // does not depend on the other rows.
  Status ForwardRows(std::span<const int32_t> tokens, std::span<const int32_t> positions,
                     std::span<const int32_t> seqs, float* logits);
  // Copies positions [0, len) of slot `from`'s cache into slot `to` (a
  // shared prompt prefilled once, then decoded in several slots).
  Status CopySequence(int from, int to, int len);

  // Layer-by-layer execution (calibration): the embeddings of `tokens` into
  // x[n][hidden], then one block over x in place at positions [pos, pos + n)
  // (n <= max_batch()), its KV cache entries written; `observer` (may be
  // null) sees each linear's input and output.
  Status Embed(std::span<const int32_t> tokens, float* x) const;
  Status ForwardLayer(int layer, float* x, int n, int pos, LinearObserver* observer);
  // Replaces one linear of a block (same shape; built for max_batch() rows).
  Status SetLinear(int layer, LinearSlot slot, LayerLinear linear);
  // Frees the four linears of `layer` (finalize, once the block's output has
  // been propagated: it never runs again). Running the layer afterwards fails
  // (kInternal, "empty layer"). InvalidArgument for a layer out of range.
  Status ReleaseLinears(int layer);
  // Builds the four linears of `layer` from `ck` (the checkpoint the engine
  // was created from) as `type` says, as Create(checkpoint, ...) would: the
  // same numerics. InvalidArgument for a layer out of range.
  Status LoadBlockLinears(const Checkpoint& ck, int layer, WeightType type);
  const LayerLinear& linear(int layer, LinearSlot slot) const {
    return layers_[static_cast<size_t>(layer)].linears[static_cast<int>(slot)];
  }

  // A zeroed cache of this engine's size (kOutOfMemory when it cannot be
  // allocated); its bytes: kv_cache_bytes().
  Result<KvCache> NewKvCache() const;
  // Exchanges the engine's cache with `cache` (O(1), no allocation): what
  // the engine computed so far moves into `cache`, and Forward continues on
  // what `cache` held. kInvalidArgument when `cache` is not of this type and size.
  Status SwapKvCache(KvCache* cache);
  // 2 * layers * max_sequences * max_seq_len * kv_heads * KvHeadBytes(kv_type, head_dim).
  size_t kv_cache_bytes() const { return kv_.bytes(); }
  KvType kv_type() const { return kv_.type; }
  // Bytes of the weights one decode step reads: every block's linears and
  // the head as their kernels store them, plus the norms and one embedding row.
  size_t weight_bytes() const;
  // Bytes of the engine's own scratch: the activations of one chunk of
  // max_batch() tokens, attention scores and the RoPE tables (the kernels'
  // own scratch is not included).
  size_t scratch_bytes() const;

  // Prefill attention: on (the default), a chunk's runs of rows of one
  // sequence go through the block kernel (kernels/attention.h: each key and
  // value converted once per block); off, every (row, head) through the
  // per-query kernel, as decode always does. Both give the same bits.
  void set_blocked_attention(bool on) { blocked_attention_ = on; }

  const ModelConfig& config() const { return config_; }
  int vocab_size() const { return config_.vocab_size; }
  int max_seq_len() const { return max_seq_; }
  int max_batch() const { return max_batch_; }
  int max_sequences() const { return max_sequences_; }
  int num_threads() const;
  // The engine's threads, for work between its calls (finalize's statistics
  // and GPTQ): one pool, so no idle pool spins against a busy one.
  pthreadpool_t thread_pool() const { return pool_; }

 private:
  Engine() = default;
  Status ForwardChunk(const int32_t* tokens, int n, int pos, float* logits, bool all_logits, float* hidden = nullptr);
  // Rows [0, n) of a chunk at positions [pos, pos + n) of slot 0.
  void PlaceContiguous(int n, int pos);
  // One block over x[n][hidden]; row t at row_pos_[t] of slot row_seq_[t].
  Status LayerStep(size_t li, float* x, int n, LinearObserver* observer);
  void Attention(int layer, int n);
  bool FormAttentionBlocks(int n, size_t* count);

  ModelConfig config_;
  EmbeddingSource embed_;  // not owned; rows converted on lookup
  std::vector<float> final_norm_;
  std::vector<EngineLayer> layers_;
  LayerLinear lm_head_;
  pthreadpool_t pool_ = nullptr;
  int max_seq_ = 0;
  int max_batch_ = 0;
  int max_sequences_ = 1;

  // RoPE tables [max_seq][head_dim / 2].
  std::vector<float> rope_cos_, rope_sin_;
  // KV cache: [layer][slot][pos][kv_head][head_dim] (see KvCache).
  KvCache kv_;
  AttendFn attend_ = nullptr;  // the attention kernel for kv_.type (ActiveIsa at Create)
  AttendBlockFn attend_block_ = nullptr;            // its block kernel (prefill)
  const AttentionKernels* attn_kernels_ = nullptr;  // ActiveIsa's table (the cache's f16 writer)
  size_t attn_chunks_ = 1;     // work items of Attention() at most (rows x heads are split into these)
  bool blocked_attention_ = true;
  size_t attn_block_rows_ = 1;      // rows of one block: kAttendBlockQueries / group, at least 1
  size_t attn_block_tasks_ = 0;     // block tasks (one per thread; 0: the engine never forms blocks)
  size_t attn_block_scratch_ = 0;   // floats of scratch_ per block task
  // The current chunk's blocks: [max_batch][2] (first row, rows), rows of one sequence.
  std::vector<int32_t> attn_blocks_;
  // Where each row of the current chunk sits: position and sequence slot.
  std::vector<int32_t> row_pos_, row_seq_;
  // Activations for one chunk of max_batch tokens.
  std::vector<float> x_;       // [batch][hidden] residual stream
  std::vector<float> xn_;      // [batch][hidden] normalized
  std::vector<float> qkv_;     // [batch][q_dim + 2 kv_dim]
  std::vector<float> attn_;    // [batch][q_dim]
  std::vector<float> tmp_;     // [batch][hidden]
  std::vector<float> gu_;      // [batch][2 intermediate]
  std::vector<float> act_;     // [batch][intermediate]
  // Per-query path: [attn_chunks_][max_seq]; block path: [attn_block_tasks_][attn_block_scratch_].
  std::vector<float> scores_;
};

}  // namespace famq
