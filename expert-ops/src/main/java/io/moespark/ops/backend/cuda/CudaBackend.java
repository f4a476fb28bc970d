package io.moespark.ops.backend.cuda;

import io.moespark.ops.backend.Backend;
import io.moespark.ops.backend.Footprint;
import io.moespark.ops.backend.HostTransfers;
import io.moespark.ops.config.ConfigException;
import io.moespark.ops.config.RunConfig;
import io.moespark.ops.tensor.DType;
import io.moespark.ops.tensor.Tensor;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Locale;

/**
 * The CUDA backend: a rank's tensors live in device memory, GEMMs go to cuBLAS and every other op to the
 * project's kernels ({@link CudaKernels}), all through a {@link DeviceLayer}: the CUDA driver on a GPU, or
 * the host layer of the tests, which runs the same kernel sources on the CPU so that this class's logic
 * (addresses, views, shapes, the column-major GEMM arguments, scratch buffers) is checked without a GPU.
 *
 * <p>The model computes in F32 here (parameters, gradients, moments, activations); F64 is where the
 * {@link Backend} contract keeps it (RMSNorm's rstd, RoPE's tables, the routing, the loss and norm sums),
 * I32 for indices, BF16 for storage. An op given another type fails naming the tensor: the F64 model of
 * the parity tests runs on the CPU backend.
 *
 * <p>One instance per rank, used from the rank's thread (the device layer holds that thread's CUDA
 * context). Every allocation goes through {@link #zeros}/{@link #empty} and is counted in {@link
 * #footprint}; scratch buffers of the ops grow to the largest step and are then reused, so a steady step
 * allocates nothing.
 */
public final class CudaBackend implements Backend {
  /** A tensor's memory: its address, and the address of the allocation it lies in (its own for an allocation). */
  record Memory(long address, long allocation) {}

  private final DeviceLayer device;
  private final RunConfig.Precision precision;
  private final CudaKernels kernels;
  private final HostTransfers transfers = new HostTransfers();
  private long live, peak, allocations;

  // Scratch of the ops, grown on demand (each an allocation of this arena).
  private Tensor rowLoss, partials, chosen, order, work, dProbs, staging, aBf16, bBf16;

  /** The parity mode: F32 GEMMs. */
  public CudaBackend(DeviceLayer device) {
    this(device, RunConfig.Precision.FP32);
  }

  /** GEMMs in {@code precision} ({@code parallel.precision}); everything else F32 or F64 as in FP32. */
  public CudaBackend(DeviceLayer device, RunConfig.Precision precision) {
    this.device = device;
    this.precision = precision;
    this.kernels = new CudaKernels(device);
  }

  @Override
  public String name() {
    return device.name();
  }

  /** A GPU's kernels use its own threads: the task's cores are not this backend's to size. */
  @Override
  public void setThreads(int threads) {}

  // ---- the arena ----

  private static long bytes(DType type, long... shape) {
    long n = 1;
    for (long s : shape) {
      if (s < 0) {
        throw new IllegalArgumentException("negative dimension in " + java.util.Arrays.toString(shape));
      }
      n *= s;
    }
    return n * type.width();
  }

  @Override
  public Tensor zeros(DType type, long... shape) {
    Tensor t = empty(type, shape);
    device.zero(address(t), bytes(type, shape));
    return t;
  }

  @Override
  public Tensor empty(DType type, long... shape) {
    long n = bytes(type, shape), address;
    try {
      address = device.alloc(n);
    } catch (DeviceLayer.OutOfMemory e) {
      throw new ConfigException(String.format(Locale.ROOT, "out of GPU memory on %s: %.1f MiB more, with %s held by "
          + "this rank; shrink train.batch_size or model.seq_len (activations), model.d_model, model.d_ff, "
          + "moe.d_expert or moe.experts (parameters and optimizer state), or raise parallel.ranks (fewer experts "
          + "per GPU)", name(), n / 1048576.0, footprint()), e);
    }
    live += n;
    peak = Math.max(peak, live);
    allocations++;
    return new Tensor(this, type, shape, new Memory(address, address));
  }

