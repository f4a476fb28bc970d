package io.moespark.ops.nn;

import io.moespark.ops.tensor.Parallel;
import io.moespark.ops.tensor.Raw;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * Softmax cross-entropy over logits [N, V], one fused pass per row. The mean is over a global count of
 * targets (all ranks), so that gradients summed over ranks equal those of one process on the whole batch.
 */
public final class CrossEntropy {
  private CrossEntropy() {}

  /** Sum over rows of -log softmax(logits)[target]; logits are left unchanged. */
  public static double loss(INDArray logits, int[] targets) {
    return run(logits, targets, 0);
  }

  /**
   * Returns the sum over rows of -log p[target] and overwrites logits with dlogits = (softmax - onehot)
   * / globalCount.
   */
  public static double forwardBackward(INDArray logits, int[] targets, long globalCount) {
    return run(logits, targets, globalCount);
  }

  /** gradScale 0: loss only. */
  private static double run(INDArray logits, int[] targets, long globalCount) {
    int n = (int) logits.size(0), v = (int) logits.size(1);
    for (int t : targets) {
      if (t < 0 || t >= v) {
        throw new IllegalArgumentException("target id " + t + " outside the vocabulary [0, " + v + ")");
      }
    }
    double[] rowLoss = new double[n];
    Raw z = Raw.of(logits);
    Parallel.rows(n, (from, to) -> {
      for (int r = from; r < to; r++) {
        int o = r * v;
        double max = Double.NEGATIVE_INFINITY;
        for (int c = 0; c < v; c++) {
          max = Math.max(max, z.get(o + c));
        }
        double target = z.get(o + targets[r]);
        double sum = 0;
        if (globalCount > 0) {
          for (int c = 0; c < v; c++) {
            double e = Math.exp(z.get(o + c) - max);
            z.set(o + c, e);
            sum += e;
          }
          double norm = 1.0 / (sum * globalCount);
          for (int c = 0; c < v; c++) {
            z.set(o + c, z.get(o + c) * norm);
          }
          z.add(o + targets[r], -1.0 / globalCount);
        } else {
          for (int c = 0; c < v; c++) {
            sum += Math.exp(z.get(o + c) - max);
          }
        }
        rowLoss[r] = max + Math.log(sum) - target;
      }
    });
    double loss = 0;
    for (double l : rowLoss) {
      loss += l;
    }
    return loss;
  }
}
