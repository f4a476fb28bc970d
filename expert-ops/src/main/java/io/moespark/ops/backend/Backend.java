package io.moespark.ops.backend;

import io.moespark.ops.tensor.DType;
import io.moespark.ops.tensor.Tensor;
import java.nio.ByteBuffer;
import java.util.Arrays;

/**
 * Where the numbers are computed: one instance per rank (its arena: every buffer of the rank is allocated
 * and freed through it, {@link #footprint}), memory and views, copies to and from the host, and every
 * kernel that the model's ops ({@code nn}, {@code moe}, {@code optim}, {@code model}) and the trainer
 * run. The ops decide what to compute and in which order; a backend decides how.
 *
 * <p>Shaped for a device: everything a step decides stays in the backend's memory. Token ids, targets,
 * the routing (softmax, top-k with the selection bias, renormalisation, capacity, the layout transform's
 * row indices) and its statistics are tensors (I32 indices, F64 routing arithmetic), and reductions write
 * into tensors. The host reads, per step, only what it must: the per-expert counts that size the
 * exchange (with the aux/z statistics in the same copy) and the logged scalars ({@link HostTransfers}
 * counts every copy).
 *
 * <p>Work is issued in order on one stream per backend instance; {@link #record} and {@link #waitFor}
 * let an exchange thread wait for exactly the work that produced its block while compute goes on.
 *
 * <p>Results must not depend on how a backend splits work: reductions that reach the results sum in a
 * fixed order, so a run is bit-reproducible on one backend.
 */
public interface Backend {
  /** A short name for messages ("cpu", "cuda:0"). */
  String name();

  /** Sets the host threads this backend's kernels may use (a Spark task's cores). */
  void setThreads(int threads);

  // ---- the arena: memory, views, events ----

  /** A new zero-filled tensor. */
  Tensor zeros(DType type, long... shape);

  /** A new tensor whose contents are unspecified (every element is written before it is read). */
  Tensor empty(DType type, long... shape);

  /** Returns a tensor made by {@link #zeros} or {@link #empty} to the arena; its views die with it. */
  void free(Tensor t);

  /** What this instance holds now, at most, and how often it allocated. */
  Footprint footprint();

  /** Host copies made through this instance. */
  HostTransfers transfers();

  /** Rows [from, to) of the leading dimension of a c-order tensor, as a view. */
  Tensor rows(Tensor t, long from, long to);

  /** Element {@code i} of the leading dimension, as a view of one rank less. */
  Tensor slice(Tensor t, long i);

  /** {@code length(shape)} elements of a contiguous tensor from element {@code offset} on, as a view of that shape. */
  Tensor view(Tensor t, long offset, long... shape);

  /** {@code current} when it already has this type and shape, else a new zero-filled tensor (current freed). */
  default Tensor ensure(Tensor current, DType type, long... shape) {
    if (current != null && current.dtype() == type && Arrays.equals(current.shape(), shape)) {
      return current;
    }
    if (current != null) {
      free(current);
    }
    return zeros(type, shape);
  }

  /**
   * Backing store for a matrix whose row count varies from step to step: {@code current} when it has at
   * least {@code rows} rows of this width, else a new one with headroom (current freed). Callers view its
   * first rows.
   */
  default Tensor grow(Tensor current, DType type, long rows, long cols) {
    if (current == null || current.dtype() != type || current.size(1) != cols || current.size(0) < rows) {
      if (current != null) {
        free(current);
      }
      return zeros(type, Math.max(1, rows + rows / 4), cols);
    }
    return current;
  }

  /** A point in this instance's stream: done when all work issued before it is. */
  interface Event {
    boolean isDone();

    /** Blocks the calling thread until the event is done. */
    void synchronize();
  }

  /** Marks the work issued so far (for example the packing of an exchange's send blocks). */
  Event record();

  /** Work issued after this call starts only when {@code e} is done (for example a received block's copy). */
  void waitFor(Event e);

