package io.moespark.ops.optim;

import io.moespark.ops.moe.Reducer;
import io.moespark.ops.tensor.Param;
import io.moespark.ops.tensor.ParamStore;
import io.moespark.ops.tensor.Tensor;

/** Clipping by the global gradient norm over all ranks (PyTorch clip_grad_norm_ semantics). */
public final class GradClip {
  private GradClip() {}

  /**
   * The global L2 norm. Dense gradients are replicas (already all-reduced) and count once; expert
   * gradients count on their primary holder each, so their squares are summed over ranks. Squares are summed on the
   * backend per parameter in creation order (a fixed order, so the norm is bit-reproducible), one
   * reduction per block; the two sums reach the host in one copy (the norm is a logged scalar).
   */
  public static double globalNorm(ParamStore params, Reducer reducer) {
    Tensor out = params.gradSquares();
    params.backend().sumSquares(params.normParts(Param.Kind.DENSE), out, Param.Kind.DENSE.ordinal());
    params.backend().sumSquares(params.normParts(Param.Kind.EXPERT), out, Param.Kind.EXPERT.ordinal());
    double[] sq = out.toDoubles();
    double[] experts = {sq[Param.Kind.EXPERT.ordinal()]};
    reducer.sum(experts);
    return Math.sqrt(sq[Param.Kind.DENSE.ordinal()] + experts[0]);
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
