package io.moespark.ops.nn;

import io.moespark.ops.tensor.Parallel;
import io.moespark.ops.tensor.Raw;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * Multi-head layout and rotary position embedding in one pass. Forward takes rows [B*T, D] (D = H * hd)
 * to heads [B*H, T, hd] and, when rotating, applies RoPE in the "rotate halves" form: with half = hd / 2
 * and freq_j = theta^(-j / half), [x1 cos - x2 sin, x1 sin + x2 cos] at position t (angle t * freq_j).
 * Backward is the transpose: heads back to rows, rotated by -angle. A Rope built with theta 0 only
 * changes the layout (for v and the attention output).
 */
public final class Rope {
  private final double theta;
  private double[] cos;
  private double[] sin;
  private int tableSeq;
  private int tableHalf;

  public Rope(double theta) {
    this.theta = theta;
  }

  /** A layout-only transform (no rotation). */
  public static Rope layoutOnly() {
    return new Rope(0);
  }

  /** out[b*H + h, t, :] = rotate_t(x[b*T + t, h*hd : (h+1)*hd]). */
  public void forward(INDArray x, int batch, int heads, INDArray out) {
    apply(x, batch, heads, out, false);
  }

  /** dx[b*T + t, h*hd : (h+1)*hd] = rotate_t^T(dout[b*H + h, t, :]); overwrites dx. */
  public void backward(INDArray dout, int batch, int heads, INDArray dx) {
    apply(dx, batch, heads, dout, true);
  }

  private void apply(INDArray rows, int batch, int heads, INDArray split, boolean toRows) {
    int seq = (int) split.size(1), hd = (int) split.size(2), half = hd / 2, d = heads * hd;
    boolean rotate = theta > 0;
    if (rotate) {
      tables(seq, half);
    }
    Raw r = Raw.of(rows), s = Raw.of(split);
    Parallel.rows(batch * heads * seq, (from, to) -> {
      for (int i = from; i < to; i++) {
        int t = i % seq, h = (i / seq) % heads, b = i / (seq * heads);
        int ro = (b * seq + t) * d + h * hd, so = i * hd;
        if (!rotate) {
          for (int c = 0; c < hd; c++) {
            if (toRows) {
              r.set(ro + c, s.get(so + c));
            } else {
              s.set(so + c, r.get(ro + c));
            }
          }
          continue;
        }
        for (int j = 0; j < half; j++) {
          double c = cos[t * half + j], sn = sin[t * half + j];
          if (toRows) {
            double d1 = s.get(so + j), d2 = s.get(so + j + half);
            r.set(ro + j, d1 * c + d2 * sn);
            r.set(ro + j + half, d2 * c - d1 * sn);
          } else {
            double x1 = r.get(ro + j), x2 = r.get(ro + j + half);
            s.set(so + j, x1 * c - x2 * sn);
            s.set(so + j + half, x1 * sn + x2 * c);
          }
        }
      }
    });
  }

  private void tables(int seq, int half) {
    if (cos != null && tableSeq == seq && tableHalf == half) {
      return;
    }
    cos = new double[seq * half];
    sin = new double[seq * half];
    for (int p = 0; p < seq; p++) {
      for (int j = 0; j < half; j++) {
        double angle = p * Math.pow(theta, -(double) j / half);
        cos[p * half + j] = Math.cos(angle);
        sin[p * half + j] = Math.sin(angle);
      }
    }
    tableSeq = seq;
    tableHalf = half;
  }
}
