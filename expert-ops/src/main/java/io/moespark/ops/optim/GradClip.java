package io.moespark.ops.optim;

import io.moespark.ops.moe.Reducer;
import io.moespark.ops.tensor.Param;
import io.moespark.ops.tensor.ParamStore;

/** Clipping by the global gradient norm over all ranks (PyTorch clip_grad_norm_ semantics). */
public final class GradClip {
  private GradClip() {}

  /**
   * The global L2 norm. Dense gradients are replicas (already all-reduced) and count once; expert
   * gradients live on one rank each, so their squares are summed over ranks. Squares are summed per
   * parameter in creation order (a fixed order, so the norm is bit-reproducible).
   */
  public static double globalNorm(ParamStore params, Reducer reducer) {
    double[] sq = new double[2];
    for (Param p : params.all()) {
      sq[p.isExpert() ? 1 : 0] += params.backend().sumSquares(p.grad());
    }
    double[] experts = {sq[1]};
    reducer.sum(experts);
    return Math.sqrt(sq[0] + experts[0]);
  }

  /** Scales every gradient by maxNorm / (norm + 1e-6) when that is below 1; returns the norm before. */
  public static double clip(ParamStore params, double maxNorm, Reducer reducer) {
    double norm = globalNorm(params, reducer);
    double coef = maxNorm / (norm + 1e-6);
    if (maxNorm > 0 && coef < 1) {
      for (Param.Kind k : Param.Kind.values()) {
        params.grads(k).muli(coef);
      }
    }
    return norm;
  }
}
