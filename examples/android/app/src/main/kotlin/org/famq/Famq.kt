// Kotlin face of the famq C API (famq.h), through the JNI glue in
// examples/android/jni/famq_jni.cc (libfamq_jni.so, which links
// libfamq_runtime.so).
//
// Every function blocks: call them from a background thread, never from the
// UI thread. A failing call throws FamqException with the famq_status and
// famq_last_error()'s message. The host test (examples/android/jni/host-test)
// mirrors this object in Java; keep the two in step.
package org.famq

import java.util.concurrent.atomic.AtomicBoolean
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.channels.awaitClose
import kotlinx.coroutines.channels.trySendBlocking
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.callbackFlow
import kotlinx.coroutines.isActive
import kotlinx.coroutines.launch

/** A famq call failed: [status] is the famq_status (Famq.NOT_FOUND, ...). */
class FamqException(val status: Int, message: String) : Exception("${Famq.statusName(status)}: $message")

object Famq {
    init {
        System.loadLibrary("famq_jni")
    }

    // famq_status values (famq.h).
    const val OK = 0
    const val INVALID_ARGUMENT = 1
    const val NOT_FOUND = 2
    const val IO_ERROR = 3
    const val INVALID_FORMAT = 4
    const val UNSUPPORTED = 5
    const val OUT_OF_MEMORY = 6
    const val CANCELLED = 7
    const val INTERNAL = 8
    const val BUFFER_TOO_SMALL = 9
    const val CONTEXT_FULL = 10

    // famq_role values.
    const val ROLE_SYSTEM = 0
    const val ROLE_USER = 1
    const val ROLE_ASSISTANT = 2

    /**
     * Receives each generated token. [piece] is the text this token completes
     * ("" while a UTF-8 character is split across tokens). Return false to stop.
     */
    fun interface TokenCallback {
        fun onToken(piece: String, token: Int): Boolean
    }

    /**
     * Finalize progress: [fraction] in 0..1 (non-decreasing), block [layer]
     * (0-based) of [layers], [stage] "statistics", "ranges", "quantize" or
     * "propagate". Return false to cancel (finalizeModel then throws
     * FamqException with status CANCELLED and writes nothing).
     */
    fun interface ProgressCallback {
        fun onProgress(fraction: Float, layer: Int, layers: Int, stage: String): Boolean
    }

    /** famq_version(): the library version, e.g. "0.1.0". */
    @JvmStatic external fun version(): String

    /** famq_status_name(): "FAMQ_NOT_FOUND", ... */
    @JvmStatic external fun statusName(status: Int): String

    /** famq_force_isa(): pin famq's kernels ("ref", "neon", "neondot", ...); null: automatic. */
    @JvmStatic @Throws(FamqException::class)
    external fun forceIsa(name: String?)

    /**
     * Opens a model: an fp Hugging Face directory ([quantized] false) or a
     * quantized model file ([quantized] true). [numThreads] 0: one per CPU,
     * at most 8. Returns a handle for the other calls; free it with [close].
     */
    @JvmStatic @Throws(FamqException::class)
    external fun open(path: String, quantized: Boolean, numThreads: Int): Long

    /** famq_model_close(); 0 is ignored. */
    @JvmStatic external fun close(handle: Long)

    /** Scheme, parameters, layers and context of a model, in one line. */
    @JvmStatic @Throws(FamqException::class)
    external fun describe(handle: Long): String

    /**
     * famq_generate(): the continuation of [prompt] (all of it, also when
     * [callback] streams it). [temperature] 0: greedy. [chat]: wrap the
     * prompt with the model's chat template. One call per handle at a time.
     */
    @JvmStatic @Throws(FamqException::class)
    external fun generate(
        handle: Long, prompt: String, maxNewTokens: Int, temperature: Float, topK: Int, topP: Float,
        seed: Long, chat: Boolean, callback: TokenCallback?,
    ): String

