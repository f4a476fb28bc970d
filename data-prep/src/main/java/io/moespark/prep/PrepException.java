package io.moespark.prep;

/** Bad input or options; the message names the path, field or option and what was expected. */
public final class PrepException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  public PrepException(String message) {
    super(message);
  }

  public PrepException(String message, Throwable cause) {
    super(message, cause);
  }
}
