package io.moespark.ops.nn;

import io.moespark.ops.tensor.Tensor;

/**
 * Softmax cross-entropy over logits [N, V], one fused pass per row. The mean is over a global count of
 * targets (all ranks), so that gradients summed over ranks equal those of one process on the whole batch.
 */
public final class CrossEntropy {
  private CrossEntropy() {}

  /** Sum over rows of -log softmax(logits)[target]; logits are left unchanged. */
  public static double loss(Tensor logits, int[] targets) {
    check(logits, targets);
    return logits.backend().crossEntropy(logits, targets, 0);
  }

  /**
   * Returns the sum over rows of -log p[target] and overwrites logits with dlogits = (softmax - onehot)
   * / globalCount.
   */
  public static double forwardBackward(Tensor logits, int[] targets, long globalCount) {
    check(logits, targets);
    return logits.backend().crossEntropy(logits, targets, globalCount);
  }

  private static void check(Tensor logits, int[] targets) {
    long v = logits.size(1);
    for (int t : targets) {
      if (t < 0 || t >= v) {
        throw new IllegalArgumentException("target id " + t + " outside the vocabulary [0, " + v + ")");
      }
    }
  }
}
