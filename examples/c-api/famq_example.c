/*
 * famq_example: the C API in one small program (plain C99, famq.h only).
 *
 *   famq_example MODEL [PROMPT] [MAX_NEW_TOKENS]
 *
 * MODEL is a Hugging Face model directory (run in fp32) or a quantized model
 * file written by famq_finalize() / `famq-rt finalize`. Prints what the model
 * is, then streams a greedy continuation of PROMPT through the token
 * callback. Every failure prints the status and famq_last_error().
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
  famq_model_close(model);
  if (status != FAMQ_OK) return fail("famq_generate", status);
  printf("generated %d tokens\n", state.tokens);
  return 0;
}
