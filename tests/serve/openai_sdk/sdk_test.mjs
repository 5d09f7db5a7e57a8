// famq serve as the official OpenAI Node SDK (npm openai 4.x, pinned by
// package-lock.json beside this file) uses it: every endpoint, streaming
// included. Run by run_sdk_test.sh; exits non-zero on the first mismatch.
//
//   node sdk_test.mjs BASE_URL API_KEY
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const [baseURL, apiKey] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 60_000 });
let checks = 0;
const ok = (what) => { checks += 1; console.log(`sdk: ok: ${what}`); };

// Models.
const models = await client.models.list();
assert.ok(models.data.length >= 1);
const model = models.data[0].id;
ok(`models.list: ${model}`);

// Completions: n = 2, logprobs, seed.
const prompt = 'The quick brown fox';
const req = { model, prompt, n: 2, max_tokens: 8, seed: 7, temperature: 1 };
const whole = await client.completions.create({ ...req, logprobs: 1 });
assert.equal(whole.choices.length, 2);
for (const c of whole.choices) {
  assert.equal(typeof c.text, 'string');
  assert.ok(['stop', 'length'].includes(c.finish_reason));
  assert.equal(c.logprobs.tokens.length, c.logprobs.token_logprobs.length);
  assert.ok(c.logprobs.token_logprobs.every((x) => typeof x === 'number' && x <= 0));
  assert.equal(c.logprobs.top_logprobs.length, c.logprobs.tokens.length);
}
assert.equal(whole.usage.total_tokens, whole.usage.prompt_tokens + whole.usage.completion_tokens);
ok('completions.create n=2 logprobs=1');

// The same request streamed: the deltas per index concatenate to the same texts.
const stream = await client.completions.create({ ...req, stream: true, stream_options: { include_usage: true } });
const texts = ['', ''];
const finish = [null, null];
let usage = null;
let chunks = 0;
for await (const chunk of stream) {
  chunks += 1;
  assert.equal(chunk.object, 'text_completion');
  if (chunk.choices.length === 0) {
    usage = chunk.usage;
    continue;
  }
  for (const c of chunk.choices) {
    texts[c.index] += c.text;
    if (c.finish_reason) finish[c.index] = c.finish_reason;
  }
}
assert.ok(chunks > 3, `only ${chunks} chunks`);
assert.deepEqual(texts, whole.choices.map((c) => c.text));
assert.deepEqual(finish, whole.choices.map((c) => c.finish_reason));
assert.deepEqual(usage, whole.usage);
ok(`completions stream n=2: ${chunks} chunks, texts, finish reasons and usage equal the non-streamed answer`);

// Chat, then the same chat streamed.
const messages = [{ role: 'user', content: 'Name a colour.' }];
const chatReq = { model, messages, max_tokens: 10, seed: 3 };
const chat = await client.chat.completions.create(chatReq);
assert.equal(chat.choices[0].message.role, 'assistant');
assert.equal(typeof chat.choices[0].message.content, 'string');
ok('chat.completions.create');
const chatStream = await client.chat.completions.create({ ...chatReq, stream: true });
let content = '';
let role = null;
let chatFinish = null;
for await (const chunk of chatStream) {
  assert.equal(chunk.object, 'chat.completion.chunk');
  const d = chunk.choices[0].delta;
  if (d.role) role = d.role;
  if (d.content) content += d.content;
  if (chunk.choices[0].finish_reason) chatFinish = chunk.choices[0].finish_reason;
}
assert.equal(role, 'assistant');
assert.equal(content, chat.choices[0].message.content);
assert.equal(chatFinish, chat.choices[0].finish_reason);
ok('chat stream: role, content and finish reason equal the non-streamed answer');

// A stop string while streaming: cut where the non-streamed answer cuts, nothing of it sent.
if (whole.choices[0].text.length >= 6) {
  const stop = whole.choices[0].text.slice(3, 5);
  const cut = await client.completions.create({ ...req, n: 1, stop: [stop] });
  let streamed = '';
  for await (const chunk of await client.completions.create({ ...req, n: 1, stop: [stop], stream: true })) {
    for (const c of chunk.choices) streamed += c.text;
  }
  assert.equal(streamed, cut.choices[0].text);
  assert.ok(!streamed.includes(stop));
  ok(`stream with stop ${JSON.stringify(stop)}: equal to the non-streamed cut`);
}

// Embeddings: the SDK's default (base64, decoded by the SDK) equals "float".
const asBase64 = await client.embeddings.create({ model, input: 'hello world' });
const asFloat = await client.embeddings.create({ model, input: 'hello world', encoding_format: 'float' });
assert.ok(asFloat.data[0].embedding.length > 0);
assert.deepEqual(asBase64.data[0].embedding, asFloat.data[0].embedding);
ok(`embeddings.create: base64 (SDK default) equals float, ${asFloat.data[0].embedding.length} dims`);

// A wrong key: the SDK's AuthenticationError.
const wrong = new OpenAI({ baseURL, apiKey: 'wrong-key', maxRetries: 0 });
await assert.rejects(wrong.models.list(), (e) => e instanceof OpenAI.AuthenticationError && e.status === 401);
ok('a wrong key: AuthenticationError (401)');

console.log(`sdk: all ${checks} checks passed`);
