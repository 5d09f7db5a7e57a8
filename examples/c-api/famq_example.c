/*
 * famq_example: the C API in one small program (plain C99, famq.h only).
 *
 *   famq_example MODEL [PROMPT] [MAX_NEW_TOKENS]
 *
 * MODEL is a Hugging Face model directory (run in fp32) or a quantized model
 * file written by famq_finalize() / `famq-rt finalize`. Prints what the model
 * is, streams a greedy continuation of PROMPT through the token callback,
 * counts and round-trips the prompt's tokens, then holds a two-turn chat
 * session (system prompt, stop string, thinking off) and reports how many
 * tokens the second turn reused from the session's KV cache. Every failure
 * prints the status and famq_last_error().
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "famq/famq.h"

/* Prints "famq_example: <call> failed: FAMQ_<STATUS>: <message>" and returns 1. */
static int fail(const char* call, famq_status status) {
  fprintf(stderr, "famq_example: %s failed: %s: %s\n", call, famq_status_name(status), famq_last_error());
  return 1;
}

typedef struct {
  int tokens;
} stream_state;

/* The token callback: write the raw piece as it arrives (a UTF-8 character
 * split across tokens is completed by the next piece). */
static int on_token(const char* piece, size_t len, int32_t token, void* user) {
  stream_state* s = (stream_state*)user;
  (void)token;
  fwrite(piece, 1, len, stdout);
  fflush(stdout);
  s->tokens++;
  return 0; /* nonzero would stop the generation here */
}

/* Tokens: count, ids (the array sized by the count), and the text back. */
static int tokens_demo(const famq_model* model, const char* text) {
  size_t count = 0, len = 0;
  int32_t* ids;
  char* back;
  famq_status status = famq_token_count(model, text, 0, &count);
  if (status != FAMQ_OK) return fail("famq_token_count", status);
  ids = (int32_t*)malloc((count + 1) * sizeof *ids);
  back = (char*)malloc(strlen(text) + 1);
  if (ids == NULL || back == NULL) {
    free(ids);
    free(back);
    return 1;
  }
  status = famq_tokenize(model, text, 0, ids, count, &count);
  if (status == FAMQ_OK) status = famq_detokenize(model, ids, count, back, strlen(text) + 1, &len);
  if (status == FAMQ_OK) printf("tokens: %zu, round trip %s\n", count, strcmp(back, text) == 0 ? "exact" : "differs");
  free(ids);
  free(back);
  return status == FAMQ_OK ? 0 : fail("famq_tokenize/famq_detokenize", status);
}

/* A chat session: the KV cache is kept across turns, so the second turn
 * prefills only its own tokens. */
static int chat_demo(famq_model* model, int max_new_tokens) {
  static const char* const stops[] = {"\n\n"};
  static const char* const turns[] = {"What is 2 + 3?", "And 4 + 4?"};
  famq_session_params params;
  famq_session_stats stats;
  famq_session* session = NULL;
  stream_state state = {0};
  famq_status status;
  int i;
  famq_session_default_params(&params);
  params.max_new_tokens = max_new_tokens;
  params.enable_thinking = 0;
  params.stop_strings = stops;
  params.n_stop_strings = 1;
  status = famq_session_create(model, &params, &session);
  if (status != FAMQ_OK) return fail("famq_session_create", status);
  status = famq_session_add_message(session, FAMQ_ROLE_SYSTEM, "You are a helpful assistant.");
  for (i = 0; i < 2 && status == FAMQ_OK; ++i) {
    printf("chat user: %s\nchat assistant: ", turns[i]);
    fflush(stdout);
    status = famq_session_send(session, turns[i], on_token, &state, NULL, 0, NULL);
    printf("\n");
    if (status != FAMQ_OK) break;
    memset(&stats, 0, sizeof stats);
    stats.struct_size = sizeof stats;
    status = famq_session_get_stats(session, &stats);
    if (status == FAMQ_OK) {
      printf("chat turn %d: %d prompt tokens, reused %d, prefilled %d, time to first token %.1f ms\n", i + 1,
             (int)stats.last_prompt_tokens, (int)stats.last_reused_tokens, (int)stats.last_prefill_tokens,
             stats.last_ttft_seconds * 1e3);
    }
  }
  famq_session_free(session);
  return status == FAMQ_OK ? 0 : fail("famq_session_*", status);
}

int main(int argc, char** argv) {
  const char* path;
  const char* prompt = "Question: What is 36 + 8?\nAnswer:";
  int max_new_tokens = 32;
  struct stat st;
  famq_model* model = NULL;
  famq_model_info info;
  famq_generate_options options;
  stream_state state = {0};
  char scheme[128];
  const char* isa = "?";
  famq_status status;

  if (argc < 2 || argc > 4) {
    fprintf(stderr, "usage: %s MODEL_DIR|QMODEL_FILE [PROMPT] [MAX_NEW_TOKENS]\n", argv[0]);
    return 2;
  }
  path = argv[1];
  if (argc > 2) prompt = argv[2];
  if (argc > 3) max_new_tokens = atoi(argv[3]);
  if (famq_api_version() != FAMQ_API_VERSION) {
    fprintf(stderr, "famq_example: built for famq API %d, the library has %d\n", FAMQ_API_VERSION,
            famq_api_version());
    return 1;
  }

  /* A directory is an fp model; a file is a quantized model. */
  if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
    status = famq_model_open(path, NULL, &model);
    if (status != FAMQ_OK) return fail("famq_model_open", status);
  } else {
    status = famq_qmodel_open(path, NULL, &model);
    if (status != FAMQ_OK) return fail("famq_qmodel_open", status);
  }

  memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  status = famq_model_get_info(model, &info, scheme, sizeof scheme, NULL);
  if (status != FAMQ_OK) {
    famq_model_close(model);
    return fail("famq_model_get_info", status);
  }
  if (famq_active_isa(&isa) != FAMQ_OK) isa = "unavailable";
  printf("famq %s | %s\n", famq_version(), path);
  printf("  parameters %lld, layers %d, hidden %d, vocab %d, context %d\n", (long long)info.parameters,
         (int)info.layers, (int)info.hidden_size, (int)info.vocab_size, (int)info.max_seq_len);
  printf("  %s: %s, kernels %s\n", info.quantized ? "quantized" : "not quantized", scheme, isa);
  printf("---\n%s", prompt);
  fflush(stdout);

  famq_generate_options_init(&options);
  options.max_new_tokens = max_new_tokens;
  status = famq_generate(model, prompt, &options, on_token, &state, NULL, 0, NULL);
  printf("\n---\n");
  if (status != FAMQ_OK) {
    famq_model_close(model);
    return fail("famq_generate", status);
  }
  printf("generated %d tokens\n", state.tokens);
  if (tokens_demo(model, prompt) != 0 || chat_demo(model, max_new_tokens) != 0) {
    famq_model_close(model);
    return 1;
  }
  famq_model_close(model);
  return 0;
}
