// llama.cpp's side of scripts/bench/against-llama-cpp.sh: the same workload as
// `famq-rt bench`, on a GGUF, through node-llama-cpp's prebuilt CPU binaries
// (build: "never", gpu off), in one process per call:
//
//   node llama_bench.mjs GGUF CTX THREADS PROMPT GEN PROMPT2 SEED
//   node llama_bench.mjs --bare       (a Node process that loads nothing: its peak RSS)
//
// One context of CTX tokens (batch CTX: a prompt is one llama_decode), one
// sequence, THREADS threads. Like famq-rt bench, each workload runs once to
// warm up and once measured, on a cleared sequence:
//   - PROMPT seeded random tokens evaluated in one call that also samples the
//     next token greedily (prefill tokens/s), then GEN decode steps, each a
//     plain evaluate call of ONE token that returns the next greedy token
//     (sequence.controlledEvaluate([[token, {generateNext: {token: true}}]]):
//     one llama_decode and llama.cpp's own greedy sampler, no token predictor,
//     no logits copied into JavaScript) (decode tokens/s);
//   - PROMPT2 tokens the same way (prefill tokens/s of the longer prompt).
// The time from loadModel() (the file is memory-mapped, llama.cpp's default)
// through createContext() to the first token of the warm-up run is "open to
// first token". Prints one JSON object; peak RSS is this process's VmHWM.
import fs from "node:fs";

function statusMiB(field) {
  const m = fs.readFileSync("/proc/self/status", "utf8").match(new RegExp(`^${field}:\\s+(\\d+) kB`, "m"));
  return m ? Number(m[1]) / 1024 : 0;
}

if (process.argv[2] === "--bare") {
  console.log(JSON.stringify({peak_rss_mib: statusMiB("VmHWM"), rss_mib: statusMiB("VmRSS")}));
  process.exit(0);
}

const [gguf, ctxArg, threadsArg, promptArg, genArg, prompt2Arg, seedArg] = process.argv.slice(2);
const [ctx, threads, prompt, gen, prompt2, seed] = [ctxArg, threadsArg, promptArg, genArg, prompt2Arg, seedArg].map(Number);
if (!gguf || [ctx, threads, prompt, gen, prompt2, seed].some((x) => !Number.isInteger(x) || x < 1) ||
    prompt + gen > ctx || prompt2 + 1 > ctx) {
  console.error("usage: node llama_bench.mjs GGUF CTX THREADS PROMPT GEN PROMPT2 SEED (PROMPT + GEN <= CTX)");
  process.exit(2);
}

const {getLlama} = await import("node-llama-cpp");
const llama = await getLlama({gpu: false, build: "never", usePrebuiltBinaries: true, progressLogs: false,
                              logLevel: "error", maxThreads: threads});
const tOpen = performance.now();
const model = await llama.loadModel({modelPath: gguf, gpuLayers: 0});
const context = await model.createContext({contextSize: ctx, batchSize: ctx, sequences: 1,
                                           threads: {ideal: threads, min: threads}});
const seq = context.getSequence();
const vocab = 151643;  // token ids below Qwen's first special token (the harness runs Qwen3 shapes)
let state = BigInt(seed);
function randomTokens(n) {  // splitmix64, like famq's Rng in spirit (token ids do not change the work)
  const out = [];
  for (let i = 0; i < n; ++i) {
    state = (state + 0x9E3779B97F4A7C15n) & 0xFFFFFFFFFFFFFFFFn;
    let z = state;
    z = ((z ^ (z >> 30n)) * 0xBF58476D1CE4E5B9n) & 0xFFFFFFFFFFFFFFFFn;
    z = ((z ^ (z >> 27n)) * 0x94D049BB133111EBn) & 0xFFFFFFFFFFFFFFFFn;
    out.push(Number((z ^ (z >> 31n)) % BigInt(vocab)));
  }
  return out;
}
const greedy = {generateNext: {token: true, options: {temperature: 0}}};

// Prefill `tokens` on a cleared sequence (one call; the last token samples the
// next), then `steps` one-token decode calls. Returns seconds and the tokens.
async function run(tokens, steps) {
  await seq.clearHistory();
  const t0 = performance.now();
  const input = tokens.map((t, i) => (i === tokens.length - 1 ? [t, greedy] : t));
  let tok = (await seq.controlledEvaluate(input))[tokens.length - 1].next.token;
  const t1 = performance.now();
  for (let i = 0; i < steps; ++i) tok = (await seq.controlledEvaluate([[tok, greedy]]))[0].next.token;
  const t2 = performance.now();
  return {prefill_s: (t1 - t0) / 1e3, decode_s: (t2 - t1) / 1e3, firstTokenAt: t1};
}

const p1 = randomTokens(prompt), p2 = randomTokens(prompt2);
const warm = await run(p1, gen);
const openToFirst = warm.firstTokenAt - tOpen;
const r1 = await run(p1, gen);
await run(p2, 0);
const r2 = await run(p2, 0);
console.log(JSON.stringify({
  gguf, context_size: context.contextSize, threads, prompt_tokens: prompt, gen_tokens: gen, prompt2_tokens: prompt2,
  prefill_tokens_per_s: prompt / r1.prefill_s, decode_tokens_per_s: gen / r1.decode_s,
  prefill2_tokens_per_s: prompt2 / r2.prefill_s, open_to_first_token_ms: openToFirst,
  file_bytes: fs.statSync(gguf).size, peak_rss_mib: statusMiB("VmHWM"), rss_mib: statusMiB("VmRSS"),
}));
await context.dispose();
await model.dispose();