  @Override
  public void free(Tensor t) {
    Memory m = memory(t);
    if (m.address() != m.allocation()) {
      throw new IllegalArgumentException("free of a view (" + t + "): free the tensor it was made from");
    }
    device.free(m.address());
    live -= t.length() * t.dtype().width();
  }

  @Override
  public Footprint footprint() {
    return new Footprint(live, peak, allocations);
  }

  @Override
  public HostTransfers transfers() {
    return transfers;
  }

  private Memory memory(Tensor t) {
    if (t.backend() != this) {
      throw new IllegalArgumentException("tensor " + t + " is not in " + name() + "'s memory");
    }
    return (Memory) t.handle();
  }

  private long address(Tensor t) {
    return memory(t).address();
  }

  /**
   * The device address of a tensor of a CUDA backend, for a collective that hands device memory to NCCL
   * (the direct path's NcclCollective); work issued on the backend before the call is ordered before work
   * on any blocking stream of the same device.
   */
  public static long deviceAddress(Tensor t) {
    if (!(t.backend() instanceof CudaBackend be)) {
      throw new IllegalArgumentException("tensor " + t + " is not in a CUDA backend's memory");
    }
    return be.address(t);
  }

  /** The address of a tensor that must have this type. */
  private long of(Tensor t, DType type) {
    if (t.dtype() != type) {
      throw new IllegalArgumentException("the CUDA backend takes " + type + " here, got " + t);
    }
    return address(t);
  }

  private long f32(Tensor t) {
    return of(t, DType.F32);
  }

  private long f64(Tensor t) {
    return of(t, DType.F64);
  }

  private long i32(Tensor t) {
    return of(t, DType.I32);
  }

  /** An optional argument: 0 (a null pointer) when absent. */
  private long f64OrNull(Tensor t) {
    return t == null ? 0 : f64(t);
  }

  private Tensor viewAt(Tensor t, long offsetElements, long... shape) {
    Memory m = memory(t);
    long n = bytes(t.dtype(), shape) / t.dtype().width();
    if (offsetElements < 0 || offsetElements + n > t.length()) {
      throw new IndexOutOfBoundsException("view of " + n + " elements from " + offsetElements + " of " + t);
    }
    return new Tensor(this, t.dtype(), shape, new Memory(m.address() + offsetElements * t.dtype().width(),
        m.allocation()));
  }

  @Override
  public Tensor rows(Tensor t, long from, long to) {
    if (from < 0 || to < from || to > t.size(0)) {
      throw new IndexOutOfBoundsException("rows [" + from + ", " + to + ") of " + t);
    }
    long[] shape = t.shape();
    shape[0] = to - from;
    return viewAt(t, from * rowLength(t), shape);
  }

  @Override
  public Tensor slice(Tensor t, long i) {
    if (i < 0 || i >= t.size(0)) {
      throw new IndexOutOfBoundsException("slice " + i + " of " + t);
    }
    long[] shape = java.util.Arrays.copyOfRange(t.shape(), 1, t.rank());
    return viewAt(t, i * rowLength(t), shape);
  }

  @Override
  public Tensor view(Tensor t, long offset, long... shape) {
    return viewAt(t, offset, shape);
  }

  /** Elements per index of the leading dimension. */
  private static long rowLength(Tensor t) {
    long n = 1;
    for (int d = 1; d < t.rank(); d++) {
      n *= t.size(d);
    }
    return n;
  }

  /** Scratch of at least {@code n} elements: {@code current} when large enough, else a new one (current freed). */
  private Tensor scratch(Tensor current, DType type, long n) {
    if (current != null && current.dtype() == type && current.length() >= n) {
      return current;
    }
    if (current != null) {
      free(current);
    }
    return empty(type, Math.max(1, n + n / 4));
  }

  // ---- events: one stream, so work issued later already waits for work issued earlier ----

