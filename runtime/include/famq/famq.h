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
 *     buffer that is too small is reported as FAMQ_OUT_OF_MEMORY (the memory
 *     the caller supplied ran out) after the longest fitting prefix was
 *     written, NUL-terminated; never an overflow.
 *   - Option structs start with struct_size and are filled by their *_init()
 *     function, so fields can be appended in later versions. A struct larger
 *     than the library knows is accepted only if the unknown tail is all
 *     zero bytes (FAMQ_UNSUPPORTED otherwise).
 *   - No C++ exception crosses this API: an unexpected exception becomes
 *     FAMQ_INTERNAL (FAMQ_OUT_OF_MEMORY for a failed allocation).
 *   - Callbacks run on the calling thread, synchronously, inside the call.
 *     They may call famq_status_name(), famq_last_error(), famq_version()
 *     and famq_api_version(), but no other famq function on the same handle.
 *   - Threads: different handles may be used from different threads at the
 *     same time. One famq_model runs one generation at a time; a second
 *     concurrent call on it fails with FAMQ_INVALID_ARGUMENT ("busy").
 *     famq_force_isa() affects the whole process.
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
 * mismatch. */
#define FAMQ_API_VERSION 1

/* Hex SHA-256 digests (key ids, payload and tokenizer hashes): 64 characters
 * and a NUL. */
#define FAMQ_SHA256_HEX_SIZE 65

/* ------------------------------------------------------------------------ */
/* Status codes                                                              */
/* ------------------------------------------------------------------------ */

/* The outcome of a call. The values map 1:1 onto famq::StatusCode. */
typedef enum famq_status {
  FAMQ_OK = 0,
  FAMQ_INVALID_ARGUMENT = 1, /* a caller-supplied value is out of its domain */
  FAMQ_NOT_FOUND = 2,        /* a file, tensor or token that must exist does not */
  FAMQ_IO_ERROR = 3,         /* the OS refused a read, write, map or rename */
  FAMQ_INVALID_FORMAT = 4,   /* a file is malformed, truncated, tampered with or inconsistent */
  FAMQ_UNSUPPORTED = 5,      /* well-formed input that famq does not implement */
  FAMQ_OUT_OF_MEMORY = 6,    /* an allocation failed, a size is absurd, or a caller's buffer is too small */
  FAMQ_CANCELLED = 7,        /* a callback asked to stop */
  FAMQ_INTERNAL = 8,         /* a famq bug or a failing dependency */
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

typedef struct famq_model_options {
  size_t struct_size;  /* sizeof(famq_model_options), set by famq_model_options_init() */
  int32_t num_threads; /* engine threads; 0 (default): one per online CPU, at most 8 */
  int32_t max_seq_len; /* context (KV cache) in tokens; 0 (default): min(model's maximum, 2048) */
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
  int32_t wbits;        /* weight bits (4 or 8); 0 when not quantized */
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
 *   FAMQ_OUT_OF_MEMORY when the description did not fit (`info` is filled
 *   and `scheme` holds the truncated, NUL-terminated prefix). */
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
 * the tokens so far, and FAMQ_OUT_OF_MEMORY is returned.
 * Returns: FAMQ_OK (also when on_token stopped the generation);
 *   FAMQ_INVALID_ARGUMENT (a NULL argument, options out of range, a prompt
 *   that is not valid UTF-8, empty, or longer than the context, chat without
 *   a chat template, the model busy with another call); FAMQ_OUT_OF_MEMORY
 *   (out_text too small: see above; or an allocation failed);
 *   FAMQ_UNSUPPORTED (a chat template construct famq lacks); FAMQ_INTERNAL. */
FAMQ_API famq_status famq_generate(famq_model* model, const char* prompt, const famq_generate_options* options,
                                   famq_token_callback on_token, void* user, char* out_text, size_t out_capacity,
                                   size_t* out_len);

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
  int32_t wbits;             /* weight bits: 4 (default) or 8 */
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
 * symmetric -> Q4_0, W4 with zero points -> Q4_1, W8 symmetric -> Q8_0, each
 * scale rounded to fp16 (the one inexact step); AWQ input multipliers folded;
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
