/*
 * famq.h: the C API of the famq device runtime (libfamq_runtime).
 *
 * This is what an app links: open a model (a Hugging Face directory in fp32,
 * or a quantized model file), generate text from it, verify a calibration
 * bundle, and finalize a model on the device (calibrate on the bundle, or on
 * plain text, optionally mixed with private on-device text, and write the
 * quantized model file).
 *
 *   famq_model* m = NULL;
 *   famq_generate_options g;
 *   char text[4096];
 *   size_t len = 0;
 *   if (famq_qmodel_open("model.famq", NULL, &m) != FAMQ_OK) {
 *     fprintf(stderr, "%s\n", famq_last_error());
 *     return 1;
 *   }
 *   famq_generate_options_init(&g);
 *   g.max_new_tokens = 64;
 *   famq_generate(m, "Question: What is 2 + 3?\nAnswer:", &g, NULL, NULL, text, sizeof text, &len);
 *   famq_model_close(m);
 *
 * Conventions (every function follows them):
 *   - C99, no C++ types; handles are opaque pointers the library allocates
 *     and the matching *_close() frees.
 *   - Every fallible function returns a famq_status. On failure, a message
 *     that names the file, value or field at fault is kept per thread and
 *     read with famq_last_error(); output parameters are left untouched
 *     unless a function says otherwise.
 *   - A required pointer argument that is NULL gives FAMQ_INVALID_ARGUMENT
 *     with a message naming the parameter.
 *   - Output text goes to caller-owned buffers with an explicit capacity; a
 *     buffer that is too small is reported as FAMQ_BUFFER_TOO_SMALL (never
 *     FAMQ_OUT_OF_MEMORY) after the longest fitting prefix was written,
 *     NUL-terminated; never an overflow. Where the function can know it, the
 *     size needed is reported through its length/count output.
 *   - Option structs start with struct_size and are filled by their *_init()
 *     function, so fields can be appended in later versions. A struct larger
 *     than the library knows is accepted only if the unknown tail is all
 *     zero bytes (FAMQ_UNSUPPORTED otherwise); a struct_size smaller than the
 *     struct's first published version, or larger than FAMQ_MAX_STRUCT_SIZE,
 *     is FAMQ_INVALID_ARGUMENT (the struct was not filled by *_init()). A
 *     struct of an older, smaller version (fields appended since) is read up
 *     to its struct_size and the appended fields keep their defaults.
 *   - ABI policy: see docs/C_API.md. FAMQ_API_VERSION and the shared
 *     library's SONAME (libfamq_runtime.so.<FAMQ_API_VERSION>) change
 *     together, whenever a function's signature, a struct's existing layout,
 *     an enum value or a documented meaning (a status a function returns for
 *     a condition) changes; adding functions, appending struct fields or
 *     adding status codes that no existing call returns does not.
 *   - No C++ exception crosses this API: an unexpected exception becomes
 *     FAMQ_INTERNAL (FAMQ_OUT_OF_MEMORY for a failed allocation).
 *   - Callbacks run on the calling thread, synchronously, inside the call.
 *     They may call famq_status_name(), famq_last_error(), famq_version()
 *     and famq_api_version(), but no other famq function on the same handle.
 *   - Threads: different handles may be used from different threads at the
 *     same time. One famq_model runs one generation at a time (famq_generate
 *     or a turn of any of its chat sessions); a second concurrent call on it
 *     fails with FAMQ_INVALID_ARGUMENT ("busy"). The tokenizer functions
 *     (famq_tokenize, famq_detokenize, famq_token_count) read the model only
 *     and may run on any thread at any time. famq_force_isa() affects the
 *     whole process.
 *   - Strings are UTF-8 and NUL-terminated; paths are file system paths.
 */
#ifndef FAMQ_FAMQ_H_
#define FAMQ_FAMQ_H_

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#if defined(FAMQ_BUILDING_LIBRARY)
#define FAMQ_API __declspec(dllexport)
#else
#define FAMQ_API
#endif
#elif defined(__GNUC__) || defined(__clang__)
#define FAMQ_API __attribute__((visibility("default")))
#else
#define FAMQ_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* The version of this header's API. It changes when a function, a struct
 * layout or a meaning changes incompatibly; appended struct fields do not
 * change it. Compare with famq_api_version() to detect a header/library
 * mismatch. The shared library's SONAME is libfamq_runtime.so.<this>.
 * History: 1: first release; 2: FAMQ_BUFFER_TOO_SMALL replaces
 * FAMQ_OUT_OF_MEMORY for a caller's buffer that is too small (a changed
 * meaning), chat sessions and tokenizer functions added. */
#define FAMQ_API_VERSION 2

/* Hex SHA-256 digests (key ids, payload and tokenizer hashes): 64 characters
 * and a NUL. */
#define FAMQ_SHA256_HEX_SIZE 65

/* The largest struct_size any option or info struct may carry: a larger one
 * is FAMQ_INVALID_ARGUMENT (an uninitialized struct, not a newer header). */
#define FAMQ_MAX_STRUCT_SIZE 4096

/* ------------------------------------------------------------------------ */
/* Status codes                                                              */
/* ------------------------------------------------------------------------ */

/* The outcome of a call. Values 0..8 map 1:1 onto famq::StatusCode; 9 and 10
 * are the C API's own. */
