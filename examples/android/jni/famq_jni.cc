// JNI glue between org.famq.Famq (examples/android/app/src/main/kotlin/org/famq/Famq.kt)
// and the famq C API. Uses famq.h only, as an app would.
//
// Every native method runs synchronously on the calling (background) thread.
// A failing famq call throws org.famq.FamqException(status, famq_last_error());
// an exception thrown by a Java callback stops the famq call and is left
// pending for the caller. Strings cross as UTF-16 (NewString/GetStringChars),
// never as JNI's modified UTF-8, so that text outside the BMP survives and
// ill-formed token bytes become U+FFFD instead of crashing the VM.
#include <jni.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "famq/famq.h"

namespace {

jclass g_exception_class = nullptr;   // org/famq/FamqException (global ref)
jmethodID g_exception_ctor = nullptr; // FamqException(int status, String message)

// --- text -------------------------------------------------------------------

// Appends the UTF-16 of UTF-8 `s`; each maximal ill-formed subpart becomes U+FFFD.
void AppendUtf16(std::string_view s, std::u16string* out) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      out->push_back(c);
      ++i;
      continue;
    }
    int need = 0;
    uint32_t cp = 0;
    unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      need = 1;
      cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      need = 2;
      cp = c & 0x0F;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;  // no surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
      need = 3;
      cp = c & 0x07;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      out->push_back(0xFFFD);
      ++i;
      continue;
    }
    int got = 0;
    while (got < need && i + 1 + got < s.size()) {
      const auto b = static_cast<unsigned char>(s[i + 1 + got]);
      if (b < (got == 0 ? lo : 0x80) || b > (got == 0 ? hi : 0xBF)) break;
      cp = (cp << 6) | (b & 0x3F);
      ++got;
    }
    i += 1 + static_cast<size_t>(got);
    if (got < need) {
      out->push_back(0xFFFD);
    } else if (cp >= 0x10000) {
      cp -= 0x10000;
      out->push_back(static_cast<char16_t>(0xD800 + (cp >> 10)));
      out->push_back(static_cast<char16_t>(0xDC00 + (cp & 0x3FF)));
    } else {
      out->push_back(static_cast<char16_t>(cp));
    }
  }
}

