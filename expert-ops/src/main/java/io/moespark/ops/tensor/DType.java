package io.moespark.ops.tensor;

/**
 * Element types of the project's tensors: F32 trains, F64 serves the gradient checks and the routing
 * arithmetic (probabilities, gates, statistics), BF16 is the half-width storage an accelerator computes
 * in (round to nearest even from F32), I32 holds token ids and the row indices of the MoE layout
 * transform.
 */
public enum DType {
  F32(4),
  F64(8),
  BF16(2),
  I32(4);

  private final int width;

  DType(int width) {
    this.width = width;
  }

  /** Bytes per element. */
  public int width() {
    return width;
  }

  /** Whether the type holds real numbers (every type but I32). */
  public boolean isFloating() {
    return this != I32;
  }
}