typedef enum famq_status {
  FAMQ_OK = 0,
  FAMQ_INVALID_ARGUMENT = 1, /* a caller-supplied value is out of its domain */
  FAMQ_NOT_FOUND = 2,        /* a file, tensor or token that must exist does not */
  FAMQ_IO_ERROR = 3,         /* the OS refused a read, write, map or rename */
  FAMQ_INVALID_FORMAT = 4,   /* a file is malformed, truncated, tampered with or inconsistent */
  FAMQ_UNSUPPORTED = 5,      /* well-formed input that famq does not implement */
  FAMQ_OUT_OF_MEMORY = 6,    /* an allocation failed or a size is absurd */
  FAMQ_CANCELLED = 7,        /* a callback asked to stop */
  FAMQ_INTERNAL = 8,         /* a famq bug or a failing dependency */
  FAMQ_BUFFER_TOO_SMALL = 9, /* a caller's buffer cannot hold the result; the size needed is reported
                                where the function can know it (API version 2) */
  FAMQ_CONTEXT_FULL = 10,    /* a chat session's conversation no longer fits the context (API version 2) */
  /* Not a status: keeps famq_status 32 bits wide with every compiler
   * (-fshort-enums included), so the ABI does not depend on the caller's flags. */
  FAMQ_STATUS_FORCE_32BIT = 0x7FFFFFFF
} famq_status;

/* The enumerator's name ("FAMQ_OK", "FAMQ_NOT_FOUND", ...) of `status`, or
 * "FAMQ_UNKNOWN_STATUS" for any other value. Never NULL; the string is
 * static. */
FAMQ_API const char* famq_status_name(famq_status status);

/* The message of the last failed famq call on this thread ("" when the last
 * call succeeded or no call was made). Every function that returns a
 * famq_status sets it: the message on failure, "" on FAMQ_OK. The pointer
 * stays valid until the next famq call on this thread. Never NULL. */
FAMQ_API const char* famq_last_error(void);

/* The library's version, e.g. "0.1.0" (FAMQ_VERSION_STRING of the build).
 * Never NULL; static. */
FAMQ_API const char* famq_version(void);

/* The FAMQ_API_VERSION the library was built with. */
FAMQ_API int famq_api_version(void);

/* ------------------------------------------------------------------------ */
/* Kernels                                                                   */
/* ------------------------------------------------------------------------ */

/* Pins the instruction-set level of famq's own kernels for the process, as
 * the environment variable FAMQ_FORCE_ISA does (the pin takes precedence
 * over it). Applies to models opened and finalizes started after the call.
 *   name: "ref", "avx2", "avx512", "neon" or "neondot"; NULL or "" removes
 *         the pin (then FAMQ_FORCE_ISA, if set, else the best level the CPU
 *         and the build offer).
 * Returns: FAMQ_OK; FAMQ_INVALID_ARGUMENT for an unknown name;
 *   FAMQ_UNSUPPORTED when this CPU or build lacks the level (nothing
 *   changes: a level is never silently downgraded). */
FAMQ_API famq_status famq_force_isa(const char* name);

/* The level new kernels use now (the pin, else FAMQ_FORCE_ISA, else the
 * detected one).
 *   out_name: receives a static string ("ref", "avx2", ...). Required.
 * Returns: FAMQ_OK; FAMQ_INVALID_ARGUMENT (out_name NULL, or FAMQ_FORCE_ISA
 *   names no level); FAMQ_UNSUPPORTED (FAMQ_FORCE_ISA names a level this CPU
 *   or build lacks). */
FAMQ_API famq_status famq_active_isa(const char** out_name);

/* ------------------------------------------------------------------------ */
/* Models                                                                    */
/* ------------------------------------------------------------------------ */

/* A model ready to generate: an fp32 Hugging Face directory or a quantized
 * model file, its tokenizer, and an engine with its KV cache. */
typedef struct famq_model famq_model;

/* Element type of the KV caches (the model's own and every session's). */
typedef enum famq_kv_type {
  FAMQ_KV_F16 = 0,  /* IEEE half precision (default): 2 bytes per value */
  FAMQ_KV_F32 = 1,  /* single precision, the reference arithmetic: 4 bytes per value */
  FAMQ_KV_INT8 = 2, /* symmetric int8 with one float scale per (position, kv head):
                       1 byte per value + 4 bytes per head_dim values */
  FAMQ_KV_TYPE_FORCE_32BIT = 0x7FFFFFFF /* not a type: keeps the enum 32 bits wide */
} famq_kv_type;

typedef struct famq_model_options {
  size_t struct_size;  /* sizeof(famq_model_options), set by famq_model_options_init() */
  int32_t num_threads; /* engine threads; 0 (default): one per online CPU, at most 8 */
  int32_t max_seq_len; /* context (KV cache) in tokens; 0 (default): min(model's maximum, 2048) */
  int32_t kv_type;     /* a famq_kv_type: the KV caches' element type; FAMQ_KV_F16 (default).
                          Appended in API 2; a struct_size without it reads as FAMQ_KV_F16.
                          Cost in perplexity: docs/DEVICE.md ("KV cache") */
} famq_model_options;

/* Fills `options` with the defaults above (NULL: does nothing). */
FAMQ_API void famq_model_options_init(famq_model_options* options);

