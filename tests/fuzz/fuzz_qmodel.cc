// libFuzzer target: the quantized-model reader (runtime/qmodel/qmodel.h) on
// arbitrary bytes. QModel::FromBytes must refuse every malformed file with a
// status; a file it accepts must be safe to use: every linear (the quantized
// embedding / head included) is unpacked, every floating-point tensor
// resolved, and a one-token forward pass runs on
// an engine built from it (small context, one thread, reference kernels).
// Seeds: tests/fuzz/corpus/fuzz_qmodel/ (tests/fuzz/make_qmodel_seeds.sh).
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "kernels/isa.h"
#include "qmodel/qmodel.h"
#include "qmodel/qmodel_engine.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint8_t> bytes(data, data + size);
  // Mutations almost never keep the integrity digests right; reseal odd-sized
  // inputs so that the validation and the engine behind them stay reachable
  // (even-sized ones exercise the checksum refusals).
  if (size % 2 == 1) (void)famq::SealQModel(&bytes);
  auto q = famq::QModel::FromBytes(std::move(bytes), "fuzz.famq");
  if (!q.ok()) return 0;
  const famq::fb::QModel& r = q->root();
  uint64_t sink = r.wbits() + r.abits() + r.group_size();
  for (uint32_t i = 0; i < r.linears()->size(); ++i) {
    auto m = q->Matrix(static_cast<int>(i));
    if (!m.ok()) continue;
    for (int8_t c : m->codes) sink += static_cast<uint8_t>(c);
    for (int8_t z : m->zeros) sink += static_cast<uint8_t>(z);
    sink += m->scales.size();
  }
  for (auto m : {q->EmbeddingMatrix(), q->HeadMatrix()}) {  // the quantized embedding / head, if any
    if (!m.ok()) continue;
    for (int8_t c : m->codes) sink += static_cast<uint8_t>(c);
    sink += m->scales.size() + m->zeros.size();
  }
  for (const famq::fb::FloatTensor* t : *r.float_tensors()) {
    if (t->name() == nullptr) continue;
    auto v = q->Tensor(t->name()->str());
    if (v.ok()) sink += static_cast<uint64_t>(v->numel());
  }

  famq::EngineOptions eo;
  eo.num_threads = 1;
  eo.max_seq_len = 8;
  eo.max_batch = 4;
  auto engine = famq::CreateQuantizedEngine(*q, eo, famq::Isa::kRef);
  if (engine.ok()) {
    std::vector<float> logits(static_cast<size_t>((*engine)->vocab_size()));
    const int32_t token = 0;
    famq::Status st = (*engine)->Forward(std::span<const int32_t>(&token, 1), 0, logits.data(), false);
    if (st.ok()) sink += static_cast<uint64_t>(logits[0] == logits[0]);
  }
  volatile uint64_t keep = sink;
  (void)keep;
  return 0;
}
