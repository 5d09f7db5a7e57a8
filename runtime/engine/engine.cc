#include "engine/engine.h"
#include "model/dtype.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <new>
#include <string>
#include <thread>

#include "engine/ops.h"
#include "kernels/isa.h"

namespace famq {
namespace {

std::vector<float> ToF32(const TensorView& t) {
  std::vector<float> v(static_cast<size_t>(t.numel()));
  ConvertToF32(t.dtype, t.data, v.size(), v.data());
  return v;
}

// HF's inverse frequencies, computed in float32 as PyTorch does, with the
// Llama-3 frequency-dependent scaling when configured.
std::vector<float> InverseFrequencies(const ModelConfig& c) {
  const int half = c.head_dim / 2;
  std::vector<float> inv(static_cast<size_t>(half));
  for (int i = 0; i < half; ++i) {
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(c.head_dim);
    inv[static_cast<size_t>(i)] = 1.0f / std::pow(c.rope_theta, exponent);
  }
  if (c.rope_scaling.llama3) {
    const RopeScaling& s = c.rope_scaling;
    const float old_ctx = static_cast<float>(s.original_max_position_embeddings);
    const float low_wavelen = old_ctx / s.low_freq_factor;
    const float high_wavelen = old_ctx / s.high_freq_factor;
    for (float& f : inv) {
      const float wavelen = 2.0f * static_cast<float>(M_PI) / f;
      if (wavelen > low_wavelen) {
        f = f / s.factor;
      } else if (wavelen >= high_wavelen) {
        const float smooth = (old_ctx / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
        f = (1.0f - smooth) * f / s.factor + smooth * f;
      }
    }
  }
  return inv;
}

}  // namespace

Engine::~Engine() {
  if (pool_ != nullptr) pthreadpool_destroy(pool_);
}

int Engine::num_threads() const { return static_cast<int>(pthreadpool_get_threads_count(pool_)); }

const char* LinearSlotName(LinearSlot slot) {
  switch (slot) {
    case LinearSlot::kQkv: return "qkv";
    case LinearSlot::kOProj: return "o_proj";
    case LinearSlot::kGateUp: return "gate_up";
    case LinearSlot::kDown: return "down_proj";
  }
  return "?";
}

LinearShape LinearSlotShape(const ModelConfig& c, LinearSlot slot) {
  const int H = c.hidden_size;
  switch (slot) {
    case LinearSlot::kQkv: return {c.q_dim() + 2 * c.kv_dim(), H};
    case LinearSlot::kOProj: return {H, c.q_dim()};
    case LinearSlot::kGateUp: return {2 * c.intermediate_size, H};
    case LinearSlot::kDown: return {H, c.intermediate_size};
  }
  return {};
}

Result<int> Engine::ResolveNumThreads(const EngineOptions& options) {
  int threads = options.num_threads;
  if (threads <= 0) threads = std::clamp(static_cast<int>(std::thread::hardware_concurrency()), 1, 8);
  if (threads > 256) return InvalidArgument("num_threads " + std::to_string(threads) + " is absurd");
  return threads;
}

Result<int> Engine::ResolveMaxBatch(const ModelConfig& c, const EngineOptions& options) {
  const int max_seq = options.max_seq_len > 0 ? options.max_seq_len : std::min(c.max_position_embeddings, 2048);
  if (max_seq > c.max_position_embeddings) {
    return InvalidArgument("context " + std::to_string(max_seq) + " exceeds max_position_embeddings " +
                           std::to_string(c.max_position_embeddings));
  }
  if (options.max_batch <= 0 || options.max_batch > 8192) {
    return InvalidArgument("max_batch " + std::to_string(options.max_batch) + " is out of range [1, 8192]");
  }
  return std::min(options.max_batch, max_seq);
}

const char* WeightTypeName(WeightType type) {
  switch (type) {
    case WeightType::kF32: return "fp32";
    case WeightType::kBf16: return "bf16";
  }
  return "?";
}

Result<WeightType> ParseWeightType(std::string_view name) {
  if (name == "fp32") return WeightType::kF32;
  if (name == "bf16") return WeightType::kBf16;
  return InvalidArgument("unknown weight type '" + std::string(name) + "' (valid: fp32, bf16)");
}

namespace {

// One linear layer of a checkpoint as `type` says: fp32 (XNNPACK, a packed
// copy) or BF16 read in place.
Result<LayerLinear> CheckpointLinear(WeightType type, Isa isa, const std::vector<const TensorView*>& blocks,
                                     const std::vector<const std::optional<TensorView>*>& biases,
                                     const std::string& name) {
  if (type == WeightType::kBf16) {
    FAMQ_ASSIGN_OR_RETURN(Bf16Linear lin, Bf16Linear::Create(blocks, biases, isa, name));
    return LayerLinear(std::move(lin));
  }
  FAMQ_ASSIGN_OR_RETURN(Linear lin, Linear::Create(blocks, biases, name));
  return LayerLinear(std::move(lin));
}

// The four linears of block `t` (index i, for names), as `type` says.
Status BlockLinears(const LayerTensors& t, WeightType type, Isa isa, size_t i, LayerLinear* lin) {
  const std::string p = "layer " + std::to_string(i) + " ";
  FAMQ_ASSIGN_OR_RETURN(lin[static_cast<int>(LinearSlot::kQkv)],
                        CheckpointLinear(type, isa, {&t.q_proj, &t.k_proj, &t.v_proj},
                                         {&t.q_bias, &t.k_bias, &t.v_bias}, p + "qkv"));
  FAMQ_ASSIGN_OR_RETURN(lin[static_cast<int>(LinearSlot::kOProj)],
                        CheckpointLinear(type, isa, {&t.o_proj}, {}, p + "o_proj"));
  FAMQ_ASSIGN_OR_RETURN(lin[static_cast<int>(LinearSlot::kGateUp)],
                        CheckpointLinear(type, isa, {&t.gate_proj, &t.up_proj}, {}, p + "gate_up"));
  FAMQ_ASSIGN_OR_RETURN(lin[static_cast<int>(LinearSlot::kDown)],
                        CheckpointLinear(type, isa, {&t.down_proj}, {}, p + "down_proj"));
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<Engine>> Engine::Create(const Checkpoint& ck, const EngineOptions& options) {
  const WeightType type = options.weights;
  if (type != WeightType::kF32 && type != WeightType::kBf16) {
    return InvalidArgument("weights " + std::to_string(static_cast<int>(type)) + " is not fp32 or bf16");
  }
  if (type == WeightType::kBf16 && ck.WeightDTypeName() != "BF16") {
    return InvalidArgument("bf16 weights are read in place from BF16 checkpoints, and " + ck.dir() +
                           " holds " + ck.WeightDTypeName() + " weights: use fp32 weights for it");
  }
  FAMQ_ASSIGN_OR_RETURN(const Isa isa, ActiveIsa());
  EngineWeights w;
  w.embed.fp = ck.embed_tokens();
  for (size_t i = 0; i < ck.layers().size(); ++i) {
    const LayerTensors& t = ck.layers()[i];
    EngineLayer l;
    l.input_norm = ToF32(t.input_norm);
    l.post_norm = ToF32(t.post_attention_norm);
    if (t.q_norm) l.q_norm = ToF32(*t.q_norm);
    if (t.k_norm) l.k_norm = ToF32(*t.k_norm);
    if (!options.defer_block_linears) FAMQ_RETURN_IF_ERROR(BlockLinears(t, type, isa, i, l.linears));
    w.layers.push_back(std::move(l));
  }
  w.final_norm = ToF32(ck.final_norm());
  if (options.lm_head) {
    FAMQ_ASSIGN_OR_RETURN(w.lm_head, CheckpointLinear(type, isa, {&ck.lm_head()}, {}, "lm_head"));
  }
  return Create(ck.config(), std::move(w), options);
}

Status Engine::LoadBlockLinears(const Checkpoint& ck, int layer, WeightType type) {
  if (layer < 0 || layer >= static_cast<int>(layers_.size()) || static_cast<size_t>(layer) >= ck.layers().size()) {
    return InvalidArgument("LoadBlockLinears: no layer " + std::to_string(layer));
  }
  FAMQ_ASSIGN_OR_RETURN(const Isa isa, ActiveIsa());
  LayerLinear built[kLinearSlots];
  FAMQ_RETURN_IF_ERROR(BlockLinears(ck.layers()[static_cast<size_t>(layer)], type, isa, static_cast<size_t>(layer), built));
  for (int s = 0; s < kLinearSlots; ++s) {
    const LinearShape shape = LinearSlotShape(config_, static_cast<LinearSlot>(s));
    if (built[s].in_features() != shape.cols ||
        built[s].out_features() != shape.rows) {
      return InvalidArgument(std::string("LoadBlockLinears: ") + LinearSlotName(static_cast<LinearSlot>(s)) +
                             " shape mismatch (another checkpoint?)");
    }
  }
  for (int s = 0; s < kLinearSlots; ++s) {
    layers_[static_cast<size_t>(layer)].linears[s] = std::move(built[s]);
  }
  return Status::Ok();
}

Result<std::unique_ptr<Engine>> Engine::Create(const ModelConfig& c, EngineWeights weights,
                                               const EngineOptions& options) {
  std::unique_ptr<Engine> e(new Engine());
  e->config_ = c;
  FAMQ_ASSIGN_OR_RETURN(e->max_batch_, ResolveMaxBatch(c, options));
  e->max_seq_ = options.max_seq_len > 0 ? options.max_seq_len : std::min(c.max_position_embeddings, 2048);
  FAMQ_ASSIGN_OR_RETURN(const int threads, ResolveNumThreads(options));
  if (options.max_sequences < 1 || options.max_sequences > 1024) {
    return InvalidArgument("max_sequences " + std::to_string(options.max_sequences) + " is out of range [1, 1024]");
  }
  e->max_sequences_ = options.max_sequences;
  const KvType kv_type = options.kv_type;
  if (kv_type != KvType::kF32 && kv_type != KvType::kF16 && kv_type != KvType::kInt8) {
    return InvalidArgument("kv_type " + std::to_string(static_cast<int>(kv_type)) + " is not f32, f16 or int8");
  }
  {
    // Checked before any allocation, in 64-bit arithmetic with overflow checks
    // (size_t is 32-bit on armhf); an overflow counts as too large. The real
    // bytes of the type: values and, for int8, the per-(position, head) scales.
    uint64_t kv_bytes = 2;
    bool overflow = false;
    for (const uint64_t f : {static_cast<uint64_t>(c.num_layers), static_cast<uint64_t>(e->max_sequences_),
                             static_cast<uint64_t>(e->max_seq_), static_cast<uint64_t>(c.num_kv_heads),
                             static_cast<uint64_t>(KvHeadBytes(kv_type, static_cast<size_t>(c.head_dim)))}) {
      overflow = overflow || __builtin_mul_overflow(kv_bytes, f, &kv_bytes);
    }
    const uint64_t limit = options.max_kv_cache_bytes > 0 ? options.max_kv_cache_bytes : kDefaultMaxKvCacheBytes;
    const auto describe = [&] {
      const long double bytes = 2.0L * c.num_layers * e->max_sequences_ * e->max_seq_ * c.num_kv_heads *
                                static_cast<long double>(KvHeadBytes(kv_type, static_cast<size_t>(c.head_dim)));
      const long double gib = bytes / (1024.0L * 1024.0L * 1024.0L);
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.3Lg GiB", gib);
      std::string d = "KV cache of ";
      d += buf;
      d += " (" + std::string(KvTypeName(kv_type)) + ": 2 x " + std::to_string(c.num_layers) + " layers x " +
           std::to_string(e->max_sequences_) + " sequences x " + std::to_string(e->max_seq_) + " positions x " +
           std::to_string(c.num_kv_heads) + " kv heads x " +
           std::to_string(KvHeadBytes(kv_type, static_cast<size_t>(c.head_dim))) + " bytes)";
      return d;
    };
    if (overflow || kv_bytes > limit) {
      return OutOfMemory(describe() + " exceeds the limit of " + std::to_string(limit) +
                         " bytes (EngineOptions::max_kv_cache_bytes; lower the context length)");
    }
    if (static_cast<long double>(kv_bytes / 2) > static_cast<long double>(std::numeric_limits<size_t>::max())) {
      return OutOfMemory(describe() + " does not fit this address space");
    }
  }

  // The weights must describe this config; quantized models are checked on
  // load, so a mismatch here is a famq bug.
  const int H = c.hidden_size;
  if (weights.layers.size() != static_cast<size_t>(c.num_layers)) return Internal("engine: layer count mismatch");
  for (const EngineLayer& l : weights.layers) {
    for (int s = 0; s < kLinearSlots; ++s) {
      const LinearShape shape = LinearSlotShape(c, static_cast<LinearSlot>(s));
      if (options.defer_block_linears && l.linears[s].empty()) continue;  // LoadBlockLinears builds them
      if (l.linears[s].in_features() != shape.cols || l.linears[s].out_features() != shape.rows) {
        return Internal(std::string("engine: ") + LinearSlotName(static_cast<LinearSlot>(s)) + " shape mismatch");
      }
    }
    if (l.input_norm.size() != static_cast<size_t>(H) || l.post_norm.size() != static_cast<size_t>(H)) {
      return Internal("engine: norm size mismatch");
    }
  }
  // An empty head: an engine without logits (EngineOptions::lm_head).
  const bool head_ok =
      weights.lm_head.empty() || (weights.lm_head.in_features() == H && weights.lm_head.out_features() == c.vocab_size);
  if (!head_ok || weights.final_norm.size() != static_cast<size_t>(H) || weights.embed.rows() != c.vocab_size ||
      weights.embed.cols() != H) {
    return Internal("engine: head, final norm or embedding shape mismatch");
  }
  e->embed_ = std::move(weights.embed);
  e->final_norm_ = std::move(weights.final_norm);
  e->layers_ = std::move(weights.layers);
  e->lm_head_ = std::move(weights.lm_head);

  e->pool_ = pthreadpool_create(static_cast<size_t>(threads));
  if (e->pool_ == nullptr) return Internal("pthreadpool_create failed");

  const size_t half = static_cast<size_t>(c.head_dim / 2);
  const std::vector<float> inv = InverseFrequencies(c);
  e->rope_cos_.resize(static_cast<size_t>(e->max_seq_) * half);
  e->rope_sin_.resize(e->rope_cos_.size());
  for (int pos = 0; pos < e->max_seq_; ++pos) {
    for (size_t i = 0; i < half; ++i) {
      const float angle = static_cast<float>(pos) * inv[i];  // float32 product, as torch
      e->rope_cos_[static_cast<size_t>(pos) * half + i] = std::cos(angle);
      e->rope_sin_[static_cast<size_t>(pos) * half + i] = std::sin(angle);
    }
  }

  const size_t B = static_cast<size_t>(e->max_batch_);
  {
    FAMQ_ASSIGN_OR_RETURN(const Isa isa, ActiveIsa());
    e->attend_ = GetAttendFn(isa, kv_type, static_cast<size_t>(c.head_dim));
    e->attend_block_ = GetAttendBlockFn(isa, kv_type, static_cast<size_t>(c.head_dim));
    e->attn_kernels_ = GetAttentionKernels(isa);
    if (e->attn_kernels_ == nullptr) return Internal("engine: no attention kernels for the active ISA");
  }
  const size_t heads_positions = static_cast<size_t>(c.num_layers) * static_cast<size_t>(e->max_sequences_) *
                                 static_cast<size_t>(e->max_seq_) * static_cast<size_t>(c.num_kv_heads);
  e->kv_.type = kv_type;
  e->kv_.k.assign(heads_positions * static_cast<size_t>(c.head_dim) * KvElementSize(kv_type), 0);
  e->kv_.v.assign(e->kv_.k.size(), 0);
  if (kv_type == KvType::kInt8) {
    e->kv_.k_scale.assign(heads_positions, 0.0f);
    e->kv_.v_scale.assign(heads_positions, 0.0f);
  }
  e->x_.resize(B * c.hidden_size);
  e->xn_.resize(B * c.hidden_size);
  e->qkv_.resize(B * (c.q_dim() + 2 * c.kv_dim()));
  e->attn_.resize(B * c.q_dim());
  e->tmp_.resize(B * c.hidden_size);
  e->gu_.resize(B * 2 * static_cast<size_t>(c.intermediate_size));
  e->act_.resize(B * c.intermediate_size);
  // Attention splits rows x heads into at most this many items, each with a
  // row of scores: enough for every thread to take several.
  e->attn_chunks_ = static_cast<size_t>(std::max(c.num_heads, 4 * threads));
  // Blocks (prefill): one task per thread, each with a block's scratch.
  const size_t group = static_cast<size_t>(c.num_heads / c.num_kv_heads);
  e->attn_block_rows_ = std::min(B, std::max<size_t>(1, kAttendBlockQueries / group));
  if (B > 1) {
    e->attn_block_tasks_ = pthreadpool_get_threads_count(e->pool_);
    e->attn_block_scratch_ = AttendBlockScratchFloats(e->attn_block_rows_, group, static_cast<size_t>(c.head_dim),
                                                      static_cast<size_t>(e->max_seq_));
  }
  e->scores_.resize(std::max(e->attn_chunks_ * static_cast<size_t>(e->max_seq_),
                             e->attn_block_tasks_ * e->attn_block_scratch_));
  e->attn_blocks_.resize(2 * B);
  e->row_pos_.resize(B);
  e->row_seq_.resize(B);
  return e;
}

Status Engine::SetLinear(int layer, LinearSlot slot, LayerLinear linear) {
  if (layer < 0 || layer >= static_cast<int>(layers_.size())) return InvalidArgument("SetLinear: no layer " + std::to_string(layer));
  LayerLinear& cur = layers_[static_cast<size_t>(layer)].linears[static_cast<int>(slot)];
  if (linear.in_features() != cur.in_features() || linear.out_features() != cur.out_features()) {
    return InvalidArgument(std::string("SetLinear: ") + LinearSlotName(slot) + " shape mismatch");
  }
  cur = std::move(linear);
  return Status::Ok();
}

Status Engine::ReleaseLinears(int layer) {
  if (layer < 0 || layer >= static_cast<int>(layers_.size())) {
    return InvalidArgument("ReleaseLinears: no layer " + std::to_string(layer));
  }
  for (LayerLinear& l : layers_[static_cast<size_t>(layer)].linears) l = LayerLinear();
  return Status::Ok();
}

void PackedQuantRows::DequantRow(int r, float* out) const {
  const size_t groups = static_cast<size_t>(cols / group_size);
  const size_t first = static_cast<size_t>(r) * groups;
  const size_t n = static_cast<size_t>(cols), g = static_cast<size_t>(group_size);
  const size_t width = static_cast<size_t>(bits);
  const uint8_t* q = codes + static_cast<size_t>(r) * (n / 8) * width;  // cols is a multiple of 32
  for (size_t k = 0; k < groups; ++k) {
    const float s = scales_f16 != nullptr ? F16ToF32(scales_f16[first + k]) : scales[first + k];
    const int z = zeros != nullptr ? zeros[first + k] : 0;
    for (size_t c = k * g; c < (k + 1) * g; ++c) {
      int code;
      if (bits == 8) {
        code = static_cast<int8_t>(q[c]);
      } else if (bits != 4) {  // 6 bits: the bit stream of unsigned codes c + 2^(bits-1), LSB first
        const size_t bit = c * width;
        unsigned window = q[bit / 8];
        if (bit % 8 + width > 8) window |= static_cast<unsigned>(q[bit / 8 + 1]) << 8;
        code = static_cast<int>((window >> (bit % 8)) & ((1u << bits) - 1u)) - (1 << (bits - 1));
      } else {
        const int nib = (c % 2 == 0) ? (q[c / 2] & 0x0F) : (q[c / 2] >> 4);
        code = nib >= 8 ? nib - 16 : nib;
      }
      out[c] = s * static_cast<float>(code - z);
    }
  }
}

int64_t EmbeddingSource::rows() const {
  if (is_packed()) return static_cast<int64_t>(packed.weights.rows);
  if (quantized.codes != nullptr) return quantized.rows;
  return fp.shape.size() == 2 ? fp.shape[0] : -1;
}

int64_t EmbeddingSource::cols() const {
  if (is_packed()) return static_cast<int64_t>(packed.weights.cols);
  if (quantized.codes != nullptr) return quantized.cols;
  return fp.shape.size() == 2 ? fp.shape[1] : -1;
}

void EmbeddingSource::Row(int64_t token, float* out) const {
  if (is_packed()) return DequantPackedRow(packed, static_cast<size_t>(token), out);
  if (quantized.codes != nullptr) return quantized.DequantRow(static_cast<int>(token), out);
  const size_t H = static_cast<size_t>(fp.shape[1]);
  ConvertToF32(fp.dtype, fp.data + static_cast<size_t>(token) * H * DTypeSize(fp.dtype), H, out);
}

size_t EmbeddingSource::RowBytes() const {
  if (is_packed()) return PackedRowBytes(packed);
  if (quantized.codes != nullptr) {
    const size_t groups = static_cast<size_t>(quantized.cols / quantized.group_size);
    return static_cast<size_t>(quantized.cols) * static_cast<size_t>(quantized.bits) / 8 +
           groups * (sizeof(float) + sizeof(int8_t));
  }
  return fp.shape.size() == 2 ? static_cast<size_t>(fp.shape[1]) * DTypeSize(fp.dtype) : 0;
}

Status Engine::Embed(std::span<const int32_t> tokens, float* x) const {
  const size_t H = static_cast<size_t>(config_.hidden_size);
  for (size_t t = 0; t < tokens.size(); ++t) {
    if (tokens[t] < 0 || tokens[t] >= config_.vocab_size) {
      return InvalidArgument("Embed: token id " + std::to_string(tokens[t]) + " outside the vocabulary of " +
                             std::to_string(config_.vocab_size));
    }
    embed_.Row(tokens[t], x + t * H);
  }
  return Status::Ok();
}

Status Engine::ForwardLayer(int layer, float* x, int n, int pos, LinearObserver* observer) {
  if (layer < 0 || layer >= static_cast<int>(layers_.size())) {
    return InvalidArgument("ForwardLayer: no layer " + std::to_string(layer));
  }
  if (n <= 0 || n > max_batch_ || pos < 0 || n > max_seq_ - pos) {
    return InvalidArgument("ForwardLayer: " + std::to_string(n) + " tokens at position " + std::to_string(pos) +
                           " do not fit (chunk " + std::to_string(max_batch_) + ", context " +
                           std::to_string(max_seq_) + ")");
  }
  PlaceContiguous(n, pos);
  return LayerStep(static_cast<size_t>(layer), x, n, observer);
}

void Engine::PlaceContiguous(int n, int pos) {
  for (int t = 0; t < n; ++t) {
    row_pos_[static_cast<size_t>(t)] = pos + t;
    row_seq_[static_cast<size_t>(t)] = 0;
  }
}

Status Engine::ForwardRows(std::span<const int32_t> tokens, std::span<const int32_t> positions,
                           std::span<const int32_t> seqs, float* logits) {
  const int n = static_cast<int>(tokens.size());
  if (n == 0 || n > max_batch_ || positions.size() != tokens.size() || seqs.size() != tokens.size()) {
    return InvalidArgument("ForwardRows: takes 1 to " + std::to_string(max_batch_) +
                           " rows with one position and one slot each");
  }
  for (int t = 0; t < n; ++t) {
    const size_t r = static_cast<size_t>(t);
    if (positions[r] < 0 || positions[r] >= max_seq_ || seqs[r] < 0 || seqs[r] >= max_sequences_) {
      return InvalidArgument("ForwardRows: row " + std::to_string(t) + " (slot " + std::to_string(seqs[r]) +
                             ", position " + std::to_string(positions[r]) + ") is outside the cache (" +
                             std::to_string(max_sequences_) + " slots of " + std::to_string(max_seq_) + ")");
    }
    for (size_t u = 0; u < r; ++u) {
      if (positions[u] == positions[r] && seqs[u] == seqs[r]) {
        return InvalidArgument("ForwardRows: rows " + std::to_string(u) + " and " + std::to_string(t) +
                               " write the same slot and position");
      }
    }
    row_pos_[r] = positions[r];
    row_seq_[r] = seqs[r];
  }
  FAMQ_RETURN_IF_ERROR(Embed(tokens, x_.data()));
  const size_t H = static_cast<size_t>(config_.hidden_size);
  for (size_t li = 0; li < layers_.size(); ++li) FAMQ_RETURN_IF_ERROR(LayerStep(li, x_.data(), n, nullptr));
  if (logits == nullptr) return Status::Ok();
  for (int t = 0; t < n; ++t) ops::RmsNorm(&x_[t * H], final_norm_.data(), config_.rms_norm_eps, H, &xn_[t * H]);
  return lm_head_.Run(xn_.data(), logits, static_cast<size_t>(n), pool_);
}

Status Engine::CopySequence(int from, int to, int len) {
  if (from < 0 || from >= max_sequences_ || to < 0 || to >= max_sequences_ || len < 0 || len > max_seq_) {
    return InvalidArgument("CopySequence: slots " + std::to_string(from) + " -> " + std::to_string(to) + ", " +
                           std::to_string(len) + " positions: outside the cache (" + std::to_string(max_sequences_) +
                           " slots of " + std::to_string(max_seq_) + ")");
  }
  if (from == to || len == 0) return Status::Ok();
  // In (position, kv head) units: values take head_dim elements each, int8 scales one float.
  const size_t heads = static_cast<size_t>(config_.num_kv_heads);
  const size_t slot = static_cast<size_t>(max_seq_) * heads;
  const size_t count = static_cast<size_t>(len) * heads;
  const size_t unit = static_cast<size_t>(config_.head_dim) * KvElementSize(kv_.type);
  for (size_t li = 0; li < layers_.size(); ++li) {
    const size_t layer_off = li * static_cast<size_t>(max_sequences_) * slot;
    const size_t src = layer_off + static_cast<size_t>(from) * slot, dst = layer_off + static_cast<size_t>(to) * slot;
    std::memcpy(&kv_.k[dst * unit], &kv_.k[src * unit], count * unit);
    std::memcpy(&kv_.v[dst * unit], &kv_.v[src * unit], count * unit);
    if (kv_.type == KvType::kInt8) {
      std::memcpy(&kv_.k_scale[dst], &kv_.k_scale[src], count * sizeof(float));
      std::memcpy(&kv_.v_scale[dst], &kv_.v_scale[src], count * sizeof(float));
    }
  }
  return Status::Ok();
}

Status Engine::Forward(std::span<const int32_t> tokens, int pos, float* logits, bool all_logits) {
  const int n = static_cast<int>(tokens.size());
  if (n == 0) return InvalidArgument("Forward: no tokens");
  if (pos < 0 || n > max_seq_ - pos) {
    return InvalidArgument("Forward: positions [" + std::to_string(pos) + ", " + std::to_string(pos + n) +
                           ") exceed the context of " + std::to_string(max_seq_) + " tokens");
  }
  if (all_logits && n > max_batch_) {
    return InvalidArgument("Forward: all-logits output takes at most " + std::to_string(max_batch_) + " tokens");
  }
  for (int32_t t : tokens) {
    if (t < 0 || t >= config_.vocab_size) {
      return InvalidArgument("Forward: token id " + std::to_string(t) + " outside the vocabulary of " +
                             std::to_string(config_.vocab_size));
    }
  }
  for (int start = 0; start < n; start += max_batch_) {
    const int len = std::min(max_batch_, n - start);
    const bool last = start + len == n;
    FAMQ_RETURN_IF_ERROR(ForwardChunk(tokens.data() + start, len, pos + start, last ? logits : nullptr, all_logits));
  }
  return Status::Ok();
}

Status Engine::ForwardHidden(std::span<const int32_t> tokens, int pos, float* logits, float* hidden) {
  const int n = static_cast<int>(tokens.size());
  if (n == 0 || n > max_batch_) {
    return InvalidArgument("ForwardHidden: takes 1 to " + std::to_string(max_batch_) + " tokens, not " +
                           std::to_string(n));
  }
  if (pos < 0 || n > max_seq_ - pos) {
    return InvalidArgument("ForwardHidden: positions [" + std::to_string(pos) + ", " + std::to_string(pos + n) +
                           ") exceed the context of " + std::to_string(max_seq_) + " tokens");
  }
  for (int32_t t : tokens) {
    if (t < 0 || t >= config_.vocab_size) {
      return InvalidArgument("ForwardHidden: token id " + std::to_string(t) + " outside the vocabulary of " +
                             std::to_string(config_.vocab_size));
    }
  }
  return ForwardChunk(tokens.data(), n, pos, logits, true, hidden);
}

namespace {

// Rows x heads of a chunk, split into `chunks` contiguous ranges of (row,
// head) items; each range has its own row of scores.
struct AttentionTask {
  const ModelConfig* c;
  AttendFn attend;
  const float* qkv;
  const uint8_t* k;  // this layer's [slot][pos][kv_head][head_dim], elements of `elem` bytes
  const uint8_t* v;
  const float* k_scale;  // int8: this layer's [slot][pos][kv_head]; else null
  const float* v_scale;
  float* out;
  float* scores;  // [chunks][max_seq]
  const int32_t* row_pos;  // [n]
  const int32_t* row_seq;  // [n]
  size_t elem;
  size_t slot_heads;  // (position, kv head) pairs per slot: max_seq * kv_heads
  size_t items, chunks;
  int max_seq;
};

// Causal attention of each (row, head) item in the range: fp32 softmax like
// HF eager attention, on the kernels of kernels/attention.h.
void AttendChunk(void* context, size_t chunk) {
  const auto& a = *static_cast<const AttentionTask*>(context);
  const ModelConfig& c = *a.c;
  const size_t hd = static_cast<size_t>(c.head_dim);
  const size_t heads = static_cast<size_t>(c.num_heads), kv_heads = static_cast<size_t>(c.num_kv_heads);
  const size_t q_dim = static_cast<size_t>(c.q_dim());
  const size_t qkv_stride = q_dim + 2 * static_cast<size_t>(c.kv_dim());
  const size_t group = heads / kv_heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  float* scores = a.scores + chunk * static_cast<size_t>(a.max_seq);
  const size_t begin = chunk * a.items / a.chunks, end = (chunk + 1) * a.items / a.chunks;
  for (size_t item = begin; item < end; ++item) {
    const size_t t = item / heads, head = item % heads, kv_head = head / group;
    const size_t first = static_cast<size_t>(a.row_seq[t]) * a.slot_heads + kv_head;  // (pos 0, kv_head)
    KvHeadView kv{a.k + first * hd * a.elem,
                  a.v + first * hd * a.elem,
                  a.k_scale != nullptr ? a.k_scale + first : nullptr,
                  a.v_scale != nullptr ? a.v_scale + first : nullptr,
                  kv_heads * hd,
                  kv_heads};
    a.attend(a.qkv + t * qkv_stride + head * hd, &kv, hd, static_cast<size_t>(a.row_pos[t]) + 1, scale, scores,
             a.out + t * q_dim + head * hd);
  }
}

// Blocks of rows of one sequence (Engine::attn_blocks_) x kv heads, taken from a
// shared counter by one task per thread, each with its own scratch.
struct AttentionBlockTask {
  const ModelConfig* c;
  AttendBlockFn attend;
  const float* qkv;
  const uint8_t* k;  // as AttentionTask
  const uint8_t* v;
  const float* k_scale;
  const float* v_scale;
  float* out;
  float* scratch;  // [tasks][scratch_floats]
  size_t scratch_floats;
  const int32_t* row_pos;
  const int32_t* row_seq;
  const int32_t* blocks;  // [blocks][2]: first row, rows
  size_t elem, slot_heads;
  size_t items;  // blocks x kv heads
  std::atomic<size_t> next{0};
};

void AttendBlocks(void* context, size_t task) {
  auto& a = *static_cast<AttentionBlockTask*>(context);
  const ModelConfig& c = *a.c;
  const size_t hd = static_cast<size_t>(c.head_dim);
  const size_t kv_heads = static_cast<size_t>(c.num_kv_heads);
  const size_t group = static_cast<size_t>(c.num_heads) / kv_heads;
  const size_t q_dim = static_cast<size_t>(c.q_dim());
  const size_t qkv_stride = q_dim + 2 * static_cast<size_t>(c.kv_dim());
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  float* scratch = a.scratch + task * a.scratch_floats;
  for (;;) {
    const size_t taken = a.next.fetch_add(1, std::memory_order_relaxed);
    if (taken >= a.items) return;
    // Last blocks first: in a prefill they attend to the most positions.
    const size_t item = a.items - 1 - taken;
    const size_t block = item / kv_heads, kv_head = item % kv_heads;
    const size_t t0 = static_cast<size_t>(a.blocks[2 * block]);
    const size_t rows = static_cast<size_t>(a.blocks[2 * block + 1]);
    const size_t first = static_cast<size_t>(a.row_seq[t0]) * a.slot_heads + kv_head;  // (pos 0, kv_head)
    const KvHeadView kv{a.k + first * hd * a.elem,
                        a.v + first * hd * a.elem,
                        a.k_scale != nullptr ? a.k_scale + first : nullptr,
                        a.v_scale != nullptr ? a.v_scale + first : nullptr,
                        kv_heads * hd,
                        kv_heads};
    const AttendBlock blk{a.qkv + t0 * qkv_stride + kv_head * group * hd,
                          qkv_stride,
                          a.out + t0 * q_dim + kv_head * group * hd,
                          q_dim,
                          a.row_pos + t0,
                          rows,
                          group};
    a.attend(&blk, &kv, hd, scale, scratch);
  }
}

}  // namespace

// Splits a chunk into runs of consecutive rows of one sequence (at most
// attn_block_rows_ each) in attn_blocks_; false when no run has two rows
// (decode, batched sequences: the per-query path serves them).
bool Engine::FormAttentionBlocks(int n, size_t* count) {
  size_t blocks = 0;
  bool shared = false;
  for (size_t t = 0, rows = static_cast<size_t>(n); t < rows;) {
    const size_t start = t;
    while (t < rows && t - start < attn_block_rows_ && row_seq_[t] == row_seq_[start]) ++t;
    attn_blocks_[2 * blocks] = static_cast<int32_t>(start);
    attn_blocks_[2 * blocks + 1] = static_cast<int32_t>(t - start);
    ++blocks;
    shared = shared || t - start > 1;
  }
  *count = blocks;
  return shared;
}

void Engine::Attention(int layer, int n) {
  const size_t slot_heads = static_cast<size_t>(max_seq_) * static_cast<size_t>(config_.num_kv_heads);
  const size_t layer_heads = static_cast<size_t>(layer) * static_cast<size_t>(max_sequences_) * slot_heads;
  const size_t elem = KvElementSize(kv_.type);
  const size_t hd = static_cast<size_t>(config_.head_dim);
  const bool scaled = kv_.type == KvType::kInt8;
  const size_t items = static_cast<size_t>(n) * static_cast<size_t>(config_.num_heads);
  AttentionTask task{&config_,
                     attend_,
                     qkv_.data(),
                     kv_.k.data() + layer_heads * hd * elem,
                     kv_.v.data() + layer_heads * hd * elem,
                     scaled ? kv_.k_scale.data() + layer_heads : nullptr,
                     scaled ? kv_.v_scale.data() + layer_heads : nullptr,
                     attn_.data(),
                     scores_.data(),
                     row_pos_.data(),
                     row_seq_.data(),
                     elem,
                     slot_heads,
                     items,
                     std::min(items, attn_chunks_),
                     max_seq_};
  size_t blocks = 0;
  if (blocked_attention_ && attn_block_tasks_ > 0 && n > 1 && FormAttentionBlocks(n, &blocks)) {
    AttentionBlockTask bt{&config_,
                          attend_block_,
                          task.qkv,
                          task.k,
                          task.v,
                          task.k_scale,
                          task.v_scale,
                          task.out,
                          scores_.data(),
                          attn_block_scratch_,
                          row_pos_.data(),
                          row_seq_.data(),
                          attn_blocks_.data(),
                          elem,
                          slot_heads,
                          blocks * static_cast<size_t>(config_.num_kv_heads)};
    pthreadpool_parallelize_1d(pool_, AttendBlocks, &bt, std::min(attn_block_tasks_, bt.items), 0);
    return;
  }
  pthreadpool_parallelize_1d(pool_, AttendChunk, &task, task.chunks, 0);
}

namespace {

// f(t) for every row t < n, split over the pool's threads when there are
// several rows (prefill): rows are independent, so every value is computed
// by the same operations as inline. No allocation.
template <typename F>
void ForEachRow(pthreadpool_t pool, int n, F& f) {
  if (pool == nullptr || n < 2) {
    for (int t = 0; t < n; ++t) f(t);
    return;
  }
  pthreadpool_parallelize_1d(
      pool, [](void* context, size_t t) { (*static_cast<F*>(context))(static_cast<int>(t)); }, &f,
      static_cast<size_t>(n), /*flags=*/0);
}

}  // namespace

Status Engine::LayerStep(size_t li, float* x, int n, LinearObserver* observer) {
  const ModelConfig& c = config_;
  const size_t H = static_cast<size_t>(c.hidden_size);
  const size_t hd = static_cast<size_t>(c.head_dim);
  const size_t half = hd / 2;
  const size_t q_dim = static_cast<size_t>(c.q_dim()), kv_dim = static_cast<size_t>(c.kv_dim());
  const size_t qkv_stride = q_dim + 2 * kv_dim;
  const size_t ff = static_cast<size_t>(c.intermediate_size);
  const size_t batch = static_cast<size_t>(n);
  EngineLayer& l = layers_[li];
  const int layer = static_cast<int>(li);
  auto run = [&](LinearSlot slot, float* in, float* out) -> Status {
    FAMQ_RETURN_IF_ERROR(l.linears[static_cast<int>(slot)].Run(in, out, batch, pool_));
    return observer == nullptr ? Status::Ok() : observer->OnLinear(layer, slot, in, out, n);
  };

  auto input_norm = [&](int t) { ops::RmsNorm(&x[t * H], l.input_norm.data(), c.rms_norm_eps, H, &xn_[t * H]); };
  ForEachRow(pool_, n, input_norm);
  FAMQ_RETURN_IF_ERROR(run(LinearSlot::kQkv, xn_.data(), qkv_.data()));

  const size_t slot_heads = static_cast<size_t>(max_seq_) * static_cast<size_t>(c.num_kv_heads);
  const size_t layer_heads = li * static_cast<size_t>(max_sequences_) * slot_heads;
  const size_t elem = KvElementSize(kv_.type);
  const bool scaled = kv_.type == KvType::kInt8;
  // Per row: q/k norms, RoPE, the row's keys and values into its own cache position.
  auto rope_and_store = [&](int t) {
    float* q = &qkv_[t * qkv_stride];
    float* k = q + q_dim;
    const float* v = k + kv_dim;
    const size_t p = static_cast<size_t>(row_pos_[static_cast<size_t>(t)]);
    // (position, kv head 0) of this row in the cache.
    const size_t cache_head = layer_heads + static_cast<size_t>(row_seq_[static_cast<size_t>(t)]) * slot_heads +
                              p * static_cast<size_t>(c.num_kv_heads);
    const float* cs = &rope_cos_[p * half];
    const float* sn = &rope_sin_[p * half];
    for (int h = 0; h < c.num_heads; ++h) {
      float* qh = q + h * hd;
      if (!l.q_norm.empty()) ops::RmsNorm(qh, l.q_norm.data(), c.rms_norm_eps, hd, qh);
      ops::ApplyRope(qh, cs, sn, half);
    }
    for (int h = 0; h < c.num_kv_heads; ++h) {
      float* kh = k + h * hd;
      if (!l.k_norm.empty()) ops::RmsNorm(kh, l.k_norm.data(), c.rms_norm_eps, hd, kh);
      ops::ApplyRope(kh, cs, sn, half);
    }
    for (size_t h = 0; h < static_cast<size_t>(c.num_kv_heads); ++h) {
      const size_t at = cache_head + h;
      StoreKvWith(*attn_kernels_, kv_.type, k + h * hd, hd, &kv_.k[at * hd * elem],
                  scaled ? &kv_.k_scale[at] : nullptr);
      StoreKvWith(*attn_kernels_, kv_.type, v + h * hd, hd, &kv_.v[at * hd * elem],
                  scaled ? &kv_.v_scale[at] : nullptr);
    }
  };
  ForEachRow(pool_, n, rope_and_store);
  Attention(layer, n);
  FAMQ_RETURN_IF_ERROR(run(LinearSlot::kOProj, attn_.data(), tmp_.data()));
  ops::AddInPlace(x, tmp_.data(), batch * H);

  auto post_norm = [&](int t) { ops::RmsNorm(&x[t * H], l.post_norm.data(), c.rms_norm_eps, H, &xn_[t * H]); };
  ForEachRow(pool_, n, post_norm);
  FAMQ_RETURN_IF_ERROR(run(LinearSlot::kGateUp, xn_.data(), gu_.data()));
  auto silu_mul = [&](int t) { ops::SiluMul(&gu_[t * 2 * ff], &gu_[t * 2 * ff + ff], ff, &act_[t * ff]); };
  ForEachRow(pool_, n, silu_mul);
  FAMQ_RETURN_IF_ERROR(run(LinearSlot::kDown, act_.data(), tmp_.data()));
  ops::AddInPlace(x, tmp_.data(), batch * H);
  return Status::Ok();
}

Status Engine::ForwardChunk(const int32_t* tokens, int n, int pos, float* logits, bool all_logits, float* hidden) {
  const ModelConfig& c = config_;
  const size_t H = static_cast<size_t>(c.hidden_size);
  FAMQ_RETURN_IF_ERROR(Embed(std::span<const int32_t>(tokens, static_cast<size_t>(n)), x_.data()));
  PlaceContiguous(n, pos);
  for (size_t li = 0; li < layers_.size(); ++li) FAMQ_RETURN_IF_ERROR(LayerStep(li, x_.data(), n, nullptr));
  if (hidden != nullptr) {
    for (int t = 0; t < n; ++t) ops::RmsNorm(&x_[t * H], final_norm_.data(), c.rms_norm_eps, H, &xn_[t * H]);
    std::copy(xn_.begin(), xn_.begin() + static_cast<std::ptrdiff_t>(n * H), hidden);
    return logits == nullptr ? Status::Ok() : lm_head_.Run(xn_.data(), logits, static_cast<size_t>(n), pool_);
  }
  if (logits == nullptr) return Status::Ok();
  if (all_logits) {
    for (int t = 0; t < n; ++t) ops::RmsNorm(&x_[t * H], final_norm_.data(), c.rms_norm_eps, H, &xn_[t * H]);
    return lm_head_.Run(xn_.data(), logits, static_cast<size_t>(n), pool_);
  }
  ops::RmsNorm(&x_[(n - 1) * H], final_norm_.data(), c.rms_norm_eps, H, xn_.data());
  return lm_head_.Run(xn_.data(), logits, 1, pool_);
}

Result<KvCache> Engine::NewKvCache() const {
  KvCache c;
  c.type = kv_.type;
  try {
    c.k.assign(kv_.k.size(), 0);
    c.v.assign(kv_.v.size(), 0);
    c.k_scale.assign(kv_.k_scale.size(), 0.0f);
    c.v_scale.assign(kv_.v_scale.size(), 0.0f);
  } catch (const std::bad_alloc&) {
    return OutOfMemory("KV cache of " + std::to_string(kv_cache_bytes()) + " bytes cannot be allocated");
  }
  return c;
}

Status Engine::SwapKvCache(KvCache* cache) {
  if (cache == nullptr || cache->type != kv_.type || cache->k.size() != kv_.k.size() ||
      cache->v.size() != kv_.v.size() || cache->k_scale.size() != kv_.k_scale.size() ||
      cache->v_scale.size() != kv_.v_scale.size()) {
    return InvalidArgument("SwapKvCache: the cache was not made by this engine's NewKvCache()");
  }
  std::swap(kv_, *cache);
  return Status::Ok();
}

size_t Engine::weight_bytes() const {
  size_t b = lm_head_.weight_bytes() + final_norm_.size() * sizeof(float);
  b += embed_.RowBytes();  // one embedding row
  for (const EngineLayer& l : layers_) {
    for (const LayerLinear& lin : l.linears) b += lin.weight_bytes();
    b += (l.input_norm.size() + l.post_norm.size() + l.q_norm.size() + l.k_norm.size()) * sizeof(float);
  }
  return b;
}

size_t Engine::scratch_bytes() const {
  const size_t floats = x_.size() + xn_.size() + qkv_.size() + attn_.size() + tmp_.size() + gu_.size() +
                        act_.size() + scores_.size() + rope_cos_.size() + rope_sin_.size();
  return floats * sizeof(float) + (row_pos_.size() + row_seq_.size()) * sizeof(int32_t);
}

}  // namespace famq
