package io.moespark.ops.backend.cpu;

import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * Row gathers and scatters: the layout transforms of the MoE layer and the embedding. Row indices are
 * INT arrays, scales DOUBLE arrays. Loops that add into a destination row run in index order on one
 * thread, so repeated destinations sum in a fixed order and results are bit-reproducible. Value arrays
 * are c-order matrices of one width and type.
 */
final class CpuRows {
  private CpuRows() {}

  /** dst[i] = src[srcRow[i]] for i in [0, count); a negative row gives zeros. */
  static void gather(INDArray src, INDArray srcRows, int count, INDArray dst) {
    if (count == 0) {
      return;
    }
    int d = width(src, dst);
    Raw s = Raw.of(src), t = Raw.of(dst), srcRow = Raw.of(srcRows);
    Parallel.rows(count, (from, to) -> {
      for (int i = from; i < to; i++) {
        int o = i * d, row = srcRow.index(i), p = row * d;
        for (int c = 0; c < d; c++) {
          t.set(o + c, row < 0 ? 0.0 : s.get(p + c));
        }
      }
    });
  }

  /**
   * dst[dstRow[i]] = scale[i] * src[srcRow[i]] for i in [0, count) where dstRow[i] >= 0. Each destination
   * row must appear at most once (a permutation of slots), which makes the rows independent.
   */
  static void scatter(INDArray src, INDArray srcRows, INDArray scales, INDArray dstRows, int count, INDArray dst) {
    if (count == 0 || dst.isEmpty()) {
      return;
    }
    int d = width(src, dst);
    Raw s = Raw.of(src), t = Raw.of(dst), srcRow = Raw.of(srcRows), dstRow = Raw.of(dstRows);
    Raw scale = scales == null ? null : Raw.of(scales);
    Parallel.rows(count, (from, to) -> {
      for (int i = from; i < to; i++) {
        int row = dstRow.index(i);
        if (row >= 0) {
          int o = row * d, p = srcRow.index(i) * d;
          double g = scale == null ? 1.0 : scale.get(i);
          for (int c = 0; c < d; c++) {
            t.set(o + c, g * s.get(p + c));
          }
        }
      }
    });
  }

  /**
   * dst[dstRow[i]] += scale[i] * src[srcRow[i]] for i in [0, count), in order; srcRows null is the
   * identity, scale null means 1. Pairs with a negative row on either side are skipped (dropped
   * assignments).
   */
  static void scatterAdd(INDArray src, INDArray srcRows, INDArray scales, INDArray dstRows, int count, INDArray dst) {
    if (count == 0 || src.isEmpty()) {
      return;
    }
    int d = width(src, dst);
    Raw s = Raw.of(src), t = Raw.of(dst), dstRow = Raw.of(dstRows);
    Raw srcRow = srcRows == null ? null : Raw.of(srcRows), scale = scales == null ? null : Raw.of(scales);
    for (int i = 0; i < count; i++) {
      int from = srcRow == null ? i : srcRow.index(i), to = dstRow.index(i);
      if (from < 0 || to < 0) {
        continue;
      }
      int o = to * d, p = from * d;
      double g = scale == null ? 1.0 : scale.get(i);
      for (int c = 0; c < d; c++) {
        t.add(o + c, g * s.get(p + c));
      }
    }
  }

  /** out[i] = a[aRow[i]] . b[bRow[i]] (0 where bRow[i] is negative). */
  static void rowDots(INDArray a, INDArray aRows, INDArray b, INDArray bRows, int count, INDArray outArray) {
    if (count == 0) {
      return;
    }
    Raw out = Raw.of(outArray);
    if (b.isEmpty()) {
      for (int i = 0; i < count; i++) {
        out.set(i, 0.0);
      }
      return;
    }
    int d = width(a, b);
    Raw x = Raw.of(a), y = Raw.of(b), aRow = Raw.of(aRows), bRow = Raw.of(bRows);
    Parallel.rows(count, (from, to) -> {
      for (int i = from; i < to; i++) {
        int q = bRow.index(i);
        if (q < 0) {
          out.set(i, 0.0);
          continue;
        }
        int p = aRow.index(i) * d;
        q *= d;
        double acc = 0;
        for (int c = 0; c < d; c++) {
          acc += x.get(p + c) * y.get(q + c);
        }
        out.set(i, acc);
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
