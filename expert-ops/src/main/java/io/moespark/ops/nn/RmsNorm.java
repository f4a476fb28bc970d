package io.moespark.ops.nn;

import io.moespark.ops.tensor.Parallel;
import io.moespark.ops.tensor.Raw;
import org.nd4j.linalg.api.ndarray.INDArray;

/** RMSNorm: y = x * rsqrt(mean(x^2) + eps) * w, row-wise over [N, D], as fused row loops. */
public final class RmsNorm {
  private RmsNorm() {}

  /** Writes y and returns rstd [N] (what backward needs). */
  public static double[] forward(INDArray x, INDArray w, double eps, INDArray y) {
    int n = (int) x.size(0), d = (int) x.size(1);
    double[] rstd = new double[n];
    Raw in = Raw.of(x), gain = Raw.of(w), out = Raw.of(y);
    Parallel.rows(n, (from, to) -> {
      for (int r = from; r < to; r++) {
        int o = r * d;
        double ss = 0;
        for (int c = 0; c < d; c++) {
          double v = in.get(o + c);
          ss += v * v;
        }
        double s = 1 / Math.sqrt(ss / d + eps);
        rstd[r] = s;
        for (int c = 0; c < d; c++) {
          out.set(o + c, in.get(o + c) * s * gain.get(c));
        }
      }
    });
    return rstd;
  }

  /** dw += sum_rows dy * xhat; dx += rstd * (g - xhat * mean(g * xhat)) with g = dy * w. */
  public static void backward(INDArray x, INDArray w, double[] rstd, INDArray dy, INDArray dx, INDArray dw) {
    int n = (int) x.size(0), d = (int) x.size(1);
    Raw in = Raw.of(x), gain = Raw.of(w), dOut = Raw.of(dy), dIn = Raw.of(dx), dGain = Raw.of(dw);
    Parallel.rows(n, (from, to) -> {
      for (int r = from; r < to; r++) {
        int o = r * d;
        double s = rstd[r], dot = 0;
        for (int c = 0; c < d; c++) {
          dot += dOut.get(o + c) * gain.get(c) * in.get(o + c) * s;
        }
        double mean = dot / d;
        for (int c = 0; c < d; c++) {
          double xhat = in.get(o + c) * s;
          dIn.add(o + c, s * (dOut.get(o + c) * gain.get(c) - xhat * mean));
        }
      }
    });
    // The gain gradient sums over rows: one thread, row order, so it is bit-reproducible.
    for (int r = 0; r < n; r++) {
      int o = r * d;
      for (int c = 0; c < d; c++) {
        dGain.add(c, dOut.get(o + c) * in.get(o + c) * rstd[r]);
      }
    }
  }
}