    /** famq_bundle_verify(): a one-line report of a verified bundle. */
    @JvmStatic @Throws(FamqException::class)
    external fun verifyBundle(bundlePath: String, publicKeyPath: String?, allowUnsigned: Boolean): String

    /**
     * famq_finalize(): calibrates the fp model in [modelDir] on a bundle
     * ([bundlePath] + [publicKeyPath]) or on plain text ([calibTextPath]),
     * optionally mixing private on-device text ([privateTextPath], mass
     * [privateWeight] in (0, 1)), and writes the quantized model to [outPath].
     * [method]: "rtn", "gptq", "awq" or "smoothquant"; [groupSize] 0: per channel.
     */
    @JvmStatic @Throws(FamqException::class)
    external fun finalizeModel(
        modelDir: String, bundlePath: String?, publicKeyPath: String?, calibTextPath: String?,
        method: String, wbits: Int, abits: Int, groupSize: Int,
        privateTextPath: String?, privateWeight: Float, allowUnsigned: Boolean,
        outPath: String, progress: ProgressCallback?,
    )

    // Chat sessions (famq_session_*): see FamqChat below.
    @JvmStatic @Throws(FamqException::class)
    external fun sessionCreate(
        model: Long, maxNewTokens: Int, temperature: Float, topK: Int, topP: Float, seed: Long,
        repetitionPenalty: Float, enableThinking: Boolean, stopStrings: Array<String>?,
    ): Long

    @JvmStatic @Throws(FamqException::class)
    external fun sessionSetParams(
        session: Long, maxNewTokens: Int, temperature: Float, topK: Int, topP: Float, seed: Long,
        repetitionPenalty: Float, enableThinking: Boolean, stopStrings: Array<String>?,
    )

    @JvmStatic external fun sessionFree(session: Long)

    @JvmStatic @Throws(FamqException::class)
    external fun sessionReset(session: Long)

    @JvmStatic @Throws(FamqException::class)
    external fun sessionAddMessage(session: Long, role: Int, content: String)

    /** famq_session_send(): the whole reply; [callback] streams it and may stop it (return false). */
    @JvmStatic @Throws(FamqException::class)
    external fun sessionSend(session: Long, message: String, callback: TokenCallback?): String

    /** {context tokens, messages, last prompt tokens, reused, prefilled, generated, stop reason, KV bytes}. */
    @JvmStatic @Throws(FamqException::class)
    external fun sessionStats(session: Long): LongArray
}

/** A model handle that frees itself: `FamqModel.openQuantized(path).use { it.generate(...) }`. */
class FamqModel private constructor(private var handle: Long) : AutoCloseable {
    companion object {
        @Throws(FamqException::class)
        fun openDirectory(dir: String, numThreads: Int = 0) = FamqModel(Famq.open(dir, false, numThreads))

        @Throws(FamqException::class)
        fun openQuantized(path: String, numThreads: Int = 0) = FamqModel(Famq.open(path, true, numThreads))
    }

    @Synchronized
    @Throws(FamqException::class)
    fun describe(): String = Famq.describe(checkOpen())

    /** Holds the model for the whole generation: [close] waits for it (stop early from [onToken]). */
    @Synchronized
    @Throws(FamqException::class)
    fun generate(
        prompt: String, maxNewTokens: Int = 128, temperature: Float = 0f, topK: Int = 0, topP: Float = 1f,
        seed: Long = 0, chat: Boolean = false, onToken: Famq.TokenCallback? = null,
    ): String = Famq.generate(checkOpen(), prompt, maxNewTokens, temperature, topK, topP, seed, chat, onToken)

    @Synchronized
    override fun close() {
        if (handle != 0L) {
            Famq.close(handle)
            handle = 0L
        }
    }

    /** Runs [block] with the open handle (chat sessions are created on it). */
    @Synchronized
    internal fun <T> withHandle(block: (Long) -> T): T = block(checkOpen())

    private fun checkOpen(): Long {
        check(handle != 0L) { "famq: the model is closed" }
        return handle
    }
}

