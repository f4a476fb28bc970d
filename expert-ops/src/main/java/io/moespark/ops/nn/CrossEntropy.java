package io.moespark.ops.nn;

import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.ops.transforms.Transforms;

/**
 * Softmax cross-entropy over logits [N, V]. The mean is over a global count of targets (all ranks), so
 * that gradients summed over ranks equal those of one process on the whole batch.
 */
public final class CrossEntropy {
  private CrossEntropy() {}

  /** Sum over rows of -log softmax(logits)[target]; logits are left unchanged. */
  public static double loss(INDArray logits, int[] targets) {
    return nll(logits.dup(), targets);
  }

  /**
   * Returns the sum over rows of -log p[target] and overwrites logits with dlogits = (softmax - onehot)
   * / globalCount.
   */
  public static double forwardBackward(INDArray logits, int[] targets, long globalCount) {
    double loss = nll(logits, targets);
    // logits now hold log-probabilities.
    Transforms.exp(logits, false);
    for (int i = 0; i < targets.length; i++) {
      logits.putScalar(i, targets[i], logits.getDouble(i, targets[i]) - 1.0);
    }
    logits.divi(globalCount);
    return loss;
  }

  /** Turns logits into log-probabilities in place and returns the summed negative log-likelihood. */
  private static double nll(INDArray logits, int[] targets) {
    long v = logits.size(1);
    logits.subiColumnVector(logits.max(true, 1));
    INDArray lse = Transforms.log(Transforms.exp(logits, true).sum(true, 1), false);
    logits.subiColumnVector(lse);
    double loss = 0;
    for (int i = 0; i < targets.length; i++) {
      if (targets[i] < 0 || targets[i] >= v) {
        throw new IllegalArgumentException("target id " + targets[i] + " outside the vocabulary [0, " + v + ")");
      }
      loss -= logits.getDouble(i, targets[i]);
    }
    return loss;
  }
}
