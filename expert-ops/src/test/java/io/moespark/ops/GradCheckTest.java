package io.moespark.ops;

import static org.junit.jupiter.api.Assertions.assertThrows;

import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.opentest4j.AssertionFailedError;

/** The checker itself: exact gradients pass, gradients off by a small fraction fail. */
class GradCheckTest {
  /** L = sum_i sin(x_i) * exp(x_i / 3) * 7, a loss with a non-zero third derivative everywhere. */
  private static double loss(INDArray x) {
    double s = 0;
    for (long i = 0; i < x.length(); i++) {
      double v = x.getDouble(i);
      s += 7 * Math.sin(v) * Math.exp(v / 3);
    }
    return s;
  }

  private static INDArray exactGrad(INDArray x) {
    INDArray g = x.dup();
    for (long i = 0; i < x.length(); i++) {
      double v = x.getDouble(i);
      g.putScalar(i, 7 * Math.exp(v / 3) * (Math.cos(v) + Math.sin(v) / 3));
    }
    return g;
  }

  @Test
  void exactGradientPasses() {
    INDArray x = GradCheck.randn(1, 5, 7).muli(3);
    GradCheck.check("x", x, exactGrad(x), () -> loss(x), 100);
  }

  @Test
  void gradientOffByTenTimesTheRelativeToleranceFails() {
    INDArray x = GradCheck.randn(2, 4, 4);
    INDArray g = exactGrad(x);
    g.putScalar(5, g.getDouble(5) * (1 + 10 * GradCheck.RTOL));
    assertThrows(AssertionFailedError.class, () -> GradCheck.check("x", x, g, () -> loss(x), 100));
  }

  @Test
  void gradientWithASwappedSignFails() {
    INDArray x = GradCheck.randn(3, 3, 3);
    INDArray g = exactGrad(x);
    g.putScalar(2, -g.getDouble(2));
    assertThrows(AssertionFailedError.class, () -> GradCheck.check("x", x, g, () -> loss(x), 100));
  }
}