/* Opens a Hugging Face model directory (config.json, model.safetensors or
 * shards, tokenizer.json; tokenizer_config.json and generation_config.json
 * optional) to run in fp32. Weights are mapped, the engine and its caches
 * are allocated here, once.
 *   model_dir: the directory. Required.
 *   options:   engine settings; NULL: defaults.
 *   out_model: receives the handle (close with famq_model_close()); set to
 *              NULL on failure. Required.
 * Returns: FAMQ_OK; FAMQ_INVALID_ARGUMENT (a NULL argument, bad options);
 *   FAMQ_NOT_FOUND (the directory or a required file is missing);
 *   FAMQ_IO_ERROR; FAMQ_INVALID_FORMAT (a malformed file, named);
 *   FAMQ_UNSUPPORTED (an architecture, dtype or tokenizer famq lacks);
 *   FAMQ_OUT_OF_MEMORY; FAMQ_INTERNAL. */
FAMQ_API famq_status famq_model_open(const char* model_dir, const famq_model_options* options,
                                     famq_model** out_model);

/* Opens a quantized model file written by famq_finalize() (or
 * `famq-rt finalize`). The file is verified before use (identifier,
 * FlatBuffers verifier, version, every tensor's shape and range), and its
 * embedded tokenizer must hash to the family id it records. Linear layers
 * run on the kernels of famq_active_isa() at the time of the call.
 *   qmodel_path: the file. Required.
 *   options:     engine settings; NULL: defaults.
 *   out_model:   receives the handle; set to NULL on failure. Required.
 * Returns: FAMQ_OK; FAMQ_INVALID_ARGUMENT; FAMQ_NOT_FOUND; FAMQ_IO_ERROR;
 *   FAMQ_INVALID_FORMAT (not a famq quantized model, truncated, tampered);
 *   FAMQ_UNSUPPORTED (a format version or scheme famq lacks);
 *   FAMQ_OUT_OF_MEMORY; FAMQ_INTERNAL. */
FAMQ_API famq_status famq_qmodel_open(const char* qmodel_path, const famq_model_options* options,
                                      famq_model** out_model);

/* Frees a model and everything it holds. NULL: does nothing. Must not be
 * called while another call uses the model. */
FAMQ_API void famq_model_close(famq_model* model);

typedef struct famq_model_info {
  size_t struct_size;   /* set by the caller: sizeof(famq_model_info) */
  int64_t parameters;   /* parameters of the architecture (embeddings counted once when tied) */
  int32_t layers;       /* transformer blocks */
  int32_t hidden_size;
  int32_t vocab_size;   /* rows of the embedding / logits */
  int32_t max_seq_len;  /* the engine's context in tokens (prompt + new tokens) */
  int32_t quantized;    /* 1: a quantized model file; 0: an fp32 directory */
  int32_t wbits;        /* weight bits (2, 3, 4 or 8); 0 when not quantized */
  int32_t abits;        /* 8: static int8 activations (W8A8); 0: weight-only or fp32 */
  int32_t group_size;   /* weights per scale; 0: per output channel (or not quantized) */
} famq_model_info;

/* Describes a model.
 *   model:           Required.
 *   info:            receives the numbers above; info->struct_size must be
 *                    set by the caller (fields beyond it are not written).
 *                    Required.
 *   scheme:          receives a NUL-terminated description of the number
 *                    format: "fp32" or e.g. "W4 g32 rtn weight-only",
 *                    "W8A8 static smoothquant". May be NULL (then
 *                    scheme_capacity must be 0).
 *   scheme_capacity: bytes at `scheme`, the NUL included (> 0 when scheme
 *                    is given).
 *   scheme_len:      receives the length of the full description (without
 *                    the NUL), even when it was truncated. May be NULL.
 * Returns: FAMQ_OK; FAMQ_INVALID_ARGUMENT (model or info NULL, a bad
 *   struct_size, scheme NULL with a capacity or given with none);
 *   FAMQ_BUFFER_TOO_SMALL when the description did not fit (`info` is
 *   filled, `scheme` holds the truncated, NUL-terminated prefix and
 *   *scheme_len the full length: scheme_len + 1 bytes are needed). */
FAMQ_API famq_status famq_model_get_info(const famq_model* model, famq_model_info* info, char* scheme,
                                         size_t scheme_capacity, size_t* scheme_len);

/* ------------------------------------------------------------------------ */
/* Generation                                                                */
/* ------------------------------------------------------------------------ */

typedef struct famq_generate_options {
  size_t struct_size;     /* sizeof(famq_generate_options), set by famq_generate_options_init() */
  int32_t max_new_tokens; /* at most this many new tokens (>= 0; default 128); the context also bounds it */
  float temperature;      /* <= 0 (default 0): greedy (argmax, lowest id on ties) */
  int32_t top_k;          /* 0 (default): off */
  float top_p;            /* nucleus mass in (0, 1]; 1 (default): off */
  uint64_t seed;          /* sampling seed (default 0): same seed, same tokens, on every CPU */
  int32_t chat;           /* nonzero: render the prompt as one user turn with the model's chat template
                             (tokenizer_config.json), ending with the assistant header; default 0 */
  int32_t enable_thinking; /* with chat: the template's enable_thinking (Qwen3); default 1 */
} famq_generate_options;

/* Fills `options` with the defaults above (NULL: does nothing). */
FAMQ_API void famq_generate_options_init(famq_generate_options* options);

