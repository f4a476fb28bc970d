package io.moespark.ops.nn;

import io.moespark.ops.tensor.Tensor;

/**
 * Softmax cross-entropy over logits [N, V] and targets (I32 [N]), one fused pass per row; the sum goes
 * into a one-element F64 tensor on the backend (read with the step's logged scalars). The mean is over a
 * global count of targets (all ranks), so that gradients summed over ranks equal those of one process on
 * the whole batch.
 */
public final class CrossEntropy {
  private CrossEntropy() {}

  /** Checks host targets before they go up: each in [0, vocab). */
  public static void checkTargets(int[] targets, long vocab) {
    for (int t : targets) {
      if (t < 0 || t >= vocab) {
        throw new IllegalArgumentException("target id " + t + " outside the vocabulary [0, " + vocab + ")");
      }
    }
  }

  /** lossSum[0] = sum over rows of -log softmax(logits)[target]; logits are left unchanged. */
  public static void loss(Tensor logits, Tensor targets, Tensor lossSum) {
    logits.backend().crossEntropy(logits, targets, 0, lossSum);
  }

  /**
   * lossSum[0] = sum over rows of -log p[target]; overwrites logits with dlogits = (softmax - onehot) /
   * globalCount.
   */
  public static void forwardBackward(Tensor logits, Tensor targets, long globalCount, Tensor lossSum) {
    logits.backend().crossEntropy(logits, targets, globalCount, lossSum);
  }
}
