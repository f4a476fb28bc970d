package io.moespark.ops.backend.cpu;

import io.moespark.ops.backend.Backend;
import io.moespark.ops.tensor.DType;
import io.moespark.ops.tensor.Tensor;
import java.lang.ref.Reference;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;

/**
 * The CPU backend: tensors are ND4J arrays in host memory, GEMMs go to ND4J's BLAS ({@code Nd4j.gemm}
 * into preallocated buffers, 5-10x faster than {@code mmul} at these sizes), and the fused ops are row
 * loops over the arrays' native buffers ({@link CpuKernels}, {@link CpuRows}) split over this process's
 * compute threads. ND4J appears nowhere else in the project's compute code.
 */
public final class CpuBackend implements Backend {
  /** One per process: ND4J and the row loops share the process's thread settings. */
  public static final CpuBackend INSTANCE = new CpuBackend();

  private CpuBackend() {}

  @Override
  public String name() {
    return "cpu";
  }

  @Override
  public void setThreads(int threads) {
    Parallel.setThreads(threads);
  }

  /** The ND4J array behind a tensor of this backend (a view sharing its memory). */
  public static INDArray array(Tensor t) {
    if (t.backend() != INSTANCE) {
      throw new IllegalArgumentException("tensor " + t + " is not on the CPU backend");
    }
    return (INDArray) t.handle();
  }

  /** A tensor over an existing FLOAT or DOUBLE ND4J array (no copy). */
  public static Tensor wrap(INDArray a) {
    return new Tensor(INSTANCE, dtype(a.dataType()), a.shape(), a);
  }

  static DataType type(DType t) {
    return t == DType.F32 ? DataType.FLOAT : DataType.DOUBLE;
  }

  static DType dtype(DataType t) {
    return switch (t) {
      case FLOAT -> DType.F32;
      case DOUBLE -> DType.F64;
      default -> throw new IllegalArgumentException("the CPU backend holds FLOAT and DOUBLE arrays, got " + t);
    };
  }

  // ---- memory and views ----

  @Override
  public Tensor zeros(DType type, long... shape) {
    return wrap(Nd4j.zeros(type(type), shape));
  }

  @Override
  public Tensor empty(DType type, long... shape) {
    for (long s : shape) {
      if (s == 0) {
        return wrap(Nd4j.create(type(type), shape));
      }
    }
    return wrap(Nd4j.createUninitialized(type(type), shape));
  }

  @Override
  public Tensor rows(Tensor t, long from, long to) {
    INDArray m = array(t);
    if (from == to) {
      long[] shape = t.shape();
      shape[0] = 0;
      return wrap(Nd4j.create(m.dataType(), shape));
    }
    if (m.rank() == 2) {
      return wrap(m.get(NDArrayIndex.interval(from, to), NDArrayIndex.all()));
    }
    return view(t, from * (t.length() / t.size(0)), shapeWithRows(t, to - from));
  }

  private static long[] shapeWithRows(Tensor t, long rows) {
    long[] s = t.shape();
    s[0] = rows;
    return s;
  }

  @Override
  public Tensor slice(Tensor t, long i) {
    return wrap(array(t).slice(i));
  }

  @Override
  public Tensor view(Tensor t, long offset, long... shape) {
    INDArray a = array(t);
    long n = 1;
    for (long s : shape) {
      n *= s;
    }
    if (n == 0) {
      return wrap(Nd4j.create(a.dataType(), shape));
    }
    INDArray flat = a.reshape(a.length());
    return wrap(flat.get(NDArrayIndex.interval(offset, offset + n)).reshape('c', shape));
  }

  // ---- elementwise and host transfers ----

  @Override
  public void fill(Tensor t, double value) {
    array(t).assign(value);
  }

  @Override
  public void copy(Tensor src, Tensor dst) {
    if (src.length() != dst.length()) {
      throw new IllegalArgumentException("copy of " + src + " into " + dst + ": lengths differ");
    }
    INDArray s = array(src), d = array(dst);
    if (s.dataType() != d.dataType()) {
      s = s.castTo(d.dataType());
    }
    d.assign(Arrays.equals(s.shape(), d.shape()) ? s : s.reshape(d.shape()));
  }

  @Override
  public void add(Tensor y, Tensor x) {
    array(y).addi(array(x));
  }

  @Override
  public void scale(Tensor t, double s) {
    array(t).muli(s);
  }

  @Override
  public void toHost(Tensor t, ByteBuffer dst) {
    int n = (int) t.length();
    if (n == 0) {
      return;
    }
    INDArray c = array(t).dup('c');
    ByteBuffer out = dst.slice().order(ByteOrder.LITTLE_ENDIAN);
    try {
      if (t.dtype() == DType.F32) {
        out.asFloatBuffer().put(c.data().asNioFloat().position((int) c.offset()).limit((int) c.offset() + n));
      } else {
        out.asDoubleBuffer().put(c.data().asNioDouble().position((int) c.offset()).limit((int) c.offset() + n));
      }
    } finally {
      Reference.reachabilityFence(c); // the NIO view does not keep the copy's native memory alive (see Raw)
    }
    dst.position(dst.position() + n * t.dtype().width());
  }