/* Receives each new token as it is generated.
 *   piece: the raw bytes the token stands for (not NUL-terminated; a UTF-8
 *          character may be split across consecutive pieces; "" with len 0
 *          for tokens without text). Valid only during the call.
 *   len:   bytes at `piece`.
 *   token: the token id.
 *   user:  the pointer given to famq_generate().
 * Returns 0 to continue, nonzero to stop after this token. Stopping is not an
 * error: famq_generate() then returns FAMQ_OK with what was generated. */
typedef int (*famq_token_callback)(const char* piece, size_t len, int32_t token, void* user);

/* Generates a continuation of `prompt`: prefill, then one token at a time
 * until a stop token of the model (eos ids of config.json,
 * generation_config.json and tokenizer_config.json; it is delivered too),
 * max_new_tokens, the end of the context, or a stop request from on_token.
 * The prompt gets the model's BOS token when tokenizer_config.json asks for
 * one (add_bos_token) and chat is off. Nothing is allocated per token.
 *   model:        Required. Used by one call at a time.
 *   prompt:       UTF-8 text. Required; must encode to at least one token.
 *   options:      NULL: defaults (famq_generate_options_init()).
 *   on_token:     called for every new token, in order; may be NULL.
 *   user:         passed to on_token unchanged; may be NULL.
 *   out_text:     caller-owned buffer that receives the concatenated pieces,
 *                 NUL-terminated (raw bytes, as on_token sees them). May be
 *                 NULL (then out_capacity must be 0). At least one of
 *                 on_token and out_text is required.
 *   out_capacity: bytes at out_text, the NUL included (> 0 when out_text is
 *                 given).
 *   out_len:      receives the bytes written to out_text (without the NUL;
 *                 0 when out_text is NULL). May be NULL.
 * When the next token's piece does not fit into out_text, generation stops
 * before that token (on_token does not see it), out_text holds the pieces of
 * the tokens so far, and FAMQ_BUFFER_TOO_SMALL is returned (*out_len: the
 * bytes written; the size needed is unknown, as generation stopped).
 * Returns: FAMQ_OK (also when on_token stopped the generation);
 *   FAMQ_INVALID_ARGUMENT (a NULL argument, options out of range, a prompt
 *   that is not valid UTF-8, empty, or longer than the context, chat without
 *   a chat template, the model busy with another call);
 *   FAMQ_BUFFER_TOO_SMALL (out_text too small: see above);
 *   FAMQ_OUT_OF_MEMORY (an allocation failed);
 *   FAMQ_UNSUPPORTED (a chat template construct famq lacks); FAMQ_INTERNAL. */
FAMQ_API famq_status famq_generate(famq_model* model, const char* prompt, const famq_generate_options* options,
                                   famq_token_callback on_token, void* user, char* out_text, size_t out_capacity,
                                   size_t* out_len);

/* ------------------------------------------------------------------------ */
/* Tokens                                                                    */
/* ------------------------------------------------------------------------ */

/* The token ids of `text` under the model's tokenizer.
 *   model:       Required. Only read: may be used while it generates.
 *   text:        UTF-8 text. Required ("" gives no tokens, or the BOS).
 *   add_special: nonzero: start with the model's BOS token when its
 *                tokenizer_config.json asks for one (add_bos_token), as
 *                famq_generate() does without chat; 0: the text's tokens only.
 *   out_tokens:  caller-owned array that receives the ids. May be NULL (then
 *                capacity must be 0: a count only).
 *   capacity:    ids that fit at out_tokens.
 *   out_count:   receives the number of ids of the whole text, also when
 *                they did not fit (the capacity needed). Required.
 * Returns: FAMQ_OK; FAMQ_INVALID_ARGUMENT (a NULL argument, out_tokens NULL
 *   with a capacity, text not valid UTF-8); FAMQ_BUFFER_TOO_SMALL (out_tokens
 *   given and capacity < *out_count: the first `capacity` ids are written);
 *   FAMQ_OUT_OF_MEMORY. */
FAMQ_API famq_status famq_tokenize(const famq_model* model, const char* text, int add_special, int32_t* out_tokens,
                                   size_t capacity, size_t* out_count);

/* The number of token ids of `text`: famq_tokenize() without the array.
 *   model, text, add_special: as for famq_tokenize().
 *   out_count: receives the count. Required.
 * Returns: FAMQ_OK; FAMQ_INVALID_ARGUMENT; FAMQ_OUT_OF_MEMORY. */
FAMQ_API famq_status famq_token_count(const famq_model* model, const char* text, int add_special, size_t* out_count);

/* The text of `tokens`: their bytes concatenated, with ill-formed UTF-8 (a
 * character split across a cut) replaced by U+FFFD, NUL-terminated.
 *   model:        Required. Only read.
 *   tokens:       the ids; may be NULL only when count is 0.
 *   count:        ids at `tokens`.
 *   out_text:     caller-owned buffer. Required.
 *   out_capacity: bytes at out_text, the NUL included (> 0).
 *   out_len:      receives the length of the whole text (without the NUL),
 *                 also when it did not fit (out_len + 1 bytes are needed).
 *                 May be NULL.
 * Returns: FAMQ_OK; FAMQ_INVALID_ARGUMENT (a NULL argument, a capacity of
 *   0, an id outside [0, vocab_size)); FAMQ_BUFFER_TOO_SMALL (the longest
 *   prefix that fits, cut at a character boundary, NUL-terminated);
 *   FAMQ_OUT_OF_MEMORY. */
FAMQ_API famq_status famq_detokenize(const famq_model* model, const int32_t* tokens, size_t count, char* out_text,
                                     size_t out_capacity, size_t* out_len);

