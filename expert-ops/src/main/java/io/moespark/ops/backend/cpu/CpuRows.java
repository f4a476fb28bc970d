package io.moespark.ops.backend.cpu;

import java.util.Arrays;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * Row gathers and scatters: the layout transforms of the MoE layer and the embedding gradient. Loops
 * that add into a destination row run in index order on one thread, so repeated destinations sum in a
 * fixed order and results are bit-reproducible. Arrays are c-order matrices of one width and type.
 */
final class CpuRows {
  private CpuRows() {}

  /** dst[i] = src[srcRow[i]] for i in [0, count); a negative row gives zeros. */
  static void gather(INDArray src, int[] srcRow, int count, INDArray dst) {
    if (count == 0) {
      return;
    }
    int d = width(src, dst);
    Raw s = Raw.of(src), t = Raw.of(dst);
    Parallel.rows(count, (from, to) -> {
      for (int i = from; i < to; i++) {
        int o = i * d, p = srcRow[i] * d;
        for (int c = 0; c < d; c++) {
          t.set(o + c, srcRow[i] < 0 ? 0.0 : s.get(p + c));
        }
      }
    });
  }

  /**
   * dst[dstRow[i]] = scale[i] * src[srcRow[i]] for i in [0, count) where dstRow[i] >= 0. Each destination
   * row must appear at most once (a permutation of slots), which makes the rows independent.
   */
  static void scatter(INDArray src, int[] srcRow, double[] scale, int[] dstRow, int count, INDArray dst) {
    if (count == 0 || dst.isEmpty()) {
      return;
    }
    int d = width(src, dst);
    Raw s = Raw.of(src), t = Raw.of(dst);
    Parallel.rows(count, (from, to) -> {
      for (int i = from; i < to; i++) {
        if (dstRow[i] >= 0) {
          int o = dstRow[i] * d, p = srcRow[i] * d;
          double g = scale == null ? 1.0 : scale[i];
          for (int c = 0; c < d; c++) {
            t.set(o + c, g * s.get(p + c));
          }
        }
      }
    });
  }

  /**
   * dst[dstRow[i]] += scale[i] * src[srcRow[i]] for i in [0, count), in order; scale null means 1. Pairs
   * with a negative row on either side are skipped (dropped assignments).
   */
  static void scatterAdd(INDArray src, int[] srcRow, double[] scale, int[] dstRow, int count, INDArray dst) {
    if (count == 0 || src.isEmpty()) {
      return;
    }
    int d = width(src, dst);
    Raw s = Raw.of(src), t = Raw.of(dst);
    for (int i = 0; i < count; i++) {
      if (srcRow[i] < 0 || dstRow[i] < 0) {
        continue;
      }
      int o = dstRow[i] * d, p = srcRow[i] * d;
      double g = scale == null ? 1.0 : scale[i];
      for (int c = 0; c < d; c++) {
        t.add(o + c, g * s.get(p + c));
      }
    }
  }

  /** out[i] = a[aRow[i]] . b[bRow[i]] (0 where bRow[i] is negative). */
  static void rowDots(INDArray a, int[] aRow, INDArray b, int[] bRow, int count, double[] out) {
    if (count == 0) {
      return;
    }
    if (b.isEmpty()) {
      Arrays.fill(out, 0, count, 0.0);
      return;
    }
    int d = width(a, b);
    Raw x = Raw.of(a), y = Raw.of(b);
    Parallel.rows(count, (from, to) -> {
      for (int i = from; i < to; i++) {
        if (bRow[i] < 0) {
          out[i] = 0;
          continue;
        }
        int p = aRow[i] * d, q = bRow[i] * d;
        double acc = 0;
        for (int c = 0; c < d; c++) {
          acc += x.get(p + c) * y.get(q + c);
        }
        out[i] = acc;
      }
    });
  }

  private static int width(INDArray a, INDArray b) {
    if (a.dataType() != b.dataType() || a.rank() != 2 || b.rank() != 2 || a.size(1) != b.size(1)) {
      throw new IllegalArgumentException("row op needs two matrices of one type and width, got "
          + a.dataType() + a.shapeInfoToString() + " and " + b.dataType() + b.shapeInfoToString());
    }
    return (int) a.size(1);
  }
}