// The bytes of `s` that end on a character boundary: an incomplete sequence
// at the very end (up to 3 bytes) is held back for the next piece.
size_t CompletePrefix(std::string_view s) {
  for (size_t back = 1; back <= 3 && back <= s.size(); ++back) {
    const auto c = static_cast<unsigned char>(s[s.size() - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: look further back
    const size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    return len > back ? s.size() - back : s.size();
  }
  return s.size();
}

jstring NewJavaString(JNIEnv* env, std::string_view utf8, std::u16string* scratch) {
  scratch->clear();
  AppendUtf16(utf8, scratch);
  return env->NewString(reinterpret_cast<const jchar*>(scratch->data()), static_cast<jsize>(scratch->size()));
}

jstring NewJavaString(JNIEnv* env, std::string_view utf8) {
  std::u16string scratch;
  return NewJavaString(env, utf8, &scratch);
}

// A Java string argument as standard UTF-8 (null stays null).
class Utf8Arg {
 public:
  Utf8Arg(JNIEnv* env, jstring s) : null_(s == nullptr) {
    if (null_) return;
    const jsize n = env->GetStringLength(s);
    const jchar* u = env->GetStringChars(s, nullptr);
    if (u == nullptr) return;  // OutOfMemoryError pending
    for (jsize i = 0; i < n; ++i) {
      uint32_t cp = u[i];
      if (cp >= 0xD800 && cp <= 0xDBFF && i + 1 < n && u[i + 1] >= 0xDC00 && u[i + 1] <= 0xDFFF) {
        cp = 0x10000 + ((cp - 0xD800) << 10) + (u[i + 1] - 0xDC00);
        ++i;
      } else if (cp >= 0xD800 && cp <= 0xDFFF) {
        cp = 0xFFFD;  // unpaired surrogate
      }
      if (cp < 0x80) {
        s_ += static_cast<char>(cp);
      } else if (cp < 0x800) {
        s_ += static_cast<char>(0xC0 | (cp >> 6));
        s_ += static_cast<char>(0x80 | (cp & 0x3F));
      } else if (cp < 0x10000) {
        s_ += static_cast<char>(0xE0 | (cp >> 12));
        s_ += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        s_ += static_cast<char>(0x80 | (cp & 0x3F));
      } else {
        s_ += static_cast<char>(0xF0 | (cp >> 18));
        s_ += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        s_ += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        s_ += static_cast<char>(0x80 | (cp & 0x3F));
      }
    }
    env->ReleaseStringChars(s, u);
  }
  // nullptr for a null Java string.
  const char* get() const { return null_ ? nullptr : s_.c_str(); }

 private:
  bool null_;
  std::string s_;
};

// --- errors -----------------------------------------------------------------

// Throws FamqException(status, famq_last_error()) unless an exception is pending.
void ThrowFamq(JNIEnv* env, famq_status status) {
  if (env->ExceptionCheck()) return;
  jstring message = NewJavaString(env, famq_last_error());
  if (message == nullptr) return;
  auto ex = static_cast<jthrowable>(env->NewObject(g_exception_class, g_exception_ctor, static_cast<jint>(status), message));
  env->DeleteLocalRef(message);
  if (ex != nullptr) env->Throw(ex);
}

famq_model* Model(JNIEnv* env, jlong handle) {
  auto* m = reinterpret_cast<famq_model*>(static_cast<intptr_t>(handle));
  if (m == nullptr) {
    jclass iae = env->FindClass("java/lang/IllegalStateException");
    if (iae != nullptr) env->ThrowNew(iae, "famq: the model is closed (handle 0)");
  }
  return m;
}

// --- callbacks --------------------------------------------------------------

struct TokenBridge {
  JNIEnv* env = nullptr;
  jobject callback = nullptr;   // Famq.TokenCallback or null
  jmethodID on_token = nullptr; // boolean onToken(String piece, int token)
  std::string text;             // everything generated
  std::string pending;          // bytes of a character not yet complete
  std::u16string scratch;       // reused for every piece
};

int OnToken(const char* piece, size_t len, int32_t token, void* user) {
  auto* b = static_cast<TokenBridge*>(user);
  b->text.append(piece, len);
  if (b->callback == nullptr) return 0;
  b->pending.append(piece, len);
  const size_t cut = CompletePrefix(b->pending);
  jstring s = NewJavaString(b->env, std::string_view(b->pending).substr(0, cut), &b->scratch);
  b->pending.erase(0, cut);
  if (s == nullptr) return 1;  // OutOfMemoryError pending
  const jboolean go_on = b->env->CallBooleanMethod(b->callback, b->on_token, s, static_cast<jint>(token));
  b->env->DeleteLocalRef(s);  // one local reference per token would overflow the table
  if (b->env->ExceptionCheck()) return 1;
  return go_on == JNI_TRUE ? 0 : 1;
}

struct ProgressBridge {
  JNIEnv* env = nullptr;
  jobject callback = nullptr;      // Famq.ProgressCallback
  jmethodID on_progress = nullptr; // boolean onProgress(float fraction, int layer, int layers, String stage)
};

int OnProgress(float fraction, int layer, int layers, const char* stage, void* user) {
  auto* b = static_cast<ProgressBridge*>(user);
  jstring s = b->env->NewStringUTF(stage);  // static ASCII names
  if (s == nullptr) return 1;
  const jboolean go_on = b->env->CallBooleanMethod(b->callback, b->on_progress, static_cast<jfloat>(fraction),
                                                   static_cast<jint>(layer), static_cast<jint>(layers), s);
  b->env->DeleteLocalRef(s);
  if (b->env->ExceptionCheck()) return 1;
  return go_on == JNI_TRUE ? 0 : 1;
}

jmethodID CallbackMethod(JNIEnv* env, jobject callback, const char* name, const char* signature) {
  jclass cls = env->GetObjectClass(callback);
  jmethodID id = env->GetMethodID(cls, name, signature);
  env->DeleteLocalRef(cls);
  return id;  // nullptr: NoSuchMethodError pending
}

famq_session* Session(JNIEnv* env, jlong handle) {
  auto* s = reinterpret_cast<famq_session*>(static_cast<intptr_t>(handle));
  if (s == nullptr) {
    jclass ise = env->FindClass("java/lang/IllegalStateException");
    if (ise != nullptr) env->ThrowNew(ise, "famq: the session is closed (handle 0)");
  }
  return s;
}

// Session parameters from the Java arguments; the stop strings live in `stops`.
struct SessionArgs {
  famq_session_params params;
  std::vector<std::string> stops;
  std::vector<const char*> stop_ptrs;
};

bool ReadSessionArgs(JNIEnv* env, jint max_new_tokens, jfloat temperature, jint top_k, jfloat top_p, jlong seed,
                     jfloat repetition_penalty, jboolean enable_thinking, jobjectArray stop_strings,
                     SessionArgs* a) {
  famq_session_default_params(&a->params);
  a->params.max_new_tokens = max_new_tokens;
  a->params.temperature = temperature;
  a->params.top_k = top_k;
  a->params.top_p = top_p;
  a->params.seed = static_cast<uint64_t>(seed);
  a->params.repetition_penalty = repetition_penalty;
  a->params.enable_thinking = enable_thinking ? 1 : 0;
  if (stop_strings != nullptr) {
    const jsize n = env->GetArrayLength(stop_strings);
    for (jsize i = 0; i < n; ++i) {
      auto js = static_cast<jstring>(env->GetObjectArrayElement(stop_strings, i));
      if (env->ExceptionCheck()) return false;
      const Utf8Arg u(env, js);
      if (js != nullptr) env->DeleteLocalRef(js);
      if (env->ExceptionCheck()) return false;
      a->stops.emplace_back(u.get() != nullptr ? u.get() : "");
    }
    for (const std::string& x : a->stops) a->stop_ptrs.push_back(x.c_str());
    a->params.stop_strings = a->stop_ptrs.data();
    a->params.n_stop_strings = a->stop_ptrs.size();
  }
  return true;
}

}  // namespace

extern "C" {

JNIEXPORT jint JNICALL JNI_OnLoad(JavaVM* vm, void* /*reserved*/) {
  JNIEnv* env = nullptr;
  if (vm->GetEnv(reinterpret_cast<void**>(&env), JNI_VERSION_1_6) != JNI_OK) return JNI_ERR;
  jclass cls = env->FindClass("org/famq/FamqException");
  if (cls == nullptr) return JNI_ERR;
  g_exception_class = static_cast<jclass>(env->NewGlobalRef(cls));
  env->DeleteLocalRef(cls);
  g_exception_ctor = env->GetMethodID(g_exception_class, "<init>", "(ILjava/lang/String;)V");
  if (g_exception_ctor == nullptr) return JNI_ERR;
  return JNI_VERSION_1_6;
}

JNIEXPORT jstring JNICALL Java_org_famq_Famq_version(JNIEnv* env, jclass) {
  return env->NewStringUTF(famq_version());
}

JNIEXPORT jstring JNICALL Java_org_famq_Famq_statusName(JNIEnv* env, jclass, jint status) {
  // famq_status holds 0..0x7FFFFFFF; a negative int is no status either.
  return env->NewStringUTF(famq_status_name(static_cast<famq_status>(status < 0 ? 0x7FFFFFFF : status)));
}

JNIEXPORT void JNICALL Java_org_famq_Famq_forceIsa(JNIEnv* env, jclass, jstring name) {
  const Utf8Arg n(env, name);
  if (env->ExceptionCheck()) return;
  const famq_status st = famq_force_isa(n.get());
  if (st != FAMQ_OK) ThrowFamq(env, st);
}

JNIEXPORT jlong JNICALL Java_org_famq_Famq_open(JNIEnv* env, jclass, jstring path, jboolean quantized,
                                                jint num_threads) {
  const Utf8Arg p(env, path);
  if (env->ExceptionCheck()) return 0;
  famq_model_options o;
  famq_model_options_init(&o);
  o.num_threads = num_threads;
  famq_model* m = nullptr;
  const famq_status st = quantized ? famq_qmodel_open(p.get(), &o, &m) : famq_model_open(p.get(), &o, &m);
  if (st != FAMQ_OK) {
    ThrowFamq(env, st);
    return 0;
  }
  return static_cast<jlong>(reinterpret_cast<intptr_t>(m));
}

JNIEXPORT void JNICALL Java_org_famq_Famq_close(JNIEnv*, jclass, jlong handle) {
  famq_model_close(reinterpret_cast<famq_model*>(static_cast<intptr_t>(handle)));
}

JNIEXPORT jstring JNICALL Java_org_famq_Famq_describe(JNIEnv* env, jclass, jlong handle) {
  famq_model* m = Model(env, handle);
  if (m == nullptr) return nullptr;
  famq_model_info info;
  info.struct_size = sizeof info;
  char scheme[128];
  const famq_status st = famq_model_get_info(m, &info, scheme, sizeof scheme, nullptr);
  if (st != FAMQ_OK) {
    ThrowFamq(env, st);
    return nullptr;
  }
  char line[256];
  std::snprintf(line, sizeof line, "%s, %lld parameters, %d layers, context %d", scheme,
                static_cast<long long>(info.parameters), static_cast<int>(info.layers),
                static_cast<int>(info.max_seq_len));
  return env->NewStringUTF(line);
}

JNIEXPORT jstring JNICALL Java_org_famq_Famq_generate(JNIEnv* env, jclass, jlong handle, jstring prompt,
                                                      jint max_new_tokens, jfloat temperature, jint top_k,
                                                      jfloat top_p, jlong seed, jboolean chat, jobject callback) {
  famq_model* m = Model(env, handle);
  if (m == nullptr) return nullptr;
  const Utf8Arg p(env, prompt);
  if (env->ExceptionCheck()) return nullptr;
  TokenBridge bridge;
  bridge.env = env;
  // Grown once here, not token by token.
  bridge.text.reserve(static_cast<size_t>(max_new_tokens > 0 ? max_new_tokens : 0) * 8 + 64);
  bridge.pending.reserve(64);
  bridge.scratch.reserve(256);
  if (callback != nullptr) {
    bridge.callback = callback;
    bridge.on_token = CallbackMethod(env, callback, "onToken", "(Ljava/lang/String;I)Z");
    if (bridge.on_token == nullptr) return nullptr;
  }
  famq_generate_options o;
  famq_generate_options_init(&o);
  o.max_new_tokens = max_new_tokens;
  o.temperature = temperature;
  o.top_k = top_k;
  o.top_p = top_p;
  o.seed = static_cast<uint64_t>(seed);
  o.chat = chat ? 1 : 0;
  const famq_status st = famq_generate(m, p.get(), &o, OnToken, &bridge, nullptr, 0, nullptr);
  if (env->ExceptionCheck()) return nullptr;  // thrown by the callback
  if (st != FAMQ_OK) {
    ThrowFamq(env, st);
    return nullptr;
  }
  return NewJavaString(env, bridge.text, &bridge.scratch);
}

JNIEXPORT jstring JNICALL Java_org_famq_Famq_verifyBundle(JNIEnv* env, jclass, jstring bundle_path,
                                                          jstring public_key_path, jboolean allow_unsigned) {
  const Utf8Arg b(env, bundle_path), k(env, public_key_path);
  if (env->ExceptionCheck()) return nullptr;
  famq_bundle_info info;
  info.struct_size = sizeof info;
  const famq_status st = famq_bundle_verify(b.get(), k.get(), allow_unsigned ? 1 : 0, &info);
  if (st != FAMQ_OK) {
    ThrowFamq(env, st);
    return nullptr;
  }
  char line[320];
  std::snprintf(line, sizeof line, "%u samples, %llu tokens, %s%s, payload sha256 %s",
                static_cast<unsigned>(info.sample_count), static_cast<unsigned long long>(info.total_tokens),
                info.signature_checked ? "signature OK, key " : "UNSIGNED", info.key_id, info.payload_sha256);
  return env->NewStringUTF(line);
}

JNIEXPORT void JNICALL Java_org_famq_Famq_finalizeModel(JNIEnv* env, jclass, jstring model_dir, jstring bundle_path,
                                                        jstring public_key_path, jstring calib_text_path,
                                                        jstring method, jint wbits, jint abits, jint group_size,
                                                        jstring private_text_path, jfloat private_weight,
                                                        jboolean allow_unsigned, jstring out_path, jobject progress) {
  const Utf8Arg dir(env, model_dir), bundle(env, bundle_path), key(env, public_key_path), text(env, calib_text_path),
      meth(env, method), priv(env, private_text_path), out(env, out_path);
  if (env->ExceptionCheck()) return;
  famq_finalize_options o;
  famq_finalize_options_init(&o);
  if (meth.get() != nullptr) o.method = meth.get();
  o.wbits = wbits;
  o.abits = abits;
  o.group_size = group_size;
  o.private_text_path = priv.get();
  o.private_weight = priv.get() != nullptr ? private_weight : 0.0f;
  o.allow_unsigned = allow_unsigned ? 1 : 0;
  ProgressBridge bridge;
  bridge.env = env;
  if (progress != nullptr) {
    bridge.callback = progress;
    bridge.on_progress = CallbackMethod(env, progress, "onProgress", "(FIILjava/lang/String;)Z");
    if (bridge.on_progress == nullptr) return;
  }
  const famq_status st = famq_finalize(dir.get(), bundle.get(), key.get(), text.get(), &o,
                                       progress != nullptr ? OnProgress : nullptr, &bridge, out.get());
  if (env->ExceptionCheck()) return;  // thrown by the callback
  if (st != FAMQ_OK) ThrowFamq(env, st);
}

// --- chat sessions (famq_session_*) ------------------------------------------

JNIEXPORT jlong JNICALL Java_org_famq_Famq_sessionCreate(JNIEnv* env, jclass, jlong model, jint max_new_tokens,
                                                         jfloat temperature, jint top_k, jfloat top_p, jlong seed,
                                                         jfloat repetition_penalty, jboolean enable_thinking,
                                                         jobjectArray stop_strings) {
  famq_model* m = Model(env, model);
  if (m == nullptr) return 0;
  SessionArgs a;
  if (!ReadSessionArgs(env, max_new_tokens, temperature, top_k, top_p, seed, repetition_penalty, enable_thinking,
                       stop_strings, &a)) {
    return 0;
  }
  famq_session* s = nullptr;
  const famq_status st = famq_session_create(m, &a.params, &s);
  if (st != FAMQ_OK) {
    ThrowFamq(env, st);
    return 0;
  }
  return static_cast<jlong>(reinterpret_cast<intptr_t>(s));
}

JNIEXPORT void JNICALL Java_org_famq_Famq_sessionSetParams(JNIEnv* env, jclass, jlong session, jint max_new_tokens,
                                                           jfloat temperature, jint top_k, jfloat top_p, jlong seed,
                                                           jfloat repetition_penalty, jboolean enable_thinking,
                                                           jobjectArray stop_strings) {
  famq_session* s = Session(env, session);
  if (s == nullptr) return;
  SessionArgs a;
  if (!ReadSessionArgs(env, max_new_tokens, temperature, top_k, top_p, seed, repetition_penalty, enable_thinking,
                       stop_strings, &a)) {
    return;
  }
  const famq_status st = famq_session_set_params(s, &a.params);
  if (st != FAMQ_OK) ThrowFamq(env, st);
}

JNIEXPORT void JNICALL Java_org_famq_Famq_sessionFree(JNIEnv*, jclass, jlong session) {
  famq_session_free(reinterpret_cast<famq_session*>(static_cast<intptr_t>(session)));
}

JNIEXPORT void JNICALL Java_org_famq_Famq_sessionReset(JNIEnv* env, jclass, jlong session) {
  famq_session* s = Session(env, session);
  if (s == nullptr) return;
  const famq_status st = famq_session_reset(s);
  if (st != FAMQ_OK) ThrowFamq(env, st);
}

JNIEXPORT void JNICALL Java_org_famq_Famq_sessionAddMessage(JNIEnv* env, jclass, jlong session, jint role,
                                                            jstring content) {
  famq_session* s = Session(env, session);
  if (s == nullptr) return;
  const Utf8Arg c(env, content);
  if (env->ExceptionCheck()) return;
  const famq_status st = famq_session_add_message(s, static_cast<famq_role>(role < 0 ? 0x7FFFFFFF : role), c.get());
  if (st != FAMQ_OK) ThrowFamq(env, st);
}

JNIEXPORT jstring JNICALL Java_org_famq_Famq_sessionSend(JNIEnv* env, jclass, jlong session, jstring message,
                                                         jobject callback) {
  famq_session* s = Session(env, session);
  if (s == nullptr) return nullptr;
  const Utf8Arg msg(env, message);
  if (env->ExceptionCheck()) return nullptr;
  TokenBridge bridge;
  bridge.env = env;
  bridge.text.reserve(4096);
  bridge.pending.reserve(64);
  bridge.scratch.reserve(256);
  if (callback != nullptr) {
    bridge.callback = callback;
    bridge.on_token = CallbackMethod(env, callback, "onToken", "(Ljava/lang/String;I)Z");
    if (bridge.on_token == nullptr) return nullptr;
  }
  const famq_status st = famq_session_send(s, msg.get(), OnToken, &bridge, nullptr, 0, nullptr);
  if (env->ExceptionCheck()) return nullptr;  // thrown by the callback
  if (st != FAMQ_OK) {
    ThrowFamq(env, st);
    return nullptr;
  }
  return NewJavaString(env, bridge.text, &bridge.scratch);
}

// {context tokens, messages, last prompt tokens, reused, prefilled, generated, stop reason, KV cache bytes}.
JNIEXPORT jlongArray JNICALL Java_org_famq_Famq_sessionStats(JNIEnv* env, jclass, jlong session) {
  famq_session* s = Session(env, session);
  if (s == nullptr) return nullptr;
  famq_session_stats st;
  st.struct_size = sizeof st;
  const famq_status rc = famq_session_get_stats(s, &st);
  if (rc != FAMQ_OK) {
    ThrowFamq(env, rc);
    return nullptr;
  }
  const jlong v[8] = {st.context_tokens,        st.messages,          st.last_prompt_tokens,
                      st.last_reused_tokens,    st.last_prefill_tokens, st.last_generated_tokens,
                      static_cast<jlong>(st.last_stop), static_cast<jlong>(st.kv_cache_bytes)};
  jlongArray out = env->NewLongArray(8);
  if (out == nullptr) return nullptr;
  env->SetLongArrayRegion(out, 0, 8, v);
  return out;
}

}  // extern "C"
