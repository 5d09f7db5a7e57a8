// Drives libfamq_jni.so from Java on the host: what the Android app does,
// minus the phone. Exits nonzero on the first failed check.
//   java -Djava.library.path=LIB_DIR org.famq.FamqHostTest MODEL_DIR WORK_DIR
package org.famq;

import java.io.File;
import java.util.ArrayList;
import java.util.List;

public final class FamqHostTest {
  private static void check(boolean ok, String what) {
    if (!ok) {
      System.err.println("FAIL: " + what);
      System.exit(1);
    }
    System.out.println("ok: " + what);
  }

  private interface Call {
    void run() throws FamqException;
  }

  private static int status(Call c) {
    try {
      c.run();
      return Famq.OK;
    } catch (FamqException e) {
      System.out.println("  (" + e.getMessage() + ")");
      return e.status;
    }
  }

  public static void main(String[] args) throws Exception {
    final String model = args[0];
    final String work = args[1];
    final String prompt = "Question: What is 36 + 8?\nAnswer:";
    check(!Famq.version().isEmpty(), "version " + Famq.version());
    check(Famq.statusName(Famq.NOT_FOUND).equals("FAMQ_NOT_FOUND"), "statusName");

    // Errors arrive as FamqException with the status.
    check(status(() -> Famq.open(work + "/no-such-model", false, 0)) == Famq.NOT_FOUND, "open: NOT_FOUND");
    check(status(() -> Famq.forceIsa("sse9")) == Famq.INVALID_ARGUMENT, "forceIsa: INVALID_ARGUMENT");

    // fp model: generate with a streaming callback; the pieces add up to the result.
    long h = Famq.open(model, false, 1);
    System.out.println("  " + Famq.describe(h));
    final StringBuilder streamed = new StringBuilder();
    final List<Integer> tokens = new ArrayList<>();
    String text = Famq.generate(h, prompt, 16, 0f, 0, 1f, 0L, false, (piece, token) -> {
      streamed.append(piece);
      tokens.add(token);
      return true;
    });
    check(!tokens.isEmpty() && text.equals(streamed.toString()), "generate: " + tokens.size() + " tokens, '"
        + text.replace("\n", "\\n") + "'");
    String again = Famq.generate(h, prompt, 16, 0f, 0, 1f, 0L, false, null);
    check(again.equals(text), "generate without a callback: same greedy text");
    final int[] count = {0};
    Famq.generate(h, prompt, 16, 0f, 0, 1f, 0L, false, (piece, token) -> ++count[0] < 3);
    check(count[0] == 3, "generate: the callback stops after 3 tokens");
    // Text outside the BMP crosses as real UTF-8 (not JNI's modified UTF-8, which the tokenizer would refuse).
    String emoji = Famq.generate(h, "Smile \uD83D\uDE00 and \u00e9", 4, 0f, 0, 1f, 0L, false, null);
    check(emoji != null, "generate: a prompt with U+1F600 and U+00E9");
    String chat = Famq.generate(h, "What is 2 + 3?", 8, 0.8f, 20, 0.9f, 42L, true, null);
    check(chat != null, "generate: chat template, sampling");
    boolean thrown = false;
    try {
      Famq.generate(h, prompt, 16, 0f, 0, 1f, 0L, false, (piece, token) -> {
        throw new IllegalStateException("from the callback");
      });
    } catch (IllegalStateException e) {
      thrown = true;
    }
    check(thrown, "an exception in the callback reaches the caller");

    // Chat sessions: the KV cache is kept across turns; cancel, reset, thinking, stop strings.
    long s = Famq.sessionCreate(h, 12, 0f, 0, 1f, 0L, 1f, false, null);
    Famq.sessionAddMessage(s, Famq.ROLE_SYSTEM, "You are a calculator.");
    final StringBuilder turn1 = new StringBuilder();
    String reply1 = Famq.sessionSend(s, "What is 2 + 3?", (piece, token) -> {
      turn1.append(piece);
      return true;
    });
    check(reply1.equals(turn1.toString()), "session: turn 1 streamed '" + reply1.replace("\n", "\\n") + "'");
    long[] st1 = Famq.sessionStats(s);
    check(st1[1] == 3 && st1[3] == 0, "session: turn 1 prefilled everything (" + st1[2] + " tokens)");
    Famq.sessionSend(s, "And 4 + 4?", null);
    long[] st2 = Famq.sessionStats(s);
    check(st2[1] == 5 && st2[3] > st1[2] / 2 && st2[4] < st2[2] / 2,
        "session: turn 2 reused " + st2[3] + " of " + st2[2] + " tokens");
    final int[] pieces = {0};
    final StringBuilder cut = new StringBuilder();
    String stopped = Famq.sessionSend(s, "Tell me a story.", (piece, token) -> {
      cut.append(piece);
      return ++pieces[0] < 2;
    });
    check(pieces[0] == 2 && stopped.equals(cut.toString()) && Famq.sessionStats(s)[6] == 5,
        "session: the callback cancels the reply after 2 pieces");
    Famq.sessionReset(s);
    long[] st3 = Famq.sessionStats(s);
    check(st3[0] == 0 && st3[1] == 0, "session: reset");
    Famq.sessionSetParams(s, 1, 0f, 0, 1f, 0L, 1f, true, null);
    Famq.sessionSend(s, "Hi", null);
    long thinking = Famq.sessionStats(s)[2];
    Famq.sessionReset(s);
    Famq.sessionSetParams(s, 1, 0f, 0, 1f, 0L, 1f, false, null);
    Famq.sessionSend(s, "Hi", null);
    long plain = Famq.sessionStats(s)[2];
    check(plain > thinking, "session: enableThinking=false pre-fills <think></think> (" + plain + " > " + thinking
        + " tokens)");
    check(status(() -> Famq.sessionSetParams(s, 0, 0f, 0, 1f, 0L, 1f, false, null)) == Famq.INVALID_ARGUMENT,
        "session: bad parameters are INVALID_ARGUMENT");
    check(status(() -> Famq.sessionAddMessage(s, 7, "x")) == Famq.INVALID_ARGUMENT, "session: unknown role");
    Famq.sessionFree(s);
    long stopping = Famq.sessionCreate(h, 40, 0f, 0, 1f, 0L, 1.2f, false, new String[] {"e"});
    String noE = Famq.sessionSend(stopping, "Write a sentence.", null);
    check(!noE.contains("e"), "session: a stop string ends the reply before it: '" + noE + "'");
    Famq.sessionFree(stopping);
    Famq.close(h);

    // finalize with progress, then run the quantized model.
    final String out = work + "/q.famq";
    final List<Float> fractions = new ArrayList<>();
    Famq.finalizeModel(model, null, null, work + "/calib.txt", "rtn", 4, 0, 32, null, 0f, false, out,
        (fraction, layer, layers, stage) -> {
          fractions.add(fraction);
          return true;
        });
    check(new File(out).isFile() && fractions.size() >= 4, "finalize: " + fractions.size() + " progress calls");
    boolean increasing = true;
    for (int i = 1; i < fractions.size(); ++i) increasing &= fractions.get(i) >= fractions.get(i - 1);
    check(increasing && fractions.get(fractions.size() - 1) > 0.99f, "progress increases to 1");
    final String cancelled = work + "/cancelled.famq";
    int st = status(() -> Famq.finalizeModel(model, null, null, work + "/calib.txt", "rtn", 4, 0, 32, null, 0f,
        false, cancelled, (fraction, layer, layers, stage) -> false));
    check(st == Famq.CANCELLED && !new File(cancelled).exists(), "finalize: cancel from progress");
    long q = Famq.open(out, true, 0);
    String desc = Famq.describe(q);
    check(desc.startsWith("W4 g32 rtn"), "quantized: " + desc);
    String qtext = Famq.generate(q, prompt, 8, 0f, 0, 1f, 0L, false, null);
    check(!qtext.isEmpty(), "quantized generate: '" + qtext.replace("\n", "\\n") + "'");
    Famq.close(q);
    System.out.println("famq_jni host test: OK");
  }
}