  @Override
  public Event record() {
    long id = device.record();
    return new Event() {
      private boolean done;

      @Override
      public boolean isDone() {
        if (!done && device.isDone(id)) {
          done = true;
          device.release(id);
        }
        return done;
      }

      @Override
      public void synchronize() {
        if (!done) {
          device.synchronize(id);
          done = true;
          device.release(id);
        }
      }
    };
  }

  /** Work on this stream is ordered after the event's already; another backend's event is awaited on the host. */
  @Override
  public void waitFor(Event e) {
    e.synchronize();
  }

  // ---- elementwise and host transfers ----

  @Override
  public void fill(Tensor t, double value) {
    switch (t.dtype()) {
      case F32 -> kernels.fill(address(t), (float) value, t.length());
      case F64 -> kernels.fillF64(address(t), value, t.length());
      default -> {
        if (value != 0) {
          throw new IllegalArgumentException("the CUDA backend fills " + t + " with 0 only, asked for " + value);
        }
        device.zero(address(t), t.length() * t.dtype().width());
      }
    }
  }

  @Override
  public void copy(Tensor src, Tensor dst) {
    if (src.length() != dst.length()) {
      throw new IllegalArgumentException("copy of " + src + " into " + dst + ": lengths differ");
    }
    long n = src.length(), s = address(src), d = address(dst);
    if (src.dtype() == dst.dtype()) {
      if (s != d && n > 0) {
        device.copy(s, d, n * src.dtype().width());
      }
      return;
    }
    switch (src.dtype().name() + ">" + dst.dtype().name()) {
      case "F32>BF16" -> kernels.toBf16(s, d, n);
      case "BF16>F32" -> kernels.fromBf16(s, d, n);
      case "F32>F64" -> kernels.f32ToF64(s, d, n);
      case "F64>F32" -> kernels.f64ToF32(s, d, n);
      default -> throw new IllegalArgumentException("the CUDA backend does not convert " + src + " to " + dst);
    }
  }

  @Override
  public void add(Tensor y, Tensor x) {
    if (y.length() != x.length()) {
      throw new IllegalArgumentException("add of " + x + " to " + y + ": lengths differ");
    }
    kernels.add(f32(y), f32(x), y.length());
  }

  @Override
  public void scale(Tensor t, double s) {
    kernels.scale(f32(t), (float) s, t.length());
  }

  @Override
  public void toHost(Tensor t, ByteBuffer dst) {
    long n = t.length() * t.dtype().width();
    if (n == 0) {
      return;
    }
    transfers.down(n);
    ByteBuffer out = dst.slice().limit((int) n);
    device.copyToHost(address(t), out);
    dst.position(dst.position() + (int) n);
  }

  @Override
  public void fromHost(ByteBuffer src, Tensor t) {
    long n = t.length() * t.dtype().width();
    if (n == 0) {
      return;
    }
    transfers.up(n);
    device.copyToDevice(src.slice().limit((int) n), address(t));
    src.position(src.position() + (int) n);
  }

  @Override
  public double[] toDoubles(Tensor t) {
    int n = Math.toIntExact(t.length());
    ByteBuffer b = ByteBuffer.allocate(n * t.dtype().width()).order(ByteOrder.LITTLE_ENDIAN);
    transfers.down(b.capacity());
    if (n > 0) {
      device.copyToHost(address(t), b.duplicate());
    }
    double[] v = new double[n];
    for (int i = 0; i < n; i++) {
      v[i] = switch (t.dtype()) {
        case F32 -> b.getFloat(4 * i);
        case F64 -> b.getDouble(8 * i);
        case I32 -> b.getInt(4 * i);
        case BF16 -> Float.intBitsToFloat(b.getShort(2 * i) << 16);
      };
    }
    return v;
  }