/* ------------------------------------------------------------------------ */
/* Chat sessions                                                             */
/* ------------------------------------------------------------------------ */

/* A conversation with a model: its messages and its own KV cache, kept
 * across turns. Each turn renders the whole conversation with the model's
 * chat template (tokenizer_config.json) and compares its tokens with those
 * the session's KV cache already holds: only the tokens after the longest
 * common prefix are prefilled. They differ earlier when the template renders
 * a past turn differently from how it was generated (Qwen3 drops the
 * <think> part of earlier replies) or the reply's text tokenizes
 * differently from the sampled tokens; then prefill restarts at the first
 * differing token (see docs/C_API.md).
 *
 * Memory: every session allocates one KV cache at famq_session_create(),
 * 2 * layers * max_seq_len * kv_heads * B bytes, B = head_dim * 2 for
 * FAMQ_KV_F16 (the default), head_dim * 4 for FAMQ_KV_F32, head_dim + 4 for
 * FAMQ_KV_INT8 (famq_model_options.kv_type; the number is in
 * famq_session_stats.kv_cache_bytes), in addition to the model's own.
 * Threads: sessions share their model's engine and run one turn at a time
 * per model (a turn while another session or famq_generate runs on the same
 * model fails with FAMQ_INVALID_ARGUMENT, "busy"); one session is used by
 * one call at a time. Sessions must be freed before their model is closed. */
typedef struct famq_session famq_session;

/* Who wrote a message. */
typedef enum famq_role {
  FAMQ_ROLE_SYSTEM = 0,
  FAMQ_ROLE_USER = 1,
  FAMQ_ROLE_ASSISTANT = 2,
  FAMQ_ROLE_FORCE_32BIT = 0x7FFFFFFF /* not a role: keeps the enum 32 bits wide */
} famq_role;

/* At most this many stop strings and extra stop tokens per session. */
#define FAMQ_MAX_STOPS 64

typedef struct famq_session_params {
  size_t struct_size;        /* sizeof(famq_session_params), set by famq_session_default_params() */
  int32_t max_new_tokens;    /* tokens per reply at most (>= 1; default 512); the context also bounds it */
  float temperature;         /* <= 0 (default 0): greedy (argmax, lowest id on ties) */
  int32_t top_k;             /* 0 (default): off */
  float top_p;               /* nucleus mass in (0, 1]; 1 (default): off */
  uint64_t seed;             /* sampling seed (default 0); the sampler continues across turns, reset()
                                restarts it */
  float repetition_penalty;  /* >= 1 (1, default: off): the logits of tokens already in the context are
                                divided by it when positive, multiplied when negative (Hugging Face's
                                repetition_penalty) before sampling, greedy included */
  int32_t enable_thinking;   /* the chat template's enable_thinking (Qwen3: 0 pre-fills an empty
                                <think></think>); default 1 */
  const char* const* stop_strings; /* a reply ends before the first occurrence of any of these (the
                                      string is neither delivered nor kept); NULL (default): none.
                                      Copied by the call */
  size_t n_stop_strings;     /* entries at stop_strings (<= FAMQ_MAX_STOPS; each 1..256 bytes) */
  const int32_t* stop_tokens; /* ids that end a reply besides the model's eos ids (neither
                                 delivered nor kept); NULL (default): none. Copied by the call */
  size_t n_stop_tokens;      /* entries at stop_tokens (<= FAMQ_MAX_STOPS; each in [0, vocab_size)) */
} famq_session_params;

/* Fills `params` with the defaults above (NULL: does nothing). A function
 * filling a caller's struct rather than returning one by value: a struct
 * returned by value could not grow without breaking callers. */
FAMQ_API void famq_session_default_params(famq_session_params* params);

/* Starts an empty conversation on `model`.
 *   model:       Required; must have a chat template. Must outlive the
 *                session.
 *   params:      NULL: defaults.
 *   out_session: receives the handle (free with famq_session_free()); set
 *                to NULL on failure. Required.
 * Returns: FAMQ_OK; FAMQ_INVALID_ARGUMENT (a NULL argument, params out of
 *   range, a model without a chat template); FAMQ_UNSUPPORTED (a chat
 *   template construct famq lacks); FAMQ_OUT_OF_MEMORY (the KV cache cannot
 *   be allocated); FAMQ_INTERNAL. */
FAMQ_API famq_status famq_session_create(famq_model* model, const famq_session_params* params,
                                         famq_session** out_session);

/* Frees a session and its KV cache. NULL: does nothing. */
FAMQ_API void famq_session_free(famq_session* session);

/* Replaces the session's parameters (e.g. enable_thinking) for the next
 * turns and restarts the sampler at params->seed; the conversation and its
 * cache are kept.
 *   session: Required.
 *   params:  Required.
 * Returns: FAMQ_OK; FAMQ_INVALID_ARGUMENT (NULL, out of range; nothing
 *   changes). */
FAMQ_API famq_status famq_session_set_params(famq_session* session, const famq_session_params* params);

/* Forgets the conversation (every message, the system prompt included) and
 * the cache's contents, and restarts the sampler at params.seed; the
 * parameters and the cache's memory are kept.
 *   session: Required.
 * Returns: FAMQ_OK; FAMQ_INVALID_ARGUMENT (NULL, or the session is busy). */
