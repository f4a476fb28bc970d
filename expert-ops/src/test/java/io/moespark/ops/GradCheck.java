package io.moespark.ops;

import static org.junit.jupiter.api.Assertions.fail;

import java.util.SplittableRandom;
import java.util.function.DoubleSupplier;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/** Central finite differences in float64 against an analytic gradient. */
public final class GradCheck {
  private GradCheck() {}

  public static INDArray randn(long seed, long... shape) {
    SplittableRandom r = new SplittableRandom(seed);
    double[] v = new double[(int) java.util.Arrays.stream(shape).reduce(1, (a, b) -> a * b)];
    for (int i = 0; i < v.length; i++) {
      v[i] = r.nextGaussian();
    }
    return Nd4j.create(v, shape, DataType.DOUBLE);
  }

  /**
   * Checks up to {@code maxCoords} coordinates of {@code x} (all when it has fewer): the analytic
   * {@code grad} against (L(x + h) - L(x - h)) / 2h with h = 1e-6.
   */
  public static void check(String name, INDArray x, INDArray grad, DoubleSupplier loss, int maxCoords) {
    if (x.dataType() != DataType.DOUBLE) {
      throw new IllegalArgumentException("gradient checks run in float64");
    }
    long n = x.length();
    SplittableRandom r = new SplittableRandom(n * 31 + name.hashCode());
    double h = 1e-6, worst = 0;
    for (int c = 0; c < Math.min(n, maxCoords); c++) {
      long i = n <= maxCoords ? c : r.nextLong(n);
      double orig = x.getDouble(i);
      x.putScalar(i, orig + h);
      double lp = loss.getAsDouble();
      x.putScalar(i, orig - h);
      double lm = loss.getAsDouble();
      x.putScalar(i, orig);
      double numeric = (lp - lm) / (2 * h), analytic = grad.getDouble(i);
      double err = Math.abs(numeric - analytic) / Math.max(1e-6, Math.abs(numeric) + Math.abs(analytic));
      worst = Math.max(worst, err);
      if (err > 1e-5 && Math.abs(numeric - analytic) > 1e-8) {
        fail(name + "[" + i + "]: analytic " + analytic + " vs numeric " + numeric + " (rel err " + err + ")");
      }
    }
  }
}
