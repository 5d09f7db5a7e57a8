// Host-test mirror of app/src/main/kotlin/org/famq/Famq.kt: a Kotlin `object`
// with @JvmStatic external functions compiles to exactly these static native
// methods, so the JNI glue is checked on the host against the same
// signatures. Keep the two in step.
package org.famq;

public final class Famq {
  static {
    System.loadLibrary("famq_jni");
  }

  private Famq() {}

  // famq_status values (famq.h).
  public static final int OK = 0;
  public static final int INVALID_ARGUMENT = 1;
  public static final int NOT_FOUND = 2;
  public static final int IO_ERROR = 3;
  public static final int INVALID_FORMAT = 4;
  public static final int UNSUPPORTED = 5;
  public static final int OUT_OF_MEMORY = 6;
  public static final int CANCELLED = 7;
  public static final int INTERNAL = 8;
  public static final int BUFFER_TOO_SMALL = 9;
  public static final int CONTEXT_FULL = 10;

  // famq_role values.
  public static final int ROLE_SYSTEM = 0;
  public static final int ROLE_USER = 1;
  public static final int ROLE_ASSISTANT = 2;

  public interface TokenCallback {
    // piece: the text completed by this token ("" while a character is split); false stops.
    boolean onToken(String piece, int token);
  }

  public interface ProgressCallback {
    // false cancels (finalizeModel then throws FamqException(CANCELLED)).
    boolean onProgress(float fraction, int layer, int layers, String stage);
  }

  public static native String version();

  public static native String statusName(int status);

  public static native void forceIsa(String name) throws FamqException;

  public static native long open(String path, boolean quantized, int numThreads) throws FamqException;

  public static native void close(long handle);

  public static native String describe(long handle) throws FamqException;

  public static native String generate(long handle, String prompt, int maxNewTokens, float temperature, int topK,
      float topP, long seed, boolean chat, TokenCallback callback) throws FamqException;

  public static native String verifyBundle(String bundlePath, String publicKeyPath, boolean allowUnsigned)
      throws FamqException;

  public static native void finalizeModel(String modelDir, String bundlePath, String publicKeyPath,
      String calibTextPath, String method, int wbits, int abits, int groupSize, String privateTextPath,
      float privateWeight, boolean allowUnsigned, String outPath, ProgressCallback progress) throws FamqException;

  public static native long sessionCreate(long model, int maxNewTokens, float temperature, int topK, float topP,
      long seed, float repetitionPenalty, boolean enableThinking, String[] stopStrings) throws FamqException;

  public static native void sessionSetParams(long session, int maxNewTokens, float temperature, int topK, float topP,
      long seed, float repetitionPenalty, boolean enableThinking, String[] stopStrings) throws FamqException;

  public static native void sessionFree(long session);

  public static native void sessionReset(long session) throws FamqException;

  public static native void sessionAddMessage(long session, int role, String content) throws FamqException;

  public static native String sessionSend(long session, String message, TokenCallback callback) throws FamqException;

  public static native long[] sessionStats(long session) throws FamqException;
}