  // ---- elementwise and host transfers ----

  void fill(Tensor t, double value);

  /** dst = src, elementwise over equal lengths, converting between floating types (to BF16: round to nearest even). */
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

  /** t = v for an I32 tensor of v's length (token ids, targets). */
  void fromInts(int[] v, Tensor t);

  // ---- reductions ----

  /**
   * out[index] (F64) = the sum over {@code parts} in order of each part's sum of squares (the parameter
   * views of a gradient block: one launch for the global gradient norm, no host round trip).
   */
  void sumSquares(Tensor[] parts, Tensor out, int index);

  // ---- GEMM ----

  /** C = op(A) op(B) + beta C; the one matrix product of the project. Empty operands are allowed. */
  void gemm(Tensor a, Tensor b, Tensor c, boolean transA, boolean transB, double beta);

  /**
   * A grouped GEMM of different sizes: for each g in order, C[g] = op(A[g]) op(B[g]) + beta C[g]. Several
   * groups may accumulate into one C (beta 1, the weight gradient of an expert over its segments); they
   * do so in group order. Empty groups are allowed.
   */
  default void gemmGrouped(Tensor[] a, Tensor[] b, Tensor[] c, boolean transA, boolean transB, double beta) {
    if (a.length != b.length || a.length != c.length) {
      throw new IllegalArgumentException("grouped GEMM of " + a.length + ", " + b.length + " and " + c.length
          + " operands");
    }
    for (int g = 0; g < a.length; g++) { // one GEMM per group, in order: a backend with a grouped kernel overrides
      gemm(a[g], b[g], c[g], transA, transB, beta);
    }
  }

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

  /** The shape of what {@link #attentionForward} keeps for the backward (the backend's choice of algorithm). */
  long[] attentionStateShape(long batchHeads, long seq);

  /**
   * Causal attention per head over [B*H, T, hd]: out = softmax(scale q k^T + causal mask) v; {@code state}
   * (of {@link #attentionStateShape}) receives what the backward needs.
   */
  void attentionForward(Tensor q, Tensor k, Tensor v, Tensor out, Tensor state, double scale);

  /** Given dOut and the forward's state, writes (overwrites) dq, dk, dv; may use state as scratch after reading it. */
  void attentionBackward(Tensor q, Tensor k, Tensor v, Tensor state, Tensor dOut, Tensor dq, Tensor dk, Tensor dv,
      double scale);

  /** a = silu(h1) * h3; {@code saved} receives sigmoid(h1) for the backward. */
  void swigluForward(Tensor h1, Tensor h3, Tensor a, Tensor saved);

  /** dh3 = da * silu(h1); dh1 = da * h3 * s * (1 + h1 (1 - s)) with s = saved = sigmoid(h1); overwrites. */
  void swigluBackward(Tensor h1, Tensor h3, Tensor saved, Tensor da, Tensor dh1, Tensor dh3);

  /** a = gelu(h1), tanh approximation (PyTorch {@code approximate="tanh"}). */
  void geluForward(Tensor h1, Tensor a);

  /** dh1 = da * gelu'(h1); overwrites. */
  void geluBackward(Tensor h1, Tensor da, Tensor dh1);

  /**
   * lossSum[0] (F64) = sum over rows of -log softmax(logits)[targets] (targets I32 [N]). With
   * {@code globalCount} > 0 it also overwrites the logits with (softmax - onehot) / globalCount; with 0
   * the logits are left unchanged. Targets are in range (the caller checks them on the host first).
   */
  void crossEntropy(Tensor logits, Tensor targets, long globalCount, Tensor lossSum);

  // ---- row gathers and scatters (layout transforms, embedding); rows are I32 tensors ----

  /** dst[i] = src[srcRow[i]] for i in [0, count); a negative row gives zeros. */
  void gather(Tensor src, Tensor srcRow, int count, Tensor dst);