FAMQ_API famq_status famq_session_reset(famq_session* session);

/* Appends a message without generating: a system prompt, or earlier turns
 * of a conversation being restored. Nothing is computed until the next
 * generation.
 *   session: Required.
 *   role:    FAMQ_ROLE_SYSTEM, FAMQ_ROLE_USER or FAMQ_ROLE_ASSISTANT.
 *   content: UTF-8 text. Required.
 * Returns: FAMQ_OK; FAMQ_INVALID_ARGUMENT (NULL, an unknown role, content
 *   not valid UTF-8, the session busy); FAMQ_OUT_OF_MEMORY. */
FAMQ_API famq_status famq_session_add_message(famq_session* session, famq_role role, const char* content);

/* Generates the assistant's reply to the conversation as it stands and
 * appends it as an assistant message. Only the tokens the cache does not
 * already hold are prefilled (see above). The reply ends at a stop token
 * (the model's eos ids or params.stop_tokens: not delivered, not kept), a
 * stop string (cut before it), max_new_tokens, the end of the context, or a
 * stop request from on_piece; in each case the reply so far is kept and
 * FAMQ_OK returned (famq_session_get_stats() says why it ended).
 *   session:      Required.
 *   on_piece:     receives the reply's bytes as they are decided: `piece`
 *                 (not NUL-terminated; a UTF-8 character may be split across
 *                 calls), `len`, `token` (the id whose sampling released
 *                 them; -1 for bytes held back until the reply ended),
 *                 `user`. Bytes that might begin a stop string are
 *                 held back until they cannot. Returns nonzero to stop the
 *                 reply (no error). May be NULL.
 *   user:         passed to on_piece unchanged; may be NULL.
 *   out_text:     caller-owned buffer for the whole reply, NUL-terminated.
 *                 May be NULL (then out_capacity must be 0).
 *   out_capacity: bytes at out_text, the NUL included (> 0 when given).
 *   out_len:      receives the reply's full length in bytes (without the
 *                 NUL), also when it did not fit. May be NULL.
 * Returns: FAMQ_OK; FAMQ_INVALID_ARGUMENT (a NULL argument, no user or
 *   system message to answer, the session or its model busy);
 *   FAMQ_CONTEXT_FULL (the rendered conversation leaves no room for a new
 *   token: the conversation is unchanged; reset the session or start a new
 *   one); FAMQ_BUFFER_TOO_SMALL (out_text could not hold the reply: the reply
 *   is complete and kept, out_text holds its NUL-terminated prefix and
 *   *out_len + 1 bytes are needed); FAMQ_UNSUPPORTED / FAMQ_INVALID_ARGUMENT
 *   (the chat template failed on the conversation); FAMQ_OUT_OF_MEMORY;
 *   FAMQ_INTERNAL (the turn is dropped). */
FAMQ_API famq_status famq_session_generate(famq_session* session, famq_token_callback on_piece, void* user,
                                           char* out_text, size_t out_capacity, size_t* out_len);

/* famq_session_add_message(session, FAMQ_ROLE_USER, user_message) followed
 * by famq_session_generate(); when the reply cannot start (any status but
 * FAMQ_OK and FAMQ_BUFFER_TOO_SMALL) the user message is removed again, so
 * the conversation is as before the call.
 *   user_message: UTF-8 text. Required.
 *   the others:   as for famq_session_generate().
 * Returns: as famq_session_add_message() and famq_session_generate(). */
FAMQ_API famq_status famq_session_send(famq_session* session, const char* user_message, famq_token_callback on_piece,
                                       void* user, char* out_text, size_t out_capacity, size_t* out_len);

/* Why the last reply ended. */
typedef enum famq_stop_reason {
  FAMQ_STOP_NONE = 0,       /* no reply yet (or the last one failed) */
  FAMQ_STOP_TOKEN = 1,      /* a stop token (eos or params.stop_tokens) */
  FAMQ_STOP_STRING = 2,     /* a stop string */
  FAMQ_STOP_LENGTH = 3,     /* max_new_tokens */
  FAMQ_STOP_CONTEXT = 4,    /* the end of the context: the next turn will be FAMQ_CONTEXT_FULL or close */
  FAMQ_STOP_CALLBACK = 5,   /* on_piece returned nonzero */
  FAMQ_STOP_FORCE_32BIT = 0x7FFFFFFF
} famq_stop_reason;

typedef struct famq_session_stats {
  size_t struct_size;          /* set by the caller: sizeof(famq_session_stats) */
  int32_t max_seq_len;         /* the context in tokens */
  int32_t context_tokens;      /* tokens the KV cache holds now */
  int32_t messages;            /* messages in the conversation */
  int32_t last_prompt_tokens;  /* the last turn's rendered conversation, in tokens */
  int32_t last_reused_tokens;  /* ... of which were already in the cache */
  int32_t last_prefill_tokens; /* ... and prefilled by the turn */
  int32_t last_generated_tokens; /* tokens sampled for the last reply (its stop token included) */
  famq_stop_reason last_stop;  /* why the last reply ended */
  double last_ttft_seconds;    /* the last turn: from the call to its first sampled token (render,
                                  tokenize, prefill, sample) */
  double last_decode_seconds;  /* the last turn: from its first sampled token to its end */
  uint64_t kv_cache_bytes;     /* the memory of this session's KV cache */
} famq_session_stats;

