// Host-test mirror of app/src/main/kotlin/org/famq/Famq.kt (FamqException):
// the same class name and constructor the JNI glue looks up.
package org.famq;

public class FamqException extends Exception {
  private static final long serialVersionUID = 1L;
  public final int status;

  public FamqException(int status, String message) {
    super(Famq.statusName(status) + ": " + message);
    this.status = status;
  }
}
