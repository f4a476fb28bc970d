package io.moespark.ops;

import static org.junit.jupiter.api.Assertions.fail;

import java.util.SplittableRandom;
import java.util.function.DoubleSupplier;
import java.util.function.LongToDoubleFunction;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * Central finite differences in float64 against an analytic gradient, with a tolerance that follows
 * from the arithmetic rather than from one machine's BLAS kernels.
 *
 * <p>The quotient D(h) = (L(x + h) - L(x - h)) / 2h has two errors: truncation, about h² L''' / 6, and
 * roundoff, about δ / h where δ is the absolute rounding error of one evaluation of L (which depends on
 * how the BLAS kernel orders its sums, so it differs between machines). The step is the textbook optimum
 * h = ε^(1/3) · max(1, |x|), which balances the two. Both are then measured for each coordinate, not
 * assumed: D(h) - D(2h) = -3 h² L''' / 6 + (roundoff of either), so |D(h) - D(2h)| bounds the error of
 * D(h) up to a small factor. Each coordinate passes when
 *
 * <pre>
 * |analytic - D(h)| <= RTOL · max(|analytic|, |D(h)|) + 2 |D(h) - D(2h)| + 8 ε max|L| / h
 * </pre>
 *
 * the last term being the rounding of the loss value itself (the floor when the two quotients agree by
 * chance). A wrong gradient is off by a fraction of its own size, far above this bound
 * ({@code GradCheckTest} shows one failing).
 */
public final class GradCheck {
  /** The relative part: what float64 arithmetic of these small ops resolves with a wide margin. */
  static final double RTOL = 1e-5;
  private static final double EPS = Math.ulp(1.0);
  private static final double STEP = Math.cbrt(EPS);

  private GradCheck() {}

  public static INDArray randn(long seed, long... shape) {
    return Nd4j.create(gaussian(seed, (int) java.util.Arrays.stream(shape).reduce(1, (a, b) -> a * b)), shape,
        DataType.DOUBLE);
  }

  /** n standard normal values from {@code seed}. */
  public static double[] gaussian(long seed, int n) {
    SplittableRandom r = new SplittableRandom(seed);
    double[] v = new double[n];
    for (int i = 0; i < v.length; i++) {
      v[i] = r.nextGaussian();
    }
    return v;
  }

  /**
   * Checks up to {@code maxCoords} coordinates of {@code x} (all when it has fewer): the analytic
   * {@code grad} against central differences, within the tolerance of the class comment.
   */
  public static void check(String name, INDArray x, INDArray grad, DoubleSupplier loss, int maxCoords) {
    if (x.dataType() != DataType.DOUBLE) {
      throw new IllegalArgumentException("gradient checks run in float64");
    }
    check(name, x.length(), x::getDouble, x::putScalar, grad::getDouble, loss, maxCoords);
  }

  /**
   * The same over host arrays (the backend conformance suite: {@code loss} uploads {@code x} to the
   * backend under test each time it runs).
   */
  public static void check(String name, double[] x, double[] grad, DoubleSupplier loss, int maxCoords) {
    check(name, x.length, i -> x[(int) i], (i, v) -> x[(int) i] = v, i -> grad[(int) i], loss, maxCoords);
  }

  private interface Setter {
    void set(long i, double v);
  }

  private static void check(String name, long n, LongToDoubleFunction get, Setter set, LongToDoubleFunction grad,
      DoubleSupplier loss, int maxCoords) {
    SplittableRandom r = new SplittableRandom(n * 31 + name.hashCode());
    for (int c = 0; c < Math.min(n, maxCoords); c++) {
      long i = n <= maxCoords ? c : r.nextLong(n);
      double orig = get.applyAsDouble(i), h = STEP * Math.max(1.0, Math.abs(orig));
      double[] l = new double[4];
      double[] steps = {h, -h, 2 * h, -2 * h};
      for (int k = 0; k < 4; k++) {
        set.set(i, orig + steps[k]);
        l[k] = loss.getAsDouble();
      }
      set.set(i, orig);
      double numeric = (l[0] - l[1]) / (2 * h), coarse = (l[2] - l[3]) / (4 * h), analytic = grad.applyAsDouble(i);
      double scale = Math.max(Math.max(Math.abs(l[0]), Math.abs(l[1])), Math.max(Math.abs(l[2]), Math.abs(l[3])));
      double tol = RTOL * Math.max(Math.abs(numeric), Math.abs(analytic)) + 2 * Math.abs(numeric - coarse)
          + 8 * EPS * scale / h;
      double err = Math.abs(numeric - analytic);
      if (!(err <= tol)) {
        fail(name + "[" + i + "]: analytic " + analytic + " vs numeric " + numeric + " (|diff| " + err
            + " > tolerance " + tol + "; D(2h) " + coarse + ", h " + h + ")");
      }
    }
  }
}