  /** BF16 goes up as F32 and is rounded by the device's own conversion (one rounding rule in the project's kernels). */
  @Override
  public void fromDoubles(double[] v, Tensor t) {
    if (v.length != t.length()) {
      throw new IllegalArgumentException(v.length + " values into " + t);
    }
    DType up = t.dtype() == DType.BF16 ? DType.F32 : t.dtype();
    ByteBuffer b = ByteBuffer.allocate(v.length * up.width()).order(ByteOrder.LITTLE_ENDIAN);
    for (int i = 0; i < v.length; i++) {
      switch (up) {
        case F32 -> b.putFloat(4 * i, (float) v[i]);
        case F64 -> b.putDouble(8 * i, v[i]);
        default -> b.putInt(4 * i, (int) v[i]);
      }
    }
    transfers.up(b.capacity());
    if (v.length == 0) {
      return;
    }
    if (up == t.dtype()) {
      device.copyToDevice(b, address(t));
    } else {
      staging = scratch(staging, DType.F32, v.length);
      device.copyToDevice(b, address(staging));
      kernels.toBf16(address(staging), address(t), v.length);
    }
  }

  @Override
  public void fromInts(int[] v, Tensor t) {
    if (t.dtype() != DType.I32 || v.length != t.length()) {
      throw new IllegalArgumentException(v.length + " ints into " + t);
    }
    ByteBuffer b = ByteBuffer.allocate(4 * v.length).order(ByteOrder.LITTLE_ENDIAN);
    b.asIntBuffer().put(v);
    transfers.up(b.capacity());
    if (v.length > 0) {
      device.copyToDevice(b, address(t));
    }
  }

  // ---- reductions ----

  @Override
  public void sumSquares(Tensor[] parts, Tensor out, int index) {
    long[] at = new long[parts.length], lengths = new long[parts.length];
    long blocks = 0;
    for (int p = 0; p < parts.length; p++) {
      at[p] = f32(parts[p]);
      lengths[p] = parts[p].length();
      blocks += CudaKernels.sumSquaresBlocks(lengths[p]);
    }
    if (index < 0 || index >= out.length()) {
      throw new IndexOutOfBoundsException("sum of squares into element " + index + " of " + out);
    }
    partials = scratch(partials, DType.F64, blocks);
    kernels.sumSquares(at, lengths, address(partials), f64(out), index);
  }

  // ---- GEMM ----

  @Override
  public void gemm(Tensor a, Tensor b, Tensor c, boolean transA, boolean transB, double beta) {
    long m = transA ? a.size(1) : a.size(0), n = transB ? b.size(0) : b.size(1);
    if (a.rank() != 2 || b.rank() != 2 || c.rank() != 2 || c.size(0) != m || c.size(1) != n) {
      throw new IllegalArgumentException("GEMM of " + a + (transA ? "^T" : "") + " and " + b + (transB ? "^T" : "")
          + " into " + c);
    }
    gemm(f32(a), (int) a.size(0), (int) a.size(1), f32(b), (int) b.size(0), (int) b.size(1), f32(c), transA, transB,
        beta, 1);
  }

  /**
   * The one way to a GEMM on F32 operands, in this backend's precision: with BF16 both operands are first
   * rounded to bf16 (scratch that grows once), as PyTorch's autocast does for a matrix product.
   */
  private void gemm(long a, int aRows, int aCols, long b, int bRows, int bCols, long c, boolean transA,
      boolean transB, double beta, int batch) {
    if (precision != RunConfig.Precision.BF16) {
      kernels.gemm(precision, a, aRows, aCols, b, bRows, bCols, c, transA, transB, beta, batch);
      return;
    }
    long na = (long) aRows * aCols * batch, nb = (long) bRows * bCols * batch;
    aBf16 = scratch(aBf16, DType.BF16, na);
    bBf16 = scratch(bBf16, DType.BF16, nb);
    kernels.toBf16(a, address(aBf16), na);
    kernels.toBf16(b, address(bBf16), nb);
    kernels.gemm(precision, address(aBf16), aRows, aCols, address(bBf16), bRows, bCols, c, transA, transB, beta,
        batch);
  }

  // ---- fused ops ----

  @Override
  public void rmsNormForward(Tensor x, Tensor w, double eps, Tensor y, Tensor rstd) {
    kernels.rmsNormForward(f32(x), f32(w), f32(y), f64(rstd), (int) x.size(0), (int) x.size(1), eps);
  }