/* Describes the session and its last turn.
 *   session: Required.
 *   stats:   receives the fields above; stats->struct_size must be set by
 *            the caller (fields beyond it are not written). Required.
 * Returns: FAMQ_OK; FAMQ_INVALID_ARGUMENT (a NULL argument, a bad
 *   struct_size). */
FAMQ_API famq_status famq_session_get_stats(const famq_session* session, famq_session_stats* stats);

/* ------------------------------------------------------------------------ */
/* Calibration bundles                                                       */
/* ------------------------------------------------------------------------ */

/* A verified calibration bundle (written by the host tool `famq bundle`). */
typedef struct famq_bundle famq_bundle;

typedef struct famq_bundle_info {
  size_t struct_size;         /* set by the caller: sizeof(famq_bundle_info) */
  uint32_t sample_count;      /* calibration samples */
  uint64_t total_tokens;      /* tokens over all samples */
  int32_t is_signed;          /* 1: the bundle carries a signature */
  int32_t signature_checked;  /* 1: ... and it verified against the trusted key */
  char key_id[FAMQ_SHA256_HEX_SIZE];           /* signer's key id (hex SHA-256 of its DER); "" when unsigned */
  char payload_sha256[FAMQ_SHA256_HEX_SIZE];   /* hex SHA-256 of the signed payload */
  char tokenizer_sha256[FAMQ_SHA256_HEX_SIZE]; /* the family (tokenizer) the bundle was made for */
} famq_bundle_info;

/* Reads and verifies a bundle, in this order: size and identifier, container
 * (FlatBuffers verifier, version, canonical form), the ECDSA P-256 signature
 * against the trusted key, then the payload and its invariants.
 *   bundle_path:     the bundle file. Required.
 *   public_key_path: the trusted public key, PEM ("-----BEGIN PUBLIC
 *                    KEY-----", EC P-256) or DER. NULL is allowed only with
 *                    allow_unsigned (then a signed bundle is refused, as its
 *                    signature cannot be checked).
 *   allow_unsigned:  nonzero: accept a bundle that carries no signature.
 *   out_bundle:      receives the handle (close with famq_bundle_close());
 *                    set to NULL on failure. Required.
 * Returns: FAMQ_OK; FAMQ_INVALID_ARGUMENT (a NULL argument; no key without
 *   allow_unsigned; an unsigned bundle without allow_unsigned; a signed
 *   bundle without a key); FAMQ_NOT_FOUND / FAMQ_IO_ERROR (a file);
 *   FAMQ_INVALID_FORMAT (not a bundle, truncated, tampered, signed by
 *   another key, a signature that does not verify, a malformed key);
 *   FAMQ_UNSUPPORTED (a format version, algorithm or key type famq lacks);
 *   FAMQ_OUT_OF_MEMORY; FAMQ_INTERNAL. */
FAMQ_API famq_status famq_bundle_open(const char* bundle_path, const char* public_key_path, int allow_unsigned,
                                      famq_bundle** out_bundle);

/* What verification established and what the bundle holds.
 *   bundle: Required.
 *   info:   receives the fields above; info->struct_size must be set by the
 *           caller (fields beyond it are not written). Required.
 * Returns: FAMQ_OK; FAMQ_INVALID_ARGUMENT (a NULL argument, a bad struct_size). */
FAMQ_API famq_status famq_bundle_get_info(const famq_bundle* bundle, famq_bundle_info* info);

/* Frees a bundle. NULL: does nothing. */
FAMQ_API void famq_bundle_close(famq_bundle* bundle);

/* famq_bundle_open() + famq_bundle_get_info() + famq_bundle_close() in one
 * call: verifies the bundle and reports it.
 *   bundle_path, public_key_path, allow_unsigned: as for famq_bundle_open().
 *   out_info: receives the report (struct_size set by the caller); may be
 *             NULL to only verify.
 * Returns: as famq_bundle_open() and famq_bundle_get_info(). */
FAMQ_API famq_status famq_bundle_verify(const char* bundle_path, const char* public_key_path, int allow_unsigned,
                                        famq_bundle_info* out_info);

/* ------------------------------------------------------------------------ */
/* Finalize: quantize a model on the device                                  */
/* ------------------------------------------------------------------------ */

typedef struct famq_finalize_options {
  size_t struct_size;        /* sizeof(famq_finalize_options), set by famq_finalize_options_init() */
  const char* method;        /* "rtn", "gptq" (default), "awq" or "smoothquant" */
  int32_t wbits;             /* weight bits: 4 (default), 8, or 3 / 2 (weight-only: not with abits 8) */
  int32_t abits;             /* 0 (default): weight-only; 8: static int8 activations (W8A8: needs wbits 8,
                                group_size 0); smoothquant always means 8 */
  int32_t group_size;        /* weights per scale: 32 (default), 64, 128, or 0: one per output channel */
  int32_t symmetric;         /* weight-only: nonzero for symmetric codes (no zero points); default 0 */
  const char* act_estimator; /* W8A8 activation ranges: "minmax" (default), "percentile" or "mse" */
  int32_t calib_seq_len;     /* tokens per sample cut from calibration text (>= 2; default 256) */
  const char* private_text_path; /* on-device text mixed into the statistics (never leaves the device);
                                    NULL (default): none */
  float private_weight;      /* mass of the private text in (0, 1); required with private_text_path */
  int32_t allow_unsigned;    /* nonzero: accept an unsigned bundle; default 0 */
  int32_t allow_foreign_family; /* nonzero: accept a bundle made for another tokenizer; default 0 */
  int32_t num_threads;       /* engine threads while calibrating; 0 (default): one per CPU, at most 8 */
  int32_t head_bits;         /* token embedding and head: 8 (default), 6 or 4: quantized RTN, symmetric, groups
                                of 32, stored once when tied (6: codes stored at 6 bits, run on the 8-bit
                                kernels); 16: kept as the checkpoint stores them. Added after the first
                                version: a caller built without it gets the default */
  int32_t f16_scales;        /* nonzero: every weight scale is rounded to fp16 before its codes are computed and
                                stored in 2 bytes (a smaller file; `famq-rt finalize --scale-dtype f16`);
                                default 0: fp32 scales. Added after head_bits: a caller built without it gets
                                the default */
} famq_finalize_options;

