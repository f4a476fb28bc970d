package io.moespark.ops.optim;

import io.moespark.ops.moe.Reducer;
import io.moespark.ops.tensor.Param;
import java.util.List;

/** Clipping by the global gradient norm over all ranks (PyTorch clip_grad_norm_ semantics). */
public final class GradClip {
  private GradClip() {}

  /**
   * The global L2 norm. Dense gradients are replicas (already all-reduced) and count once; expert
   * gradients live on one rank each, so their squares are summed over ranks.
   */
  public static double globalNorm(List<Param> params, Reducer reducer) {
    double[] sq = new double[2];
    for (Param p : params) {
      double n = p.grad().norm2Number().doubleValue();
      sq[p.isExpert() ? 1 : 0] += n * n;
    }
    double[] experts = {sq[1]};
    reducer.sum(experts);
    return Math.sqrt(sq[0] + experts[0]);
  }

  /** Scales every gradient by maxNorm / (norm + 1e-6) when that is below 1; returns the norm before. */
  public static double clip(List<Param> params, double maxNorm, Reducer reducer) {
    double norm = globalNorm(params, reducer);
    double coef = maxNorm / (norm + 1e-6);
    if (maxNorm > 0 && coef < 1) {
      for (Param p : params) {
        p.grad().muli(coef);
      }
    }
    return norm;
  }
}