  @Override
  public void rmsNormBackward(Tensor x, Tensor w, Tensor rstd, Tensor dy, Tensor dx, Tensor dw) {
    kernels.rmsNormBackward(f32(x), f32(w), f64(rstd), f32(dy), f32(dx), f32(dw), (int) x.size(0), (int) x.size(1));
  }

  @Override
  public void ropeLayout(Tensor rows, Tensor heads, int batch, int nHeads, Tensor cos, Tensor sin, boolean toRows) {
    kernels.ropeLayout(f32(rows), f32(heads), batch, nHeads, (int) heads.size(1), (int) heads.size(2), f64OrNull(cos),
        f64OrNull(sin), toRows);
  }

  /** The probabilities [B*H, T, T] and, for the backward, their gradient: the materialised algorithm. */
  @Override
  public long[] attentionStateShape(long batchHeads, long seq) {
    return new long[] {2, batchHeads, seq, seq};
  }

  @Override
  public void attentionForward(Tensor q, Tensor k, Tensor v, Tensor out, Tensor state, double scale) {
    int bh = (int) q.size(0), t = (int) q.size(1), hd = (int) q.size(2);
    long probs = f32(state);
    gemm(f32(q), t, hd, f32(k), t, hd, probs, false, true, 0, bh);
    kernels.causalSoftmaxForward(probs, bh, t, scale);
    gemm(probs, t, t, f32(v), t, hd, f32(out), false, false, 0, bh);
  }

  @Override
  public void attentionBackward(Tensor q, Tensor k, Tensor v, Tensor state, Tensor dOut, Tensor dq, Tensor dk,
      Tensor dv, double scale) {
    int bh = (int) q.size(0), t = (int) q.size(1), hd = (int) q.size(2);
    long probs = f32(state), dp = probs + 4L * bh * t * t, dCtx = f32(dOut);
    gemm(dCtx, t, hd, f32(v), t, hd, dp, false, true, 0, bh);
    gemm(probs, t, t, dCtx, t, hd, f32(dv), true, false, 0, bh);
    kernels.causalSoftmaxBackward(probs, dp, bh, t, scale);
    gemm(dp, t, t, f32(k), t, hd, f32(dq), false, false, 0, bh);
    gemm(dp, t, t, f32(q), t, hd, f32(dk), true, false, 0, bh);
  }

  @Override
  public void swigluForward(Tensor h1, Tensor h3, Tensor a, Tensor saved) {
    kernels.swigluForward(f32(h1), f32(h3), f32(a), f32(saved), h1.length());
  }

  @Override
  public void swigluBackward(Tensor h1, Tensor h3, Tensor saved, Tensor da, Tensor dh1, Tensor dh3) {
    kernels.swigluBackward(f32(h1), f32(h3), f32(saved), f32(da), f32(dh1), f32(dh3), h1.length());
  }

  @Override
  public void geluForward(Tensor h1, Tensor a) {
    kernels.geluForward(f32(h1), f32(a), h1.length());
  }

  @Override
  public void geluBackward(Tensor h1, Tensor da, Tensor dh1) {
    kernels.geluBackward(f32(h1), f32(da), f32(dh1), h1.length());
  }

  @Override
  public void crossEntropy(Tensor logits, Tensor targets, long globalCount, Tensor lossSum) {
    int rows = (int) logits.size(0);
    rowLoss = scratch(rowLoss, DType.F64, rows);
    kernels.crossEntropy(f32(logits), i32(targets), address(rowLoss), rows, (int) logits.size(1), globalCount,
        f64(lossSum));
  }

  // ---- rows ----

  /** The row width of a row op's matrices (they must agree). */
  private static int width(Tensor a, Tensor b) {
    if (a.rank() != 2 || b.rank() != 2 || a.size(1) != b.size(1)) {
      throw new IllegalArgumentException("row op needs two matrices of one width, got " + a + " and " + b);
    }
    return (int) a.size(1);
  }

