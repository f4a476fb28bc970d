package io.moespark.ops.tensor;

import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * A named trainable tensor and its gradient. {@code expert} is the expert index for expert weights
 * (they live on one shard and are never all-reduced) and -1 for dense weights (replicated on every rank).
 */
public record Param(String name, INDArray value, INDArray grad, int expert) {
  public boolean isExpert() {
    return expert >= 0;
  }

  /** Weight decay applies to matrices only (not to norm gains). */
  public boolean decays() {
    return value.rank() == 2;
  }
}
