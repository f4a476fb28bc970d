package io.moespark.ops.tensor;

import java.util.Arrays;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;

/** Preallocated activation buffers and row-range views: the hot path allocates only when a shape grows. */
public final class Buffers {
  private Buffers() {}

  /** Returns {@code current} when it already has this type and shape, else a fresh zeroed array. */
  public static INDArray ensure(INDArray current, DataType type, long... shape) {
    if (current != null && current.dataType() == type && Arrays.equals(current.shape(), shape)) {
      return current;
    }
    return Nd4j.zeros(type, shape);
  }

  /**
   * Rows [from, to) of a c-order matrix as a view (contiguous, so gemm can write into it); an empty
   * range gives an empty [0, cols] array.
   */
  public static INDArray rows(INDArray m, long from, long to) {
    if (from == to) {
      return Nd4j.create(m.dataType(), 0, m.size(1));
    }
    return m.get(NDArrayIndex.interval(from, to), NDArrayIndex.all());
  }

  /**
   * Backing store for a buffer whose row count varies from step to step: {@code current} when it has
   * at least {@code rows} rows of this width, else a new one with headroom. Callers view its first rows.
   */
  public static INDArray grow(INDArray current, DataType type, long rows, long cols) {
    INDArray base = current;
    if (base == null || base.dataType() != type || base.size(1) != cols || base.size(0) < rows) {
      base = Nd4j.zeros(type, Math.max(1, rows + rows / 4), cols);
    }
    return base;
  }

  /** C = alpha * op(A) op(B) + beta * C, the one GEMM entry point of the project. */
  public static void gemm(INDArray a, INDArray b, INDArray c, boolean transA, boolean transB, double beta) {
    if (c.size(0) == 0) {
      return;
    }
    if ((transA ? a.size(0) : a.size(1)) == 0) {
      if (beta == 0) {
        c.assign(0);
      }
      return;
    }
    Nd4j.gemm(a, b, c, transA, transB, 1.0, beta);
  }
}
