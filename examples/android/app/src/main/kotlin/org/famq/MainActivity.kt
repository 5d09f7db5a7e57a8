// The famq demo: verify the pushed bundle, finalize the pushed fp model on
// the phone (progress on screen, private text mixed in when present), then
// generate with the quantized model, token by token.
//
// Inputs (adb push, see ../../../../../../README.md) in getExternalFilesDir(null):
//   famq-tiny-s/     the fp model directory (Hugging Face layout)
//   bundle.famqb     the calibration bundle from `famq bundle`
//   trust.pem        the public key the bundle was signed with
//   private.txt      optional on-device text, mixed in with weight 0.2
// Output: filesDir/model.famq (private to the app).
package org.famq

import android.app.Activity
import android.os.Bundle
import android.widget.ScrollView
import android.widget.TextView
import java.io.File
import kotlin.concurrent.thread

class MainActivity : Activity() {
    private lateinit var log: TextView

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        log = TextView(this).apply { setTextIsSelectable(true); setPadding(24, 24, 24, 24) }
        setContentView(ScrollView(this).apply { addView(log) })
        thread(name = "famq") { run() }
    }

    private fun say(text: String) = runOnUiThread { log.append(text) }

    private fun run() {
        val inbox = getExternalFilesDir(null) ?: return say("no external files directory\n")
        val modelDir = File(inbox, "famq-tiny-s")
        val bundle = File(inbox, "bundle.famqb")
        val trust = File(inbox, "trust.pem")
        val privateText = File(inbox, "private.txt").takeIf { it.isFile }
        val out = File(filesDir, "model.famq")
        say("famq ${Famq.version()}\n")
        try {
            say("bundle: ${Famq.verifyBundle(bundle.path, trust.path, false)}\n")
            var lastPercent = -1
            val t0 = System.nanoTime()
            Famq.finalizeModel(
                modelDir.path, bundle.path, trust.path, null,
                method = "gptq", wbits = 4, abits = 0, groupSize = 32,
                privateTextPath = privateText?.path, privateWeight = if (privateText != null) 0.2f else 0f,
                allowUnsigned = false, outPath = out.path,
            ) { fraction, layer, layers, stage ->
                val percent = (fraction * 100).toInt()
                if (percent != lastPercent) {
                    lastPercent = percent
                    say("finalize $percent%  block ${layer + 1}/$layers $stage\n")
                }
                !isFinishing // leaving the app cancels the finalize
            }
            say("wrote ${out.name} (${out.length() / 1024} KiB) in ${(System.nanoTime() - t0) / 1_000_000} ms\n")

            FamqModel.openQuantized(out.path).use { model ->
                say("${model.describe()}\n---\n")
                val prompt = "Question: What is 36 + 8?\nAnswer:"
                say(prompt)
                model.generate(prompt, maxNewTokens = 64) { piece, _ ->
                    say(piece)
                    !isFinishing
                }
                say("\n---\n")
            }
        } catch (e: FamqException) {
            say("\nfamq error: ${e.message}\n")
        }
    }
}
