package io.moespark.ops.backend;

import io.moespark.ops.tensor.DType;
import io.moespark.ops.tensor.Tensor;
import java.nio.ByteBuffer;
import java.util.Arrays;

/**
 * Where the numbers are computed: memory, views, copies to and from the host, and every kernel that the
 * model's ops ({@code nn}, {@code moe}, {@code optim}, {@code model}) and the trainer run. The ops decide
 * what to compute and in which order; a backend decides how. {@code CpuBackend} is ND4J GEMMs into
 * preallocated buffers plus fused row loops; an accelerator backend implements the same calls on device
 * memory. Index arrays (token ids, rows of a layout transform) and per-row scales stay host Java arrays:
 * routing is decided on the host (README, "Numerics").
 *
 * <p>Results must not depend on how a backend splits work over threads: kernels that sum over rows in
 * a way that reaches the results do so in a fixed order, so a run is bit-reproducible on one backend.
 */
public interface Backend {
  /** A short name for messages ("cpu", "cuda:0"). */
  String name();

  /** Sets the host threads this backend's kernels may use (a Spark task's cores). */
  void setThreads(int threads);

  // ---- memory and views ----

  /** A new zero-filled tensor. */
  Tensor zeros(DType type, long... shape);

  /** A new tensor whose contents are unspecified (every element is written before it is read). */
  Tensor empty(DType type, long... shape);

  /** Rows [from, to) of the leading dimension of a c-order tensor, as a view. */
  Tensor rows(Tensor t, long from, long to);

  /** Element {@code i} of the leading dimension, as a view of one rank less. */
  Tensor slice(Tensor t, long i);

  /** {@code length(shape)} elements of a contiguous tensor from element {@code offset} on, as a view of that shape. */
  Tensor view(Tensor t, long offset, long... shape);

  /** {@code current} when it already has this type and shape, else a new zero-filled tensor. */
  default Tensor ensure(Tensor current, DType type, long... shape) {
    if (current != null && current.dtype() == type && Arrays.equals(current.shape(), shape)) {
      return current;
    }
    return zeros(type, shape);
  }

  /**
   * Backing store for a matrix whose row count varies from step to step: {@code current} when it has at
   * least {@code rows} rows of this width, else a new one with headroom. Callers view its first rows.
   */
  default Tensor grow(Tensor current, DType type, long rows, long cols) {
    if (current == null || current.dtype() != type || current.size(1) != cols || current.size(0) < rows) {
      return zeros(type, Math.max(1, rows + rows / 4), cols);
    }
    return current;
  }

  // ---- elementwise and host transfers ----

  void fill(Tensor t, double value);

  /** dst = src, elementwise over equal lengths. */
  void copy(Tensor src, Tensor dst);

  /** y += x. */
  void add(Tensor y, Tensor x);

  /** t *= s. */
  void scale(Tensor t, double s);

  /** Appends the values of {@code t} to {@code dst} as little-endian numbers of t's type, in c order. */
  void toHost(Tensor t, ByteBuffer dst);

  /** Reads {@code t}'s values from {@code src} (little-endian numbers of t's type, in c order). */
  void fromHost(ByteBuffer src, Tensor t);

  /** The values as doubles, in c order. */
  double[] toDoubles(Tensor t);

  /** t = v, each value rounded to t's type. */
  void fromDoubles(double[] v, Tensor t);

  /** Sum of squares of all elements. */
  double sumSquares(Tensor t);

  // ---- GEMM ----

  /** C = op(A) op(B) + beta C; the one matrix product of the project. Empty operands are allowed. */
  void gemm(Tensor a, Tensor b, Tensor c, boolean transA, boolean transB, double beta);

  /** For each i of the leading dimension: C[i] = op(A[i]) op(B[i]) + beta C[i] (three [n, rows, cols] tensors). */
  void gemmBatched(Tensor a, Tensor b, Tensor c, boolean transA, boolean transB, double beta);

