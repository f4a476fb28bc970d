package io.moespark.ops.nn;

import io.moespark.ops.tensor.Tensor;

/** y = x W^T with W in PyTorch layout [out, in]; no bias anywhere in this model. */
public final class Linear {
  private Linear() {}

  /** y[N, out] = x[N, in] W[out, in]^T. */
  public static void forward(Tensor x, Tensor w, Tensor y) {
    x.backend().gemm(x, w, y, false, true, 0.0);
  }

  /**
   * dW += dy^T x; dx = dy W when {@code accumulateDx} is false, dx += dy W otherwise. dx may be null
   * when the input needs no gradient.
   */
  public static void backward(Tensor x, Tensor w, Tensor dy, Tensor dx, Tensor dw, boolean accumulateDx) {
    x.backend().gemm(dy, x, dw, true, false, 1.0);
    if (dx != null) {
      x.backend().gemm(dy, w, dx, false, false, accumulateDx ? 1.0 : 0.0);
    }
  }
}
