package io.moespark.ops.config;

/**
 * A configuration or input problem that a rerun would meet again (a bad key or value, a missing or corrupt
 * input file); the message names the file, key or option and what was expected. Commands exit 2 on it.
 */
public final class ConfigException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  public ConfigException(String message) {
    super(message);
  }

  public ConfigException(String message, Throwable cause) {
    super(message, cause);
  }
}
