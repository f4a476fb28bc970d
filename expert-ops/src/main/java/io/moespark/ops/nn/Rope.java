package io.moespark.ops.nn;

import io.moespark.ops.backend.Backend;
import io.moespark.ops.tensor.DType;
import io.moespark.ops.tensor.Tensor;

/**
 * Multi-head layout and rotary position embedding in one pass. Forward takes rows [B*T, D] (D = H * hd)
 * to heads [B*H, T, hd] and, when rotating, applies RoPE in the "rotate halves" form: with half = hd / 2
 * and freq_j = theta^(-j / half), [x1 cos - x2 sin, x1 sin + x2 cos] at position t (angle t * freq_j).
 * Backward is the transpose: heads back to rows, rotated by -angle. The frequencies may be scaled for
 * long contexts ({@link RopeScaling}). A Rope built with theta 0 only
 * changes the layout (for v and the attention output). The angle tables are computed once per shape in
 * float64 on the host and kept on the backend.
 */
public final class Rope {
  private final double theta;
  private final RopeScaling scaling;
  private Tensor cos;
  private Tensor sin;

  public Rope(double theta) {
    this(theta, RopeScaling.NONE);
  }

  /** RoPE with base {@code theta} and its frequencies scaled as {@code scaling} says. */
  public Rope(double theta, RopeScaling scaling) {
    this.theta = theta;
    this.scaling = scaling;
  }

  /** A layout-only transform (no rotation). */
  public static Rope layoutOnly() {
    return new Rope(0);
  }

  /** out[b*H + h, t, :] = rotate_t(x[b*T + t, h*hd : (h+1)*hd]). */
  public void forward(Tensor x, int batch, int heads, Tensor out) {
    apply(x, batch, heads, out, false);
  }

  /** dx[b*T + t, h*hd : (h+1)*hd] = rotate_t^T(dout[b*H + h, t, :]); overwrites dx. */
  public void backward(Tensor dout, int batch, int heads, Tensor dx) {
    apply(dx, batch, heads, dout, true);
  }

  /**
   * Generation: out[h, i, :] = rotate_{start+i}(x[i, h*hd : (h+1)*hd]) for the {@code out.size(1)} rows of one
   * sequence at positions start, start+1, ... (the rows of the angle tables from {@code start} on).
   */
  public void forwardAt(Tensor x, int start, int heads, Tensor out) {
    Backend be = x.backend();
    int count = (int) out.size(1), half = (int) out.size(2) / 2;
    if (theta <= 0) {
      be.ropeLayout(x, out, 1, heads, null, null, false);
      return;
    }
    if (cos == null || cos.backend() != be || cos.size(0) < start + count || cos.size(1) != half) {
      tables(be, Math.max(start + count, cos == null ? 0 : 2 * (int) cos.size(0)), half); // grows by doubling
    }
    be.ropeLayout(x, out, 1, heads, be.view(cos, (long) start * half, count, half),
        be.view(sin, (long) start * half, count, half), false);
  }

  private void apply(Tensor rows, int batch, int heads, Tensor split, boolean toRows) {
    boolean rotate = theta > 0;
    if (rotate) {
      tables(rows.backend(), (int) split.size(1), (int) split.size(2) / 2);
    }
    rows.backend().ropeLayout(rows, split, batch, heads, rotate ? cos : null, rotate ? sin : null, toRows);
  }

  private void tables(Backend backend, int seq, int half) {
    if (cos != null && cos.backend() == backend && cos.size(0) == seq && cos.size(1) == half) {
      return;
    }
    double[] c = new double[seq * half], s = new double[seq * half], freq = scaling.inverseFrequencies(theta, half);
    for (int p = 0; p < seq; p++) {
      for (int j = 0; j < half; j++) {
        double angle = p * freq[j];
        c[p * half + j] = Math.cos(angle);
        s[p * half + j] = Math.sin(angle);
      }
    }
    cos = backend.empty(DType.F64, seq, half);
    sin = backend.empty(DType.F64, seq, half);
    backend.fromDoubles(c, cos);
    backend.fromDoubles(s, sin);
  }
}
