package io.moespark.ops.nn;

import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.ops.transforms.Transforms;

/** RMSNorm: y = x * rsqrt(mean(x^2) + eps) * w, row-wise over [N, D]. */
public final class RmsNorm {
  private RmsNorm() {}

  /** Writes y and returns rstd [N, 1], which backward needs. */
  public static INDArray forward(INDArray x, INDArray w, double eps, INDArray y) {
    INDArray rstd = Transforms.pow(x.mul(x).mean(true, 1).addi(eps), -0.5, false);
    y.assign(x.mulColumnVector(rstd).muliRowVector(w));
    return rstd;
  }

  /** dw += sum(dy * xhat); dx += rstd * (g - xhat * mean(g * xhat)) with g = dy * w. */
  public static void backward(INDArray x, INDArray w, INDArray rstd, INDArray dy, INDArray dx, INDArray dw) {
    INDArray xhat = x.mulColumnVector(rstd);
    dw.addi(dy.mul(xhat).sum(0).reshape(dw.shape()));
    INDArray g = dy.mulRowVector(w);
    INDArray m = g.mul(xhat).mean(true, 1);
    dx.addi(g.subi(xhat.muliColumnVector(m)).muliColumnVector(rstd));
  }
}