/**
 * A conversation with a model (famq_session): keeps its KV cache across
 * turns, so each [sendMessage] prefills only the new turn. Several chats may
 * share one [FamqModel]; they take turns (one reply at a time per model).
 * Each chat holds its own KV cache (FamqChat.stats()[7] bytes).
 *
 *   FamqChat(model, systemPrompt = "You are terse.").use { chat ->
 *       chat.sendMessage("Hi").collect { piece -> textView.append(piece) }
 *   }
 */
class FamqChat(
    private val model: FamqModel,
    private val systemPrompt: String? = null,
    maxNewTokens: Int = 512,
    temperature: Float = 0f,
    topK: Int = 0,
    topP: Float = 1f,
    seed: Long = 0,
    repetitionPenalty: Float = 1f,
    enableThinking: Boolean = true,
    stopStrings: List<String> = emptyList(),
) : AutoCloseable {
    private var params = Params(maxNewTokens, temperature, topK, topP, seed, repetitionPenalty, enableThinking,
                                stopStrings.toTypedArray())
    private var handle: Long = model.withHandle { m -> params.create(m) }
    private val cancelled = AtomicBoolean(false)

    init {
        if (systemPrompt != null) Famq.sessionAddMessage(handle, Famq.ROLE_SYSTEM, systemPrompt)
    }

    /** Qwen3's thinking: false pre-fills an empty <think></think>; applies from the next message. */
    var enableThinking: Boolean
        get() = params.enableThinking
        @Synchronized set(value) {
            params = params.copy(enableThinking = value)
            params.apply(checkOpen())
        }

    /**
     * Sends a user message; the reply arrives as a cold Flow of text pieces
     * (generated on Dispatchers.IO). Cancelling the collector, or [cancel],
     * stops the reply after the current token; what was generated stays in
     * the conversation. Errors arrive as FamqException (e.g. CONTEXT_FULL:
     * call [reset]).
     */
    fun sendMessage(text: String): Flow<String> = callbackFlow {
        cancelled.set(false)
        val job = launch(Dispatchers.IO) {
            try {
                synchronized(this@FamqChat) {
                    Famq.sessionSend(checkOpen(), text) { piece, _ ->
                        if (piece.isNotEmpty()) trySendBlocking(piece)
                        !cancelled.get() && isActive
                    }
                }
                channel.close()
            } catch (e: Throwable) {
                channel.close(e)
            }
        }
        awaitClose {
            cancelled.set(true)
            job.cancel()
        }
    }

    /** Stops the reply being generated (from any thread). */
    fun cancel() = cancelled.set(true)

    /** Forgets the conversation (the system prompt given at construction is added again). */
    @Synchronized
    fun reset() {
        val h = checkOpen()
        Famq.sessionReset(h)
        if (systemPrompt != null) Famq.sessionAddMessage(h, Famq.ROLE_SYSTEM, systemPrompt)
    }

    /** See Famq.sessionStats. */
    @Synchronized
    fun stats(): LongArray = Famq.sessionStats(checkOpen())

    @Synchronized
    override fun close() {
        if (handle != 0L) {
            Famq.sessionFree(handle)
            handle = 0L
        }
    }

    private fun checkOpen(): Long {
        check(handle != 0L) { "famq: the chat is closed" }
        return handle
    }

    private data class Params(
        val maxNewTokens: Int, val temperature: Float, val topK: Int, val topP: Float, val seed: Long,
        val repetitionPenalty: Float, val enableThinking: Boolean, val stopStrings: Array<String>,
    ) {
        fun create(model: Long) = Famq.sessionCreate(model, maxNewTokens, temperature, topK, topP, seed,
                                                     repetitionPenalty, enableThinking, stopStrings)
        fun apply(session: Long) = Famq.sessionSetParams(session, maxNewTokens, temperature, topK, topP, seed,
                                                         repetitionPenalty, enableThinking, stopStrings)
    }
}
