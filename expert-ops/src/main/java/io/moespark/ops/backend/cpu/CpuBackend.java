package io.moespark.ops.backend.cpu;

import io.moespark.ops.backend.Backend;
import io.moespark.ops.backend.Footprint;
import io.moespark.ops.backend.HostTransfers;
import io.moespark.ops.tensor.DType;
import io.moespark.ops.tensor.Tensor;
import java.lang.ref.Reference;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.concurrent.atomic.AtomicLong;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;

/**
 * The CPU backend: tensors are ND4J arrays in host memory, GEMMs go to ND4J's BLAS ({@code Nd4j.gemm}
 * into preallocated buffers, 5-10x faster than {@code mmul} at these sizes), and the fused ops are row
 * loops over the arrays' native buffers ({@link CpuKernels}, {@link CpuRows}, {@link CpuRouting}) split
 * over this process's compute threads. Work runs synchronously on the calling thread, so every event is
 * done when recorded. ND4J appears nowhere else in the project's compute code.
 *
 * <p>One instance per rank ({@link #create}) keeps that rank's footprint; {@link #INSTANCE} serves tools
 * and tests. Tensors of any instance work with any other (they are all host memory).
 */
public final class CpuBackend implements Backend {
  /** The shared instance of single-process tools and tests. */
  public static final CpuBackend INSTANCE = new CpuBackend();

  private static final Event DONE = new Event() {
    @Override
    public boolean isDone() {
      return true;
    }

    @Override
    public void synchronize() {}
  };

  private final AtomicLong live = new AtomicLong();
  private final AtomicLong peak = new AtomicLong();
  private final AtomicLong allocations = new AtomicLong();
  private final HostTransfers transfers = new HostTransfers();

  private CpuBackend() {}

