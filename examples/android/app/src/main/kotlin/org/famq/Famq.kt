// Kotlin face of the famq C API (famq.h), through the JNI glue in
// examples/android/jni/famq_jni.cc (libfamq_jni.so, which links
// libfamq_runtime.so).
//
// Every function blocks: call them from a background thread, never from the
// UI thread. A failing call throws FamqException with the famq_status and
// famq_last_error()'s message. The host test (examples/android/jni/host-test)
// mirrors this object in Java; keep the two in step.
package org.famq

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

    private fun checkOpen(): Long {
        check(handle != 0L) { "famq: the model is closed" }
        return handle
    }
}
