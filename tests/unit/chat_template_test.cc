// Chat templates (famq's Jinja2 subset) and tokenizer_config.json.
//
// Expected strings of the real templates were produced by Jinja2 3.1.2
// (Debian python3-jinja2) configured the way transformers renders chat
// templates, and each was also checked by reading the template:
//
//   from jinja2.sandbox import ImmutableSandboxedEnvironment
//   env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
//                                       extensions=["jinja2.ext.loopcontrols"])
//   def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
//       return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)
//   env.filters["tojson"] = tojson  # transformers' override of Jinja's tojson
//   env.globals["raise_exception"] = ...  # raises TemplateError(msg)
//   env.from_string(open("tests/data/chat_templates/qwen3.jinja").read()).render(
//       messages=[...], tools=None, documents=None, add_generation_prompt=..., enable_thinking=...)
//
// The language tests' expected values came from the same environment.
#include <gtest/gtest.h>

#include <chrono>

#include <string>
#include <utility>
#include <vector>

#include "core/file.h"
#include "chat_template/chat_template.h"
#include "chat_template/jinja.h"
#include "tokenizer/tokenizer_config.h"

namespace famq {
namespace {

using jinja::Value;

std::string DataPath(const std::string& name) {
  return std::string(FAMQ_SOURCE_DIR) + "/tests/data/chat_templates/" + name;
}

std::string ReadTemplate(const std::string& name) {
  Result<std::string> text = ReadFile(DataPath(name));
  EXPECT_TRUE(text.ok()) << text.status().ToString();
  return text.ok() ? text.value() : std::string();
}

std::string RenderChat(const std::string& name, const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                       bool enable_thinking, const std::string& bos = "") {
  Result<ChatTemplate> t = ChatTemplate::Parse(ReadTemplate(name));
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  if (!t.ok()) return "<parse error>";
  ChatTemplateOptions opt;
  opt.add_generation_prompt = add_generation_prompt;
  opt.enable_thinking = enable_thinking;
  opt.bos_token = bos;
  Result<std::string> r = t->Render(messages, opt);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? r.value() : "<render error: " + r.status().ToString() + ">";
}

// ------------------------------------------------------------------ Qwen3

TEST(ChatTemplateQwen3, OneUserTurnThinkingOn) {
  EXPECT_EQ(RenderChat("qwen3.jinja", {{"user", "Hello"}}, true, true),
            "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplateQwen3, OneUserTurnThinkingOff) {
  EXPECT_EQ(RenderChat("qwen3.jinja", {{"user", "Hello"}}, true, false),
            "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
}

TEST(ChatTemplateQwen3, NoGenerationPrompt) {
  EXPECT_EQ(RenderChat("qwen3.jinja", {{"user", "Hello"}}, false, false), "<|im_start|>user\nHello<|im_end|>\n");
}

TEST(ChatTemplateQwen3, SystemAndUser) {
  std::vector<ChatMessage> m = {{"system", "You are a helpful assistant."}, {"user", "What is 2+3?"}};
  EXPECT_EQ(RenderChat("qwen3.jinja", m, true, true),
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
            "<|im_start|>user\nWhat is 2+3?<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(RenderChat("qwen3.jinja", m, true, false),
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
            "<|im_start|>user\nWhat is 2+3?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
}

TEST(ChatTemplateQwen3, MultiTurnDropsEarlierReasoning) {
  // The assistant turn before the last user query loses its <think> block.
  std::vector<ChatMessage> m = {{"user", "What is 2+3?"},
                                {"assistant", "<think>\nAdd them: 2+3=5.\n</think>\n\nThe answer is 5."},
                                {"user", "And 4+4?"}};
  EXPECT_EQ(RenderChat("qwen3.jinja", m, true, true),
            "<|im_start|>user\nWhat is 2+3?<|im_end|>\n<|im_start|>assistant\nThe answer is 5.<|im_end|>\n"
            "<|im_start|>user\nAnd 4+4?<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplateQwen3, FinalAssistantKeepsReasoning) {
  std::vector<ChatMessage> m = {{"user", "Hi"},
                                {"assistant", "<think>\nGreet back.\n</think>\n\nHello! How can I help?"}};
  EXPECT_EQ(RenderChat("qwen3.jinja", m, false, true),
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\nGreet back.\n</think>\n\n"
            "Hello! How can I help?<|im_end|>\n");
}

TEST(ChatTemplateQwen3, ToolResponsesGrouped) {
  std::vector<ChatMessage> m = {{"user", "Weather?"},
                                {"assistant", "Let me check."},
                                {"tool", "sunny"},
                                {"tool", "20C"},
                                {"user", "thanks"}};
  EXPECT_EQ(RenderChat("qwen3.jinja", m, true, true),
            "<|im_start|>user\nWeather?<|im_end|>\n<|im_start|>assistant\nLet me check.<|im_end|>\n"
            "<|im_start|>user\n<tool_response>\nsunny\n</tool_response>\n<tool_response>\n20C\n</tool_response>"
            "<|im_end|>\n<|im_start|>user\nthanks<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplateQwen3, Utf8ContentPassesThrough) {
  EXPECT_EQ(RenderChat("qwen3.jinja", {{"user", "h\xC3\xA9llo \xE4\xB8\x96 \xF0\x9F\x99\x82 \"q\" \\"}}, false, true),
            "<|im_start|>user\nh\xC3\xA9llo \xE4\xB8\x96 \xF0\x9F\x99\x82 \"q\" \\<|im_end|>\n");
}

// ------------------------------------------------------------------ other families

TEST(ChatTemplateOthers, Qwen25DefaultSystemPrompt) {
  EXPECT_EQ(RenderChat("qwen2_5.jinja", {{"user", "  Hello  "}}, true, true),
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
            "<|im_start|>user\n  Hello  <|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplateOthers, Llama3WithBos) {
  EXPECT_EQ(RenderChat("llama3.jinja", {{"system", "Be brief."}, {"user", "  Hello  "}}, true, true,
                       "<|begin_of_text|>"),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

TEST(ChatTemplateApi, VariablesExposed) {
  Result<ChatTemplate> t = ChatTemplate::Parse(
      "{{ bos_token is defined }}|{{ eos_token }}|{{ enable_thinking }}|{{ add_generation_prompt }}|"
      "{{ tools is none }}|{{ messages[0].role }}:{{ messages[0]['content'] }}|{{ messages|length }}");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  ChatTemplateOptions opt;
  opt.eos_token = "</s>";
  opt.enable_thinking = false;
  Result<std::string> r = t->Render({{"user", "hi"}, {"assistant", "yo"}}, opt);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r.value(), "False|</s>|False|True|True|user:hi|2");
}

TEST(ChatTemplateApi, UnparsedTemplateRefusesToRender) {
  ChatTemplate t;
  EXPECT_FALSE(t.Render({{"user", "x"}}, ChatTemplateOptions{}).ok());
}

// ------------------------------------------------------------------ language subset

struct Rendered {
  Status status;
  std::string text;
};

Rendered Render(const std::string& src, jinja::RenderLimits limits = {}) {
  Result<jinja::Template> t = jinja::Template::Parse(src);
  if (!t.ok()) return {t.status(), ""};
  std::vector<std::pair<std::string, Value>> globals;
  globals.emplace_back("x", Value::Int(3));
  globals.emplace_back("s", Value::String("a,b,,c"));
  globals.emplace_back("u", Value::String("h\xC3\xA9llo"));
  globals.emplace_back("n", Value::None());
  std::vector<Value> items;
  for (int i = 1; i <= 5; ++i) items.push_back(Value::Int(i));
  globals.emplace_back("l", Value::List(items).value());
  globals.emplace_back(
      "d", Value::Dict({{"b", Value::Int(1)}, {"a", Value::List({Value::Float(2.5), Value::None(),
                                                                   Value::Bool(true), Value::String("x\n\"y\"")})
                                                        .value()}})
               .value());
  Result<std::string> r = t->Render(globals, limits);
  if (!r.ok()) return {r.status(), ""};
  return {Status::Ok(), r.value()};
}

std::string Ok(const std::string& src) {
  Rendered r = Render(src);
  EXPECT_TRUE(r.status.ok()) << src << " -> " << r.status.ToString();
  return r.text;
}

TEST(JinjaLanguage, TrimAndLstripBlocks) {
  EXPECT_EQ(Ok("a\n  {% if x %}\n    yes\n  {% endif %}\nb\n"), "a\n    yes\nb");
  EXPECT_EQ(Ok("  {{ x }}\n  {% if x %}A{% endif %}\n"), "  3\nA");
  EXPECT_EQ(Ok("{# comment #}\n  {# c2 #}\nX{#- c3 -#}  Y"), "XY");
  EXPECT_EQ(Ok("{%+ if x %}  keep{% endif +%}\nZ"), "  keep\nZ");
  EXPECT_EQ(Ok("line1\r\nline2\r\n{% if x %}\r\nx\r\n{% endif %}\r\n"), "line1\nline2\nx\n");
}

TEST(JinjaLanguage, WhitespaceControl) {
  EXPECT_EQ(Ok("  {%- if x -%}  X  {%- endif -%}  \n"), "X");
  EXPECT_EQ(Ok("a {{- ' b ' -}} c"), "a b c");
  EXPECT_EQ(Ok("{%- for i in l -%}\n  {{ i }}\n{%- endfor %}\n"), "12345");
}

TEST(JinjaLanguage, Loops) {
  EXPECT_EQ(Ok("{% for i in l %}{{ loop.index0 }}{{ loop.index }}{{ loop.first }}{{ loop.last }}{{ loop.length }}"
               "{{ loop.revindex }}|{% endfor %}"),
            "01TrueFalse55|12FalseFalse54|23FalseFalse53|34FalseFalse52|45FalseTrue51|");
  EXPECT_EQ(Ok("{% for i in l if i is odd %}{{ i }}{% else %}none{% endfor %}|{% for i in [] %}x{% else %}e{% endfor %}"),
            "135|e");
  EXPECT_EQ(Ok("{% for i in l %}{% if i == 2 %}{% continue %}{% endif %}{% if i == 4 %}{% break %}{% endif %}"
               "{{ i }}{% endfor %}"),
            "13");
  EXPECT_EQ(Ok("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{% for k in d %}{{ k }}{% endfor %}"),
            "b=1;a=[2.5, None, True, 'x\\n\"y\"'];ba");
  EXPECT_EQ(Ok("{% for i in range(3) %}{{ i }}{% endfor %}{{ range(1, 10, 3)|list }}"), "012[1, 4, 7]");
  // Loop bodies are scoped; `set` inside does not leak.
  EXPECT_EQ(Ok("{% set v = 9 %}{% for i in l %}{% set v = i %}{% endfor %}{{ v }}"), "9");
}

TEST(JinjaLanguage, NamespaceAndSet) {
  EXPECT_EQ(Ok("{% set ns = namespace(a=1, b='x') %}{% for i in l %}{% set ns.a = ns.a + i %}{% endfor %}"
               "{{ ns.a }}{{ ns.b }}"),
            "16x");
  EXPECT_EQ(Ok("{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set v %}in {{ x }}{% endset %}[{{ v }}]"), "12[in 3]");
}

TEST(JinjaLanguage, SubscriptsAndSlices) {
  EXPECT_EQ(Ok("{{ l[::-1] }}{{ l[1:3] }}{{ l[-1] }}{{ l[-2:] }}{{ l[::2] }}{{ l[10] }}|"),
            "[5, 4, 3, 2, 1][2, 3]5[4, 5][1, 3, 5]|");
  EXPECT_EQ(Ok("{{ u[1:3] }}{{ u[::-1] }}{{ u[-1] }}{{ u|length }}"),
            "\xC3\xA9l" "oll\xC3\xA9h" "o5");
  EXPECT_EQ(Ok("{{ d.a[0] }}{{ d['a'][-1]|tojson }}{{ d.zz }}{{ x.foo }}"), "2.5\"x\\n\\\"y\\\"\"");
}

TEST(JinjaLanguage, StringMethods) {
  EXPECT_EQ(Ok("{{ s.split(',') }}{{ s.split(',', 1) }}{{ ' a  b '.split() }}"),
            "['a', 'b', '', 'c']['a', 'b,,c']['a', 'b']");
  EXPECT_EQ(Ok("{{ u.startswith('h') }}{{ u.endswith(('x', 'lo')) }}[{{ '  xx  '.strip() }}][{{ 'xxhixx'.strip('x') }}]"
               "[{{ '\\n\\nab\\n'.lstrip('\\n') }}][{{ 'ab  '.rstrip() }}]"),
            "TrueTrue[xx][hi][ab\n][ab]");
  EXPECT_EQ(Ok("{{ 'x'.upper() }}{{ 'a-b-c'.replace('-', '+', 1) }}{{ ','.join(['a', 'b']) }}"), "Xa+b-ca,b");
}

TEST(JinjaLanguage, Filters) {
  EXPECT_EQ(Ok("{{ d|tojson }}"), "{\"b\": 1, \"a\": [2.5, null, true, \"x\\n\\\"y\\\"\"]}");
  EXPECT_EQ(Ok("{{ l[:2]|tojson(indent=2) }}"), "[\n  1,\n  2\n]");
  EXPECT_EQ(Ok("{{ u|tojson }}{{ u|tojson(ensure_ascii=true) }}"), "\"h\xC3\xA9llo\"\"h\\u00e9llo\"");
  EXPECT_EQ(Ok("{{ l|length }}{{ d|length }}{{ nope|length }}[{{ '  t  '|trim }}]"), "520[t]");
  EXPECT_EQ(Ok("{{ nope|default('D') }}{{ l|first }}{{ l|last }}{{ l|join('-') }}{{ '42'|int + 1 }}"),
            "D151-2-3-4-543");
}

TEST(JinjaLanguage, TestsAndOperators) {
  EXPECT_EQ(Ok("{{ x is defined }}{{ nope is defined }}{{ n is none }}{{ n is not none }}{{ s is string }}"
               "{{ d is mapping }}{{ l is mapping }}{{ x is number }}"),
            "TrueFalseTrueFalseTrueTrueFalseTrue");
  EXPECT_EQ(Ok("{{ 'a' in s }}{{ 'z' not in s }}{{ 2 in l }}{{ 'b' in d }}{{ 'q' in nope }}"),
            "TrueTrueTrueTrueFalse");
  EXPECT_EQ(Ok("{{ x + 1 }}{{ x / 2 }}{{ x // 2 }}{{ -7 // 2 }}{{ -7 % 3 }}{{ 2 ** 10 }}{{ 'ab' ~ x ~ n ~ nope }}"),
            "41.51-421024ab3None");
  EXPECT_EQ(Ok("{{ 1 < x < 5 }}{{ x == 3.0 }}{{ not x }}{{ x or 'z' }}{{ '' or 'dflt' }}{{ 'y' if x else 'n' }}"),
            "TrueTrueFalse3dflty");
  EXPECT_EQ(Ok("{{ l|length - 1 }}{{ n }}{{ 1e20 }}{{ 0.1 }}{{ 1e-5 }}"), "4None1e+200.11e-05");
}

TEST(JinjaLanguage, UndefinedHandling) {
  EXPECT_EQ(Ok("[{{ nope }}]{{ nope is undefined }}{% if nope %}x{% endif %}{% for i in nope %}x{% endfor %}"),
            "[]True");
  Rendered r = Render("{{ nope.attr }}");
  EXPECT_EQ(r.status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status.message().find("'nope' is undefined"), std::string::npos) << r.status.message();
  EXPECT_EQ(Render("{{ nope + 1 }}").status.code(), StatusCode::kInvalidArgument);
}

// ------------------------------------------------------------------ errors

TEST(JinjaErrors, UnterminatedTags) {
  Rendered r = Render("ok\n  {{ x ");
  EXPECT_EQ(r.status.code(), StatusCode::kInvalidFormat);
  EXPECT_NE(r.status.message().find("2:3"), std::string::npos) << r.status.message();
  EXPECT_EQ(Render("{% if x %}never closed").status.code(), StatusCode::kInvalidFormat);
  EXPECT_EQ(Render("{# open comment").status.code(), StatusCode::kInvalidFormat);
  EXPECT_EQ(Render("{{ 'open string }}").status.code(), StatusCode::kInvalidFormat);
  EXPECT_EQ(Render("{{ (1 }}").status.code(), StatusCode::kInvalidFormat);
  EXPECT_EQ(Render("{% endif %}").status.code(), StatusCode::kInvalidFormat);
  EXPECT_EQ(Render("{% bogus %}").status.code(), StatusCode::kInvalidFormat);
  EXPECT_EQ(Render("{% break %}").status.code(), StatusCode::kInvalidFormat);
}

TEST(JinjaErrors, UnsupportedConstructs) {
  Rendered r = Render("\n{{ x|bogus }}");
  EXPECT_EQ(r.status.code(), StatusCode::kUnsupported);
  EXPECT_NE(r.status.message().find("filter 'bogus'"), std::string::npos) << r.status.message();
  EXPECT_NE(r.status.message().find("2:"), std::string::npos) << r.status.message();
  r = Render("{% macro f() %}{% endmacro %}");
  EXPECT_EQ(r.status.code(), StatusCode::kUnsupported);
  EXPECT_NE(r.status.message().find("macro"), std::string::npos);
  EXPECT_EQ(Render("{{ x is bogus }}").status.code(), StatusCode::kUnsupported);
  EXPECT_EQ(Render("{% include 'x' %}").status.code(), StatusCode::kUnsupported);
  EXPECT_EQ(Render("{{ 'a'.zfill(3) }}").status.code(), StatusCode::kUnsupported);
  EXPECT_EQ(Render("{% set ns = namespace() %}{% set ns.me = ns %}").status.code(), StatusCode::kUnsupported);
}

TEST(JinjaErrors, RaiseException) {
  Rendered r = Render("line1\n{{ raise_exception('Conversation roles must alternate') }}");
  EXPECT_EQ(r.status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status.message().find("Conversation roles must alternate"), std::string::npos);
  EXPECT_NE(r.status.message().find("line 2"), std::string::npos) << r.status.message();
}

TEST(JinjaErrors, BudgetsStopHostileTemplates) {
  jinja::RenderLimits small;
  small.max_steps = 10000;
  small.max_output_bytes = 1000;
  small.max_bytes = 100000;
  Rendered r = Render("{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}", small);
  EXPECT_EQ(r.status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status.message().find("budget"), std::string::npos) << r.status.message();
  r = Render("{% for i in range(500) %}xxxxxxxxxx{% endfor %}", small);
  EXPECT_EQ(r.status.code(), StatusCode::kOutOfMemory);
  r = Render("{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}", small);
  EXPECT_EQ(r.status.code(), StatusCode::kOutOfMemory);
  EXPECT_FALSE(Render("{{ 'ab' * 100000000000 }}", small).status.ok());
  EXPECT_FALSE(Render("{{ range(100000000000)|length }}", small).status.ok());
  // Values nest at most kMaxValueDepth deep.
  r = Render("{% set ns = namespace(l=[]) %}{% for i in range(100) %}{% set ns.l = [ns.l] %}{% endfor %}");
  EXPECT_EQ(r.status.code(), StatusCode::kInvalidArgument);
}

// Issue 15: operations whose work grows with a string's or list's length used
// to cost one step, so a template could burn CPU for minutes inside the budget.
// Each now charges its length (or the render hits the deadline), and the
// render fails with a clear status. The tests check the status that names the
// limit, not a clock: wall times differ tenfold between Release, sanitizers
// and qemu (performance belongs to benchmarks, not to tests).
struct Timed {
  Rendered r;
  double seconds;
};
Timed TimedRender(const std::string& src, jinja::RenderLimits limits = {}) {
  const auto t0 = std::chrono::steady_clock::now();
  Rendered r = Render(src, limits);
  return {r, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()};
}

TEST(JinjaBudget, StringLengthIsCharged) {
  // The trigger: 400 x s|length on a 4 MB string (1.35 s before, charged 1 step each).
  // No deadline here: the byte budget alone must stop it (0.4 s in Release;
  // sanitizer builds are slower, hence the loose bound).
  jinja::RenderLimits no_deadline;
  no_deadline.max_milliseconds = 0;
  Timed t = TimedRender("{% set s = 'x' * 4000000 %}{% for i in range(400) %}{{ s|length }}{% endfor %}",
                        no_deadline);
  EXPECT_EQ(t.r.status.code(), StatusCode::kOutOfMemory) << t.r.status.ToString();
  EXPECT_NE(t.r.status.message().find("render budget exceeded"), std::string::npos) << t.r.status.ToString();
  // A few lengths of a long string are fine.
  Rendered ok = Render("{% set s = 'x' * 4000000 %}{{ s|length }},{{ s|length }}");
  ASSERT_TRUE(ok.status.ok()) << ok.status.ToString();
  EXPECT_EQ(ok.text, "4000000,4000000");
}

TEST(JinjaBudget, ComparisonsAndSearchesAreCharged) {
  const std::string setup = "{% set a = 'x' * 4000000 %}{% set b = 'x' * 4000000 %}";
  const char* hostile[] = {
      "{% for i in range(1000) %}{{ a == b }}{% endfor %}",                            // string ==
      "{% for i in range(1000) %}{{ a < b }}{% endfor %}",                             // string <
      "{% set l = [b[1:] ~ 'y'] * 1000 %}{{ a.startswith(l) }}",                       // list of long prefixes
      "{% set l = ['y' ~ b] * 1000 %}{{ a.endswith(l) }}",
      "{% for i in range(1000) %}{{ a.strip(b) }}{% endfor %}",                        // strip(chars)
      "{% for i in range(1000) %}{{ ('y' ~ b[:100000]) in a }}{% endfor %}",           // in
      "{% for i in range(1000) %}{{ a.find('y' ~ b[:100000]) }}{% endfor %}",          // find
      "{% for i in range(1000) %}{{ a.count(b[:100]) }}{% endfor %}",                  // count
      "{% for i in range(1000) %}{{ a.split('y')|length }}{% endfor %}",               // split
      "{% for i in range(1000) %}{{ a.replace('y', 'z')|length }}{% endfor %}",        // replace
      "{{ ([a] * 100)|join(b) }}",                                                     // join
      "{{ b.join([a] * 100) }}",
      "{% for i in range(1000) %}{{ a[1:]|length }}{% endfor %}",                      // slicing
      "{% for i in range(1000) %}{{ (a ~ 'y')|length }}{% endfor %}",                  // ~
      "{% for i in range(1000) %}{{ a|int }}{% endfor %}",                             // int of a long string
      "{% for i in range(1000) %}{{ a is lower }}{% endfor %}",
  };
  // A 32 MiB byte budget (the default is 256 MiB) keeps the test quick; each
  // template did ~4 GB of work for ~1,000 steps before.
  jinja::RenderLimits limits;
  limits.max_bytes = uint64_t{32} << 20;
  limits.max_milliseconds = 0;  // the byte budget alone must stop each one
  for (const char* h : hostile) {
    Timed t = TimedRender(setup + h, limits);
    EXPECT_FALSE(t.r.status.ok()) << h;
    EXPECT_NE(t.r.status.message().find("render budget exceeded"), std::string::npos)
        << h << ": " << t.r.status.ToString();
  }
}

TEST(JinjaBudget, LinearSearchFindsWhatStdFindFinds) {
  // Needles above 32 bytes take the Knuth-Morris-Pratt path.
  const std::string n40 = std::string(39, 'a') + "b";
  const std::string src = "{% set h = ('a' * 100) ~ '" + n40 + "' ~ ('a' * 50) ~ '" + n40 + "' %}" +
                          "{{ h.find('" + n40 + "') }},{{ h.count('" + n40 + "') }},{{ ('" + n40 +
                          "' in h) }},{{ h.split('" + n40 + "')|length }},{{ h.replace('" + n40 +
                          "', '-')|length }},{{ ('c' ~ '" + n40 + "') in h }}";
  Rendered r = Render(src);
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.text, "100,2,True,3,152,False");
}

TEST(JinjaBudget, DeadlineStopsAMillionCheapSteps) {
  // A million loop steps fit in the step budget; the wall-clock deadline
  // bounds what they cost.
  jinja::RenderLimits limits;
  limits.max_steps = uint64_t{1} << 40;
  limits.max_bytes = uint64_t{1} << 40;
  limits.max_milliseconds = 50;
  Timed t = TimedRender(
      "{% set s = 'x' * 1000 %}{% for i in range(1000000) %}{% for j in range(100) %}{{ s|length }}{% endfor %}"
      "{% endfor %}",
      limits);
  EXPECT_EQ(t.r.status.code(), StatusCode::kInvalidArgument) << t.r.status.ToString();
  EXPECT_NE(t.r.status.message().find("render deadline exceeded"), std::string::npos) << t.r.status.ToString();
  // With the default limits the same template stops too: on the step budget or
  // on the 2 s deadline, whichever this machine reaches first.
  t = TimedRender("{% for i in range(1000000) %}{% for j in range(100) %}{{ j }}{% endfor %}{% endfor %}");
  EXPECT_FALSE(t.r.status.ok());
  const std::string& m = t.r.status.message();
  EXPECT_TRUE(m.find("render budget exceeded") != std::string::npos ||
              m.find("render deadline exceeded") != std::string::npos)
      << t.r.status.ToString();
}

TEST(JinjaErrors, DeepNestingIsRefused) {
  std::string deep_expr = "{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}";
  EXPECT_FALSE(Render(deep_expr).status.ok());
  std::string deep_not = "{{ " ;
  for (int i = 0; i < 5000; ++i) deep_not += "not ";
  EXPECT_FALSE(Render(deep_not + "x }}").status.ok());
  std::string deep_if;
  for (int i = 0; i < 500; ++i) deep_if += "{% if x %}";
  for (int i = 0; i < 500; ++i) deep_if += "{% endif %}";
  Rendered r = Render(deep_if);
  EXPECT_EQ(r.status.code(), StatusCode::kInvalidArgument) << r.status.ToString();
  // Long left-deep chains would make evaluation (and freeing the tree) recurse.
  std::string chain = "{{ 1";
  for (int i = 0; i < 100000; ++i) chain += " + 1";
  EXPECT_EQ(Render(chain + " }}").status.code(), StatusCode::kInvalidArgument);
  std::string attrs = "{{ x";
  for (int i = 0; i < 100000; ++i) attrs += ".a";
  EXPECT_EQ(Render(attrs + " }}").status.code(), StatusCode::kInvalidArgument);
  std::string filters = "{{ x";
  for (int i = 0; i < 100000; ++i) filters += "|string";
  EXPECT_EQ(Render(filters + " }}").status.code(), StatusCode::kInvalidArgument);
  std::string ok_chain = "{{ 1";
  for (int i = 0; i < 100; ++i) ok_chain += " + 1";
  EXPECT_EQ(Ok(ok_chain + " }}"), "101");
  std::string deep_neg = "{{ ";
  for (int i = 0; i < 5000; ++i) deep_neg += "- ";
  EXPECT_FALSE(Render(deep_neg + "1 }}").status.ok());
}

// ------------------------------------------------------------------ tokenizer_config.json

TEST(TokenizerConfig, RealQwen3File) {
  Result<TokenizerConfig> c = LoadTokenizerConfig(DataPath("qwen3_tokenizer_config.json"));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->chat_template, ReadTemplate("qwen3.jinja"));
  EXPECT_EQ(c->bos_token, "");
  EXPECT_EQ(c->eos_token, "<|im_end|>");
  EXPECT_EQ(c->pad_token, "<|endoftext|>");
  EXPECT_FALSE(c->add_bos_token);
  EXPECT_EQ(c->model_max_length, 131072);
}

TEST(TokenizerConfig, MissingFileIsAnError) {
  EXPECT_FALSE(LoadTokenizerConfig(DataPath("no_such_tokenizer_config.json")).ok());
}

TEST(TokenizerConfig, StringAndObjectTokens) {
  Result<TokenizerConfig> c = ParseTokenizerConfig(
      R"({"bos_token": {"__type": "AddedToken", "content": "<s>", "lstrip": false},
          "eos_token": "</s>", "pad_token": null, "add_bos_token": true, "model_max_length": 4096})",
      "t.json");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->bos_token, "<s>");
  EXPECT_EQ(c->eos_token, "</s>");
  EXPECT_EQ(c->pad_token, "");
  EXPECT_TRUE(c->add_bos_token);
  EXPECT_EQ(c->model_max_length, 4096);
  EXPECT_EQ(c->chat_template, "");
}

TEST(TokenizerConfig, MissingFieldsTakeDefaults) {
  Result<TokenizerConfig> c = ParseTokenizerConfig("{}", "t.json");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->chat_template, "");
  EXPECT_EQ(c->bos_token, "");
  EXPECT_FALSE(c->add_bos_token);
  EXPECT_EQ(c->model_max_length, 0);
}

TEST(TokenizerConfig, AbsurdModelMaxLength) {
  for (const char* v : {"1e30", "1000000000000000019884624838656", "-5", "0", "1e300", "18446744073709551615"}) {
    Result<TokenizerConfig> c = ParseTokenizerConfig(std::string(R"({"model_max_length": )") + v + "}", "t.json");
    ASSERT_TRUE(c.ok()) << v << ": " << c.status().ToString();
    EXPECT_EQ(c->model_max_length, 0) << v;
  }
  Result<TokenizerConfig> c = ParseTokenizerConfig(R"({"model_max_length": 32768.0})", "t.json");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->model_max_length, 32768);
}

TEST(TokenizerConfig, ListOfNamedTemplates) {
  Result<TokenizerConfig> c = ParseTokenizerConfig(
      R"({"chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]})",
      "t.json");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->chat_template, "D");
  c = ParseTokenizerConfig(R"({"chat_template": [{"name": "rag", "template": "R"}]})", "t.json");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->chat_template, "");
  EXPECT_EQ(ParseTokenizerConfig(R"({"chat_template": [{"name": "default"}]})", "t.json").status().code(),
            StatusCode::kInvalidFormat);
  EXPECT_EQ(ParseTokenizerConfig(R"({"chat_template": ["x"]})", "t.json").status().code(),
            StatusCode::kInvalidFormat);
}

TEST(TokenizerConfig, MalformedAndWrongTypes) {
  for (const char* bad : {"", "{", "{\"a\": }", "[1, 2]", "\"str\"", "{\"eos_token\": 5}",
                          "{\"bos_token\": {\"lstrip\": true}}", "{\"add_bos_token\": \"yes\"}",
                          "{\"chat_template\": 7}", "{\"model_max_length\": \"big\"}"}) {
    Result<TokenizerConfig> c = ParseTokenizerConfig(bad, "bad.json");
    EXPECT_EQ(c.status().code(), StatusCode::kInvalidFormat) << bad;
    if (!c.ok()) {
      EXPECT_NE(c.status().message().find("bad.json"), std::string::npos);
    }
  }
  std::string deep = std::string(100000, '[') + std::string(100000, ']');
  EXPECT_EQ(ParseTokenizerConfig("{\"x\": " + deep + "}", "deep.json").status().code(), StatusCode::kInvalidFormat);
}

}  // namespace
}  // namespace famq