  /** A fresh instance: one rank's arena. */
  public static CpuBackend create() {
    return new CpuBackend();
  }

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
    if (!(t.backend() instanceof CpuBackend)) {
      throw new IllegalArgumentException("tensor " + t + " is not on the CPU backend");
    }
    return (INDArray) t.handle();
  }

  /** A tensor of the shared instance over an existing ND4J array (no copy; not counted in a footprint). */
  public static Tensor wrap(INDArray a) {
    return INSTANCE.tensor(a);
  }

  private Tensor tensor(INDArray a) {
    return new Tensor(this, dtype(a.dataType()), a.shape(), a);
  }

  static DataType type(DType t) {
    return switch (t) {
      case F32 -> DataType.FLOAT;
      case F64 -> DataType.DOUBLE;
      case BF16 -> DataType.BFLOAT16;
      case I32 -> DataType.INT;
    };
  }

  static DType dtype(DataType t) {
    return switch (t) {
      case FLOAT -> DType.F32;
      case DOUBLE -> DType.F64;
      case BFLOAT16 -> DType.BF16;
      case INT -> DType.I32;
      default -> throw new IllegalArgumentException("the CPU backend holds FLOAT, DOUBLE, BFLOAT16 and INT arrays, got " + t);
    };
  }

  private static INDArray nullable(Tensor t) {
    return t == null ? null : array(t);
  }

  // ---- the arena ----

  @Override
  public Tensor zeros(DType type, long... shape) {
    return allocated(Nd4j.zeros(type(type), shape));
  }

  @Override
  public Tensor empty(DType type, long... shape) {
    for (long s : shape) {
      if (s == 0) {
        return allocated(Nd4j.create(type(type), shape));
      }
    }
    return allocated(Nd4j.createUninitialized(type(type), shape));
  }

  private Tensor allocated(INDArray a) {
    long now = live.addAndGet(a.length() * a.dataType().width());
    peak.accumulateAndGet(now, Math::max);
    allocations.incrementAndGet();
    return tensor(a);
  }

  /** Accounting only: ND4J frees the memory when the array is collected (closing it here could free memory a late view still reads). */
  @Override
  public void free(Tensor t) {
    INDArray a = array(t);
    if (t.backend() == this && !a.isView()) {
      live.addAndGet(-a.length() * a.dataType().width());
    }
  }

  @Override
  public Footprint footprint() {
    return new Footprint(live.get(), peak.get(), allocations.get());
  }

  @Override
  public HostTransfers transfers() {
    return transfers;
  }

  @Override
  public Event record() {
    return DONE;
  }

  @Override
  public void waitFor(Event e) {
    e.synchronize();
  }

  @Override
  public Tensor rows(Tensor t, long from, long to) {
    INDArray m = array(t);
    if (from == to) {
      long[] shape = t.shape();
      shape[0] = 0;
      return tensor(Nd4j.create(m.dataType(), shape));
    }
    if (m.rank() == 2) {
      return tensor(m.get(NDArrayIndex.interval(from, to), NDArrayIndex.all()));
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
    return tensor(array(t).slice(i));
  }

  @Override
  public Tensor view(Tensor t, long offset, long... shape) {
    INDArray a = array(t);
    long n = 1;
    for (long s : shape) {
      n *= s;
    }
    if (n == 0) {
      return tensor(Nd4j.create(a.dataType(), shape));
    }
    INDArray flat = a.reshape(a.length());
    return tensor(flat.get(NDArrayIndex.interval(offset, offset + n)).reshape('c', shape));
  }

  // ---- elementwise and host transfers ----

  @Override
  public void fill(Tensor t, double value) {
    if (t.isEmpty()) {
      return; // ND4J's ops refuse empty arrays
    }
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
    if (y.isEmpty()) {
      return;
    }
    array(y).addi(array(x));
  }

  @Override
  public void scale(Tensor t, double s) {
    if (t.isEmpty()) {
      return;
    }
    array(t).muli(s);
  }

  @Override
  public void toHost(Tensor t, ByteBuffer dst) {
    int n = (int) t.length(), width = t.dtype().width();
    if (n == 0) {
      return;
    }
    transfers.down((long) n * width);
    INDArray c = array(t).dup('c');
    ByteBuffer out = dst.slice().order(ByteOrder.LITTLE_ENDIAN);
    try {
      switch (t.dtype()) {
        case F32 -> out.asFloatBuffer().put(c.data().asNioFloat().position((int) c.offset()).limit((int) c.offset() + n));
        case F64 -> out.asDoubleBuffer().put(c.data().asNioDouble().position((int) c.offset()).limit((int) c.offset() + n));
        case I32 -> out.asIntBuffer().put(c.data().asNioInt().position((int) c.offset()).limit((int) c.offset() + n));
        case BF16 -> {
          // Raw 16-bit patterns, in the platform's order (little-endian on every platform ND4J ships for).
          ByteBuffer raw = c.data().asNio().order(ByteOrder.nativeOrder());
          for (int i = 0; i < n; i++) {
            out.putShort(2 * i, raw.getShort(2 * ((int) c.offset() + i)));
          }
        }
      }
    } finally {
      Reference.reachabilityFence(c); // the NIO view does not keep the copy's native memory alive (see Raw)
    }
    dst.position(dst.position() + n * width);
  }

  @Override
  public void fromHost(ByteBuffer src, Tensor t) {
    int n = (int) t.length();
    if (n == 0) {
      return;
    }
    transfers.up((long) n * t.dtype().width());
    ByteBuffer in = src.slice().order(ByteOrder.LITTLE_ENDIAN);
    if (t.dtype() == DType.BF16) {
      short[] bits = new short[n];
      in.asShortBuffer().get(bits);
      float[] f = new float[n];
      for (int i = 0; i < n; i++) {
        f[i] = Float.intBitsToFloat(bits[i] << 16); // exact: a bf16 is the high half of an f32
      }
      array(t).assign(Nd4j.createFromArray(f).reshape(t.shape()).castTo(DataType.BFLOAT16));
    } else {
      Raw r = Raw.of(array(t));
      switch (t.dtype()) {
        case F32 -> {
          var f = in.asFloatBuffer();
          for (int i = 0; i < n; i++) {
            r.set(i, f.get(i));
          }
        }
        case I32 -> {
          var f = in.asIntBuffer();
          for (int i = 0; i < n; i++) {
            r.set(i, f.get(i));
          }
        }
        default -> {
          var d = in.asDoubleBuffer();
          for (int i = 0; i < n; i++) {
            r.set(i, d.get(i));
          }
        }
      }
    }
    src.position(src.position() + n * t.dtype().width());
  }

  @Override
  public double[] toDoubles(Tensor t) {
    transfers.down(t.length() * t.dtype().width());
    INDArray a = array(t);
    return a.castTo(DataType.DOUBLE).reshape(a.length()).toDoubleVector();
  }

  @Override
  public void fromDoubles(double[] v, Tensor t) {
    transfers.up(t.length() * t.dtype().width());
    INDArray a = array(t);
    a.assign(Nd4j.create(v, a.shape(), DataType.DOUBLE).castTo(a.dataType()));
  }

  @Override
  public void fromInts(int[] v, Tensor t) {
    if (t.dtype() != DType.I32 || v.length != t.length()) {
      throw new IllegalArgumentException(v.length + " ints into " + t);
    }
    transfers.up(4L * v.length);
    if (v.length > 0) {
      array(t).assign(Nd4j.createFromArray(v).reshape(t.shape()));
    }
  }

  // ---- reductions ----

  /** In double, element by element in order (ND4J's norm accumulates F32 in its own order). */
  @Override
  public void sumSquares(Tensor[] parts, Tensor out, int index) {
    double sum = 0;
    for (Tensor p : parts) {
      Raw r = Raw.of(array(p));
      for (int i = 0, n = (int) p.length(); i < n; i++) {
        double v = r.get(i);
        sum += v * v;
      }
    }
    array(out).putScalar(index, sum);
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

  /** C[i] = op(A[i]) op(B[i]) + beta C[i] over the leading dimension (attention's per-head products). */
  private static void gemmBatched(INDArray x, INDArray y, INDArray z, boolean transA, boolean transB, double beta) {
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
    CpuKernels.ropeLayout(array(rows), array(heads), batch, nHeads, nullable(cos), nullable(sin), toRows);
  }

  /** The probabilities [B*H, T, T] and, for the backward, their gradient: the materialised algorithm. */
  @Override
  public long[] attentionStateShape(long batchHeads, long seq) {
    return new long[] {2, batchHeads, seq, seq};
  }

  @Override
  public void attentionForward(Tensor q, Tensor k, Tensor v, Tensor out, Tensor state, double scale) {
    INDArray probs = array(state).slice(0);
    gemmBatched(array(q), array(k), probs, false, true, 0.0);
    CpuKernels.causalSoftmax(probs, scale);
    gemmBatched(probs, array(v), array(out), false, false, 0.0);
  }

  @Override
  public void attentionBackward(Tensor q, Tensor k, Tensor v, Tensor state, Tensor dOut, Tensor dq, Tensor dk,
      Tensor dv, double scale) {
    INDArray probs = array(state).slice(0), dProbs = array(state).slice(1), dCtx = array(dOut);
    gemmBatched(dCtx, array(v), dProbs, false, true, 0.0);
    gemmBatched(probs, dCtx, array(dv), true, false, 0.0);
    CpuKernels.causalSoftmaxBackward(probs, dProbs, scale);
    gemmBatched(dProbs, array(k), array(dq), false, false, 0.0);
    gemmBatched(dProbs, array(q), array(dk), true, false, 0.0);
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
  public void crossEntropy(Tensor logits, Tensor targets, long globalCount, Tensor lossSum) {
    array(lossSum).putScalar(0, CpuKernels.crossEntropy(array(logits), array(targets), globalCount));
  }

  // ---- rows ----

  @Override
  public void gather(Tensor src, Tensor srcRow, int count, Tensor dst) {
    CpuRows.gather(array(src), array(srcRow), count, array(dst));
  }

  @Override
  public void scatter(Tensor src, Tensor srcRow, Tensor scale, Tensor dstRow, int count, Tensor dst) {
    CpuRows.scatter(array(src), array(srcRow), nullable(scale), array(dstRow), count, array(dst));
  }

  @Override
  public void scatterAdd(Tensor src, Tensor srcRow, Tensor scale, Tensor dstRow, int count, Tensor dst) {
    CpuRows.scatterAdd(array(src), nullable(srcRow), nullable(scale), array(dstRow), count, array(dst));
  }

  @Override
  public void rowDots(Tensor a, Tensor aRow, Tensor b, Tensor bRow, int count, Tensor out) {
    CpuRows.rowDots(array(a), array(aRow), array(b), array(bRow), count, array(out));
  }

  // ---- routing ----

  @Override
  public void routerSoftmax(Tensor logits, Tensor probs, Tensor lse) {
    CpuRouting.softmax(array(logits), array(probs), array(lse));
  }

  @Override
  public void routeTopK(Tensor probs, Tensor bias, int k, boolean normalize, Tensor token, Tensor expert, Tensor gate) {
    CpuRouting.topK(array(probs), nullable(bias), k, normalize, array(token), array(expert), array(gate));
  }

  @Override
  public void routeExpertChoice(Tensor probs, int capacity, Tensor token, Tensor expert, Tensor gate) {
    CpuRouting.expertChoice(array(probs), capacity, array(token), array(expert), array(gate));
  }

  @Override
  public void routeHash(Tensor ids, int experts, Tensor token, Tensor expert, Tensor gate) {
    CpuRouting.hash(array(ids), experts, array(token), array(expert), array(gate));
  }

  @Override
  public void planDispatch(Tensor token, Tensor expert, Tensor gate, Tensor probs, Tensor lse, int capacity,
      boolean byGate, Tensor expertOrder, Tensor slot, Tensor sendToken, Tensor stats) {
    CpuRouting.planDispatch(array(token), array(expert), array(gate), nullable(probs), nullable(lse), capacity, byGate,
        array(expertOrder), array(slot), array(sendToken), array(stats));
  }

  @Override
  public void routerBackward(Tensor token, Tensor expert, Tensor gate, Tensor dGate, Tensor probs, Tensor lse,
      Tensor auxGradPerProb, double zScale, int normalizedTopK, Tensor dLogits) {
    CpuRouting.backward(array(token), array(expert), array(gate), array(dGate), array(probs), array(lse),
        nullable(auxGradPerProb), zScale, normalizedTopK, array(dLogits));
  }

  // ---- optimizer ----

  @Override
  public void adamw(Tensor w, Tensor g, Tensor m, Tensor v, double beta1, double beta2, double eps, double decay,
      double stepSize, double bc2Sqrt) {
    CpuKernels.adamw(array(w), array(g), array(m), array(v), beta1, beta2, eps, decay, stepSize, bc2Sqrt);
  }
}
