package io.moespark.ops.tensor;

import java.nio.DoubleBuffer;
import java.nio.FloatBuffer;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * Row gathers and scatters over raw buffers: the layout transforms of the MoE layer and the embedding
 * gradient. Sequential loops, so results are bit-reproducible; no per-row objects. Arrays must be
 * c-order matrices (views with an offset are fine) of FLOAT or DOUBLE.
 */
public final class Rows {
  private Rows() {}

  /** dst[i] = src[srcRow[i]] for i in [0, count); a negative srcRow[i] gives a zero row. */
  public static void gather(INDArray src, int[] srcRow, int count, INDArray dst) {
    if (count == 0) {
      return;
    }
    int d = width(src, dst);
    long so = src.offset(), dOff = dst.offset();
    if (src.dataType() == DataType.FLOAT) {
      FloatBuffer s = src.data().asNioFloat(), t = dst.data().asNioFloat();
      for (int i = 0; i < count; i++) {
        long from = so + (long) srcRow[i] * d, to = dOff + (long) i * d;
        for (int c = 0; c < d; c++) {
          t.put((int) (to + c), srcRow[i] < 0 ? 0f : s.get((int) (from + c)));
        }
      }
    } else {
      DoubleBuffer s = src.data().asNioDouble(), t = dst.data().asNioDouble();
      for (int i = 0; i < count; i++) {
        long from = so + (long) srcRow[i] * d, to = dOff + (long) i * d;
        for (int c = 0; c < d; c++) {
          t.put((int) (to + c), srcRow[i] < 0 ? 0.0 : s.get((int) (from + c)));
        }
      }
    }
  }

  /**
   * dst[dstRow[i]] += scale[i] * src[srcRow[i]] for i in [0, count); scale null means 1. Pairs with a
   * negative row on either side are skipped (dropped assignments).
   */
  public static void scatterAdd(INDArray src, int[] srcRow, double[] scale, int[] dstRow, int count, INDArray dst) {
    if (count == 0 || src.isEmpty()) {
      return;
    }
    int d = width(src, dst);
    long so = src.offset(), dOff = dst.offset();
    if (src.dataType() == DataType.FLOAT) {
      FloatBuffer s = src.data().asNioFloat(), t = dst.data().asNioFloat();
      for (int i = 0; i < count; i++) {
        if (srcRow[i] < 0 || dstRow[i] < 0) {
          continue;
        }
        long from = so + (long) srcRow[i] * d, to = dOff + (long) dstRow[i] * d;
        float g = scale == null ? 1f : (float) scale[i];
        for (int c = 0; c < d; c++) {
          t.put((int) (to + c), t.get((int) (to + c)) + g * s.get((int) (from + c)));
        }
      }
    } else {
      DoubleBuffer s = src.data().asNioDouble(), t = dst.data().asNioDouble();
      for (int i = 0; i < count; i++) {
        if (srcRow[i] < 0 || dstRow[i] < 0) {
          continue;
        }
        long from = so + (long) srcRow[i] * d, to = dOff + (long) dstRow[i] * d;
        double g = scale == null ? 1.0 : scale[i];
        for (int c = 0; c < d; c++) {
          t.put((int) (to + c), t.get((int) (to + c)) + g * s.get((int) (from + c)));
        }
      }
    }
  }

  /** out[i] = a[aRow[i]] . b[bRow[i]] (0 where bRow[i] is negative). */
  public static void rowDots(INDArray a, int[] aRow, INDArray b, int[] bRow, int count, double[] out) {
    if (count == 0) {
      return;
    }
    if (b.isEmpty()) {
      java.util.Arrays.fill(out, 0, count, 0.0);
      return;
    }
    int d = width(a, b);
    long ao = a.offset(), bo = b.offset();
    if (a.dataType() == DataType.FLOAT) {
      FloatBuffer x = a.data().asNioFloat(), y = b.data().asNioFloat();
      for (int i = 0; i < count; i++) {
        if (bRow[i] < 0) {
          out[i] = 0;
          continue;
        }
        long p = ao + (long) aRow[i] * d, q = bo + (long) bRow[i] * d;
        double acc = 0;
        for (int c = 0; c < d; c++) {
          acc += x.get((int) (p + c)) * y.get((int) (q + c));
        }
        out[i] = acc;
      }
    } else {
      DoubleBuffer x = a.data().asNioDouble(), y = b.data().asNioDouble();
      for (int i = 0; i < count; i++) {
        if (bRow[i] < 0) {
          out[i] = 0;
          continue;
        }
        long p = ao + (long) aRow[i] * d, q = bo + (long) bRow[i] * d;
        double acc = 0;
        for (int c = 0; c < d; c++) {
          acc += x.get((int) (p + c)) * y.get((int) (q + c));
        }
        out[i] = acc;
      }
    }
  }

  private static int width(INDArray a, INDArray b) {
    if (a.dataType() != b.dataType() || a.size(1) != b.size(1) || !a.isMatrix() || !b.isMatrix()) {
      throw new IllegalArgumentException("row op needs two matrices of one type and width, got "
          + a.dataType() + a.shapeInfoToString() + " and " + b.dataType() + b.shapeInfoToString());
    }
    if (a.ordering() != 'c' || b.ordering() != 'c' || a.stride(1) != 1 || b.stride(1) != 1) {
      throw new IllegalArgumentException("row op needs c-order rows");
    }
    return (int) a.size(1);
  }
}
