package io.moespark.ops.tensor;

/** Element types of the project's tensors: F32 trains, F64 serves the gradient checks. */
public enum DType {
  F32(4),
  F64(8);

  private final int width;

  DType(int width) {
    this.width = width;
  }

  /** Bytes per element. */
  public int width() {
    return width;
  }
}
