package io.moespark.ops.nn;

import io.moespark.ops.tensor.Tensor;

/**
 * y = x W^T with W in PyTorch layout [out, in]; a bias b (the q/k/v projections of Qwen2-style models, the
 * only biases of this model) is added as the rank-1 product ones[N, 1] b[1, out], so that it runs as a GEMM
 * on every backend, and its gradient is ones^T dy.
 */
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

  /** y += ones b: the bias on every row ({@code ones} [N, 1] of 1s). */
  public static void addBias(Tensor ones, Tensor b, Tensor y) {
    y.backend().gemm(ones, row(b), y, false, false, 1.0);
  }

  /** db += sum over rows of dy. */
  public static void biasBackward(Tensor ones, Tensor dy, Tensor db) {
    dy.backend().gemm(ones, dy, row(db), true, false, 1.0);
  }

  private static Tensor row(Tensor b) {
    return b.backend().view(b, 0, 1, b.length());
  }
}