  @Override
  public void gather(Tensor src, Tensor srcRow, int count, Tensor dst) {
    kernels.gather(f32(src), i32(srcRow), count, width(src, dst), f32(dst));
  }

  @Override
  public void scatter(Tensor src, Tensor srcRow, Tensor scale, Tensor dstRow, int count, Tensor dst) {
    kernels.scatter(f32(src), i32(srcRow), f64OrNull(scale), i32(dstRow), count, width(src, dst), f32(dst));
  }

  @Override
  public void scatterAdd(Tensor src, Tensor srcRow, Tensor scale, Tensor dstRow, int count, Tensor dst) {
    kernels.scatterAdd(f32(src), srcRow == null ? 0 : i32(srcRow), f64OrNull(scale), i32(dstRow), count,
        width(src, dst), f32(dst));
  }

  @Override
  public void rowDots(Tensor a, Tensor aRow, Tensor b, Tensor bRow, int count, Tensor out) {
    kernels.rowDots(f32(a), i32(aRow), f32(b), i32(bRow), count, width(a, b), f64(out));
  }

  // ---- routing ----

  @Override
  public void routerSoftmax(Tensor logits, Tensor probs, Tensor lse) {
    kernels.routerSoftmax(f32(logits), f64(probs), f64(lse), (int) logits.size(0), (int) logits.size(1));
  }

  @Override
  public void routeTopK(Tensor probs, Tensor bias, int k, boolean normalize, Tensor token, Tensor expert, Tensor gate) {
    kernels.routeTopK(f64(probs), f64OrNull(bias), (int) probs.size(0), (int) probs.size(1), k, normalize, i32(token),
        i32(expert), f64(gate));
  }

  @Override
  public void routeExpertChoice(Tensor probs, int capacity, Tensor token, Tensor expert, Tensor gate) {
    int t = (int) probs.size(0), e = (int) probs.size(1);
    chosen = scratch(chosen, DType.I32, (long) t * e);
    kernels.routeExpertChoice(f64(probs), t, e, capacity, address(chosen), i32(token), i32(expert), f64(gate));
  }

  @Override
  public void routeHash(Tensor ids, int experts, Tensor token, Tensor expert, Tensor gate) {
    kernels.routeHash(i32(ids), (int) ids.length(), experts, i32(token), i32(expert), f64(gate));
  }

  @Override
  public void planDispatch(Tensor token, Tensor expert, Tensor gate, Tensor probs, Tensor lse, int capacity,
      boolean byGate, Tensor expertOrder, Tensor slot, Tensor sendToken, Tensor stats) {
    int a = (int) expert.length(), e = (int) expertOrder.length(), t = lse == null ? 0 : (int) lse.length();
    order = scratch(order, DType.I32, a);
    work = scratch(work, DType.I32, a + 3L * e);
    kernels.planDispatch(i32(token), i32(expert), f64(gate), f64OrNull(probs), f64OrNull(lse), t, a, e, capacity,
        byGate, i32(expertOrder), i32(slot), i32(sendToken), f64(stats), address(order), address(work));
  }

  @Override
  public void routerBackward(Tensor token, Tensor expert, Tensor gate, Tensor dGate, Tensor probs, Tensor lse,
      Tensor auxGradPerProb, double zScale, int normalizedTopK, Tensor dLogits) {
    int t = (int) probs.size(0), e = (int) probs.size(1);
    dProbs = scratch(dProbs, DType.F64, (long) t * e);
    kernels.routerBackward(i32(token), i32(expert), f64(gate), f64(dGate), f64(probs), f64(lse),
        f64OrNull(auxGradPerProb), zScale, normalizedTopK, t, e, (int) expert.length(), address(dProbs),
        f32(dLogits));
  }

  // ---- optimizer ----

  @Override
  public void adamw(Tensor w, Tensor g, Tensor m, Tensor v, double beta1, double beta2, double eps, double decay,
      double stepSize, double bc2Sqrt) {
    kernels.adamw(f32(w), f32(g), f32(m), f32(v), w.length(), beta1, beta2, eps, decay, stepSize, bc2Sqrt);
  }
}