  /** dst[dstRow[i]] = scale[i] * src[srcRow[i]] where dstRow[i] >= 0 (each destination at most once); scale F64 or null (1). */
  void scatter(Tensor src, Tensor srcRow, Tensor scale, Tensor dstRow, int count, Tensor dst);

  /**
   * dst[dstRow[i]] += scale[i] * src[srcRow[i]] in index order (skipping negative rows on either side);
   * srcRow null is the identity, scale null is 1.
   */
  void scatterAdd(Tensor src, Tensor srcRow, Tensor scale, Tensor dstRow, int count, Tensor dst);

  /** out[i] (F64) = a[aRow[i]] . b[bRow[i]] (0 where bRow[i] is negative). */
  void rowDots(Tensor a, Tensor aRow, Tensor b, Tensor bRow, int count, Tensor out);

  // ---- routing (all F64 arithmetic, exact and reproducible; ties choose the lower index) ----

  /** probs [T, E] (F64) = softmax of the router logits [T, E]; lse [T] (F64) their logsumexp. */
  void routerSoftmax(Tensor logits, Tensor probs, Tensor lse);

  /**
   * Top-k per token of probs + bias (bias F64 [E] or null; it shifts the choice only): assignment a = t k +
   * s is token t's s-th choice; token[a] = t, expert[a] (I32), gate[a] = its probability, divided by the
   * token's sum of chosen probabilities when {@code normalize}.
   */
  void routeTopK(Tensor probs, Tensor bias, int k, boolean normalize, Tensor token, Tensor expert, Tensor gate);

  /**
   * Expert choice: each expert takes the {@code capacity} tokens of highest probability (earlier token on
   * ties); the E * capacity assignments are listed in (token, expert) order with gate = probability.
   */
  void routeExpertChoice(Tensor probs, int capacity, Tensor token, Tensor expert, Tensor gate);

  /** Hash routing: token[t] = t, expert[t] = murmur3 finaliser of ids[t] mod experts, gate 1. */
  void routeHash(Tensor ids, int experts, Tensor token, Tensor expert, Tensor gate);

  /**
   * Capacity dropping and the layout transform of one rank's A assignments. An expert keeps at most
   * {@code capacity} assignments, in assignment order or, when {@code byGate}, by descending gate (earlier
   * first on ties). Kept assignments are laid out in the order of {@code expertOrder} (I32 [E]: the experts
   * destination-major), then in assignment order: slot[a] (I32 [A]) is a's row, -1 when dropped;
   * sendToken[row] (I32, at least A rows) is the token of each row. stats (F64 [3E + 1]): assignments per
   * expert | kept per expert | sum over tokens of probs per expert | sum of lse^2 (the last two 0 when
   * probs is null).
   */
  void planDispatch(Tensor token, Tensor expert, Tensor gate, Tensor probs, Tensor lse, int capacity, boolean byGate,
      Tensor expertOrder, Tensor slot, Tensor sendToken, Tensor stats);

  /**
   * The router's backward into dLogits [T, E] (overwritten): through the gates (dGate F64 [A]; with
   * {@code normalizedTopK} = k > 0 through the renormalisation of each token's k gates), plus the aux loss
   * (auxGradPerProb F64 [E], the same for every token, or null) and the z-loss (2 zScale lse p), through
   * the softmax.
   */
  void routerBackward(Tensor token, Tensor expert, Tensor gate, Tensor dGate, Tensor probs, Tensor lse,
      Tensor auxGradPerProb, double zScale, int normalizedTopK, Tensor dLogits);

  // ---- optimizer ----

  /**
   * One AdamW update over equal-length w, g, m, v in PyTorch's order: m = b1 m + (1 - b1) g; v = b2 v +
   * (1 - b2) g^2; w = w * decay - stepSize * m / (sqrt(v) / bc2Sqrt + eps).
   */
  void adamw(Tensor w, Tensor g, Tensor m, Tensor v, double beta1, double beta2, double eps, double decay,
      double stepSize, double bc2Sqrt);
}
