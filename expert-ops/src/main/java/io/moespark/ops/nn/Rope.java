package io.moespark.ops.nn;

import static org.nd4j.linalg.indexing.NDArrayIndex.all;
import static org.nd4j.linalg.indexing.NDArrayIndex.interval;

import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * Rotary position embedding, "rotate halves" form, on heads laid out as [N, T, hd] (N = batch * heads):
 * out = [x1 cos - x2 sin, x1 sin + x2 cos], freq_j = theta^(-j / half). Holds its cos/sin tables for
 * one (N, T, hd), rebuilt only when the shape changes.
 */
public final class Rope {
  private final double theta;
  private INDArray cos;
  private INDArray sin;

  public Rope(double theta) {
    this.theta = theta;
  }

  public void forward(INDArray x, INDArray out) {
    tables(x);
    long half = x.size(2) / 2;
    INDArray x1 = x.get(all(), all(), interval(0, half)), x2 = x.get(all(), all(), interval(half, 2 * half));
    out.get(all(), all(), interval(0, half)).assign(x1.mul(cos).subi(x2.mul(sin)));
    out.get(all(), all(), interval(half, 2 * half)).assign(x1.mul(sin).addi(x2.mul(cos)));
  }

  /** The transpose of the rotation: dx1 = d1 cos + d2 sin, dx2 = d2 cos - d1 sin. */
  public void backward(INDArray dout, INDArray dx) {
    tables(dout);
    long half = dout.size(2) / 2;
    INDArray d1 = dout.get(all(), all(), interval(0, half)), d2 = dout.get(all(), all(), interval(half, 2 * half));
    dx.get(all(), all(), interval(0, half)).assign(d1.mul(cos).addi(d2.mul(sin)));
    dx.get(all(), all(), interval(half, 2 * half)).assign(d2.mul(cos).subi(d1.mul(sin)));
  }

  private void tables(INDArray x) {
    long n = x.size(0), t = x.size(1), half = x.size(2) / 2;
    if (cos != null && cos.size(0) == n && cos.size(1) == t && cos.size(2) == half && cos.dataType() == x.dataType()) {
      return;
    }
    double[] c = new double[(int) (t * half)], s = new double[c.length];
    for (int p = 0; p < t; p++) {
      for (int j = 0; j < half; j++) {
        double angle = p * Math.pow(theta, -(double) j / half);
        c[(int) (p * half + j)] = Math.cos(angle);
        s[(int) (p * half + j)] = Math.sin(angle);
      }
    }
    DataType type = x.dataType();
    INDArray c1 = Nd4j.create(c, new long[] {1, t, half}, DataType.DOUBLE).castTo(type);
    INDArray s1 = Nd4j.create(s, new long[] {1, t, half}, DataType.DOUBLE).castTo(type);
    cos = c1.repeat(0, n);
    sin = s1.repeat(0, n);
  }
}