  @Override
  public void fromHost(ByteBuffer src, Tensor t) {
    int n = (int) t.length();
    if (n == 0) {
      return;
    }
    ByteBuffer in = src.slice().order(ByteOrder.LITTLE_ENDIAN);
    Raw r = Raw.of(array(t));
    if (t.dtype() == DType.F32) {
      var f = in.asFloatBuffer();
      for (int i = 0; i < n; i++) {
        r.set(i, f.get(i));
      }
    } else {
      var d = in.asDoubleBuffer();
      for (int i = 0; i < n; i++) {
        r.set(i, d.get(i));
      }
    }
    src.position(src.position() + n * t.dtype().width());
  }

  @Override
  public double[] toDoubles(Tensor t) {
    INDArray a = array(t);
    return a.castTo(DataType.DOUBLE).reshape(a.length()).toDoubleVector();
  }

  @Override
  public void fromDoubles(double[] v, Tensor t) {
    INDArray a = array(t);
    a.assign(Nd4j.create(v, a.shape(), DataType.DOUBLE).castTo(a.dataType()));
  }

  @Override
  public double sumSquares(Tensor t) {
    double n = array(t).norm2Number().doubleValue();
    return n * n;
  }

  // ---- GEMM ----

  @Override
  public void gemm(Tensor a, Tensor b, Tensor c, boolean transA, boolean transB, double beta) {
    gemm(array(a), array(b), array(c), transA, transB, beta);
  }

  private static void gemm(INDArray a, INDArray b, INDArray c, boolean transA, boolean transB, double beta) {
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

  @Override
  public void gemmBatched(Tensor a, Tensor b, Tensor c, boolean transA, boolean transB, double beta) {
    INDArray x = array(a), y = array(b), z = array(c);
    for (long i = 0; i < z.size(0); i++) {
      gemm(x.slice(i), y.slice(i), z.slice(i), transA, transB, beta);
    }
  }

  // ---- fused ops ----

  @Override
  public void rmsNormForward(Tensor x, Tensor w, double eps, Tensor y, Tensor rstd) {
    CpuKernels.rmsNormForward(array(x), array(w), eps, array(y), array(rstd));
  }

  @Override
  public void rmsNormBackward(Tensor x, Tensor w, Tensor rstd, Tensor dy, Tensor dx, Tensor dw) {
    CpuKernels.rmsNormBackward(array(x), array(w), array(rstd), array(dy), array(dx), array(dw));
  }

  @Override
  public void ropeLayout(Tensor rows, Tensor heads, int batch, int nHeads, Tensor cos, Tensor sin, boolean toRows) {
    CpuKernels.ropeLayout(array(rows), array(heads), batch, nHeads, cos == null ? null : array(cos),
        sin == null ? null : array(sin), toRows);
  }

  @Override
  public void causalSoftmax(Tensor scores, double scale) {
    CpuKernels.causalSoftmax(array(scores), scale);
  }

  @Override
  public void causalSoftmaxBackward(Tensor probs, Tensor dProbs, double scale) {
    CpuKernels.causalSoftmaxBackward(array(probs), array(dProbs), scale);
  }

  @Override
  public void swigluForward(Tensor h1, Tensor h3, Tensor a, Tensor saved) {
    CpuKernels.swigluForward(array(h1), array(h3), array(a), array(saved));
  }

  @Override
  public void swigluBackward(Tensor h1, Tensor h3, Tensor saved, Tensor da, Tensor dh1, Tensor dh3) {
    CpuKernels.swigluBackward(array(h1), array(h3), array(saved), array(da), array(dh1), array(dh3));
  }

  @Override
  public void geluForward(Tensor h1, Tensor a) {
    CpuKernels.geluForward(array(h1), array(a));
  }

  @Override
  public void geluBackward(Tensor h1, Tensor da, Tensor dh1) {
    CpuKernels.geluBackward(array(h1), array(da), array(dh1));
  }

  @Override
  public double crossEntropy(Tensor logits, int[] targets, long globalCount) {
    return CpuKernels.crossEntropy(array(logits), targets, globalCount);
  }

  @Override
  public void gather(Tensor src, int[] srcRow, int count, Tensor dst) {
    CpuRows.gather(array(src), srcRow, count, array(dst));
  }

  @Override
  public void scatter(Tensor src, int[] srcRow, double[] scale, int[] dstRow, int count, Tensor dst) {
    CpuRows.scatter(array(src), srcRow, scale, dstRow, count, array(dst));
  }

  @Override
  public void scatterAdd(Tensor src, int[] srcRow, double[] scale, int[] dstRow, int count, Tensor dst) {
    CpuRows.scatterAdd(array(src), srcRow, scale, dstRow, count, array(dst));
  }

  @Override
  public void rowDots(Tensor a, int[] aRow, Tensor b, int[] bRow, int count, double[] out) {
    CpuRows.rowDots(array(a), aRow, array(b), bRow, count, out);
  }

  @Override
  public void adamw(Tensor w, Tensor g, Tensor m, Tensor v, double beta1, double beta2, double eps, double decay,
      double stepSize, double bc2Sqrt) {
    CpuKernels.adamw(array(w), array(g), array(m), array(v), beta1, beta2, eps, decay, stepSize, bc2Sqrt);
  }
}
