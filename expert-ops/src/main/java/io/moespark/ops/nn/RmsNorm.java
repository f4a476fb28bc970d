package io.moespark.ops.nn;

import io.moespark.ops.tensor.Tensor;

/** RMSNorm: y = x * rsqrt(mean(x^2) + eps) * w, row-wise over [N, D]. */
public final class RmsNorm {
  private RmsNorm() {}

  /** Writes y and rstd [N] (F64: what backward needs). */
  public static void forward(Tensor x, Tensor w, double eps, Tensor y, Tensor rstd) {
    x.backend().rmsNormForward(x, w, eps, y, rstd);
  }

  /** dw += sum_rows dy * xhat; dx += rstd * (g - xhat * mean(g * xhat)) with g = dy * w. */
  public static void backward(Tensor x, Tensor w, Tensor rstd, Tensor dy, Tensor dx, Tensor dw) {
    x.backend().rmsNormBackward(x, w, rstd, dy, dx, dw);
  }
}
