package io.moespark.ops.moe;

import io.moespark.ops.tensor.Tensor;

/**
 * The hook through which global statistics enter: sums over all ranks, in place. Identity in one
 * process ({@link #LOCAL}). Used for aux-loss counts, token counts, dense gradients and the gradient norm.
 */
public interface Reducer {
  void sum(double[] values);

  void sum(Tensor values);

  /** This reducer for the next call, labelled as {@link Exchange#labelled} says. */
  default Reducer labelled(int layer, boolean toExperts) {
    return this;
  }

  Reducer LOCAL = new Reducer() {
    @Override
    public void sum(double[] values) {}

    @Override
    public void sum(Tensor values) {}
  };
}