  // ---- fused ops of nn/ ----

  /** y = x * rsqrt(mean(x^2) + eps) * w row-wise over [N, D]; rstd [N] (F64) receives rsqrt(...). */
  void rmsNormForward(Tensor x, Tensor w, double eps, Tensor y, Tensor rstd);

  /** dw += sum_rows dy * xhat; dx += rstd * (g - xhat * mean(g * xhat)) with g = dy * w. */
  void rmsNormBackward(Tensor x, Tensor w, Tensor rstd, Tensor dy, Tensor dx, Tensor dw);

  /**
   * Between rows [B*T, H*hd] and heads [B*H, T, hd], rotating by RoPE when {@code cos}/{@code sin} ([T,
   * hd/2], F64) are given: {@code toRows} false writes heads from rows, true writes rows from heads with
   * the inverse rotation (the transpose, which is the backward of the forward).
   */
  void ropeLayout(Tensor rows, Tensor heads, int batch, int nHeads, Tensor cos, Tensor sin, boolean toRows);

  /** In place over [N, T, T]: row i becomes softmax(scale * s[i, 0..i]) and 0 above the diagonal. */
  void causalSoftmax(Tensor scores, double scale);

  /** In place: dP becomes scale * P * (dP - rowsum(dP * P)), zero above the diagonal. */
  void causalSoftmaxBackward(Tensor probs, Tensor dProbs, double scale);

  /** a = silu(h1) * h3; {@code saved} receives sigmoid(h1) for the backward. */
  void swigluForward(Tensor h1, Tensor h3, Tensor a, Tensor saved);

  /** dh3 = da * silu(h1); dh1 = da * h3 * s * (1 + h1 (1 - s)) with s = saved = sigmoid(h1); overwrites. */
  void swigluBackward(Tensor h1, Tensor h3, Tensor saved, Tensor da, Tensor dh1, Tensor dh3);

  /** a = gelu(h1), tanh approximation (PyTorch {@code approximate="tanh"}). */
  void geluForward(Tensor h1, Tensor a);

  /** dh1 = da * gelu'(h1); overwrites. */
  void geluBackward(Tensor h1, Tensor da, Tensor dh1);

  /**
   * Sum over rows of -log softmax(logits)[target]. With {@code globalCount} > 0 it also overwrites the
   * logits with (softmax - onehot) / globalCount; with 0 the logits are left unchanged.
   */
  double crossEntropy(Tensor logits, int[] targets, long globalCount);

  // ---- row gathers and scatters (layout transforms, embedding) ----

  /** dst[i] = src[srcRow[i]] for i in [0, count); a negative row gives zeros. */
  void gather(Tensor src, int[] srcRow, int count, Tensor dst);

  /** dst[dstRow[i]] = scale[i] * src[srcRow[i]] where dstRow[i] >= 0 (each destination at most once). */
  void scatter(Tensor src, int[] srcRow, double[] scale, int[] dstRow, int count, Tensor dst);

  /** dst[dstRow[i]] += scale[i] * src[srcRow[i]] in index order (skipping negative rows); scale null is 1. */
  void scatterAdd(Tensor src, int[] srcRow, double[] scale, int[] dstRow, int count, Tensor dst);

  /** out[i] = a[aRow[i]] . b[bRow[i]] (0 where bRow[i] is negative). */
  void rowDots(Tensor a, int[] aRow, Tensor b, int[] bRow, int count, double[] out);

  // ---- optimizer ----

  /**
   * One AdamW update over equal-length w, g, m, v in PyTorch's order: m = b1 m + (1 - b1) g; v = b2 v +
   * (1 - b2) g^2; w = w * decay - stepSize * m / (sqrt(v) / bc2Sqrt + eps).
   */
  void adamw(Tensor w, Tensor g, Tensor m, Tensor v, double beta1, double beta2, double eps, double decay,
      double stepSize, double bc2Sqrt);
}