/* Fills `options` with the defaults above (NULL: does nothing). */
FAMQ_API void famq_finalize_options_init(famq_finalize_options* options);

/* Reports finalize progress, several times per block.
 *   fraction: overall progress in [0, 1], non-decreasing.
 *   layer:    the block being finalized, 0-based.
 *   layers:   blocks in the model.
 *   stage:    "statistics", "ranges", "quantize" or "propagate" (static).
 *   user:     the pointer given to famq_finalize().
 * Returns 0 to continue, nonzero to cancel (famq_finalize() then returns
 * FAMQ_CANCELLED and writes nothing). */
typedef int (*famq_progress_callback)(float fraction, int layer, int layers, const char* stage, void* user);

/* Finalizes an fp model on the device: calibrates it on a verified bundle (or
 * on plain text), quantizes it layer by layer and writes the quantized model
 * atomically (temporary file, fsync, rename: `out_path` holds the old file or
 * the new one, never a partial one). Order, as in `famq-rt finalize`: the
 * options are checked first, then the model is opened and the options
 * checked against its shapes, then the bundle is verified (signature, then
 * family) before any calibration work starts.
 *   model_dir:       the fp Hugging Face model directory. Required.
 *   bundle_path:     calibration bundle; exactly one of bundle_path and
 *                    calib_text_path is given.
 *   public_key_path: the key the bundle must be signed with (PEM); required
 *                    with bundle_path unless options->allow_unsigned; ignored
 *                    with calib_text_path.
 *   calib_text_path: plain UTF-8 text to calibrate on instead (the "original
 *                    data" path: windows of calib_seq_len tokens, uniform
 *                    weights).
 *   options:         method and scheme; NULL: defaults.
 *   on_progress:     progress and cancellation; may be NULL.
 *   user:            passed to on_progress unchanged; may be NULL.
 *   out_path:        the quantized model file to write. Required.
 * Returns: FAMQ_OK; FAMQ_INVALID_ARGUMENT (a NULL argument, both or neither
 *   calibration source, impossible options, an unsigned bundle not allowed,
 *   a bundle of another family, a missing key); FAMQ_NOT_FOUND /
 *   FAMQ_IO_ERROR (a file); FAMQ_INVALID_FORMAT (a malformed model, key or
 *   bundle; a bundle signed by another key or tampered with);
 *   FAMQ_UNSUPPORTED (a scheme this model's shapes or famq lack);
 *   FAMQ_CANCELLED (on_progress returned nonzero; nothing is written);
 *   FAMQ_OUT_OF_MEMORY; FAMQ_INTERNAL. */
FAMQ_API famq_status famq_finalize(const char* model_dir, const char* bundle_path, const char* public_key_path,
                                   const char* calib_text_path, const famq_finalize_options* options,
                                   famq_progress_callback on_progress, void* user, const char* out_path);

/* ---- GGUF export (docs/GGUF.md) ---------------------------------------- */

/* Writes a finalized weight-only quantized model as a GGUF file that
 * llama.cpp (and what is built on it) runs, as `famq-rt export` does: W4
 * symmetric -> Q4_0, W4 with zero points -> Q4_1, W8 symmetric -> Q8_0 (a
 * quantized embedding / head likewise, in its own bits), each scale rounded
 * to fp16 (the one inexact step); AWQ input multipliers folded;
 * tokenizer, chat template and famq's provenance (`famq.*`) in the metadata.
 * The input is fully verified and the mapping checked before anything is
 * written; the output is written atomically (temporary file, fsync, rename).
 *   qmodel_path: the quantized model from famq_finalize / famq-rt finalize.
 *                Required.
 *   out_path:    the .gguf file to write. Required.
 * Returns: FAMQ_OK; FAMQ_INVALID_ARGUMENT (a NULL or empty argument);
 *   FAMQ_NOT_FOUND / FAMQ_IO_ERROR (a file); FAMQ_INVALID_FORMAT (a
 *   truncated, foreign or inconsistent quantized model); FAMQ_UNSUPPORTED
 *   (nothing GGUF holds exactly: static W8A8, W8 with zero points, other bit
 *   widths, groups not a multiple of 32, an o_proj multiplier under
 *   grouped-query attention, llama3 rope scaling, a tokenizer llama.cpp
 *   cannot reproduce; the message names the reason); FAMQ_OUT_OF_MEMORY;
 *   FAMQ_INTERNAL. Nothing is written unless FAMQ_OK. */
FAMQ_API famq_status famq_export_gguf(const char* qmodel_path, const char* out_path);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* FAMQ_FAMQ_H_ */
