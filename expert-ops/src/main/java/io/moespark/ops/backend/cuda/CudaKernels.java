package io.moespark.ops.backend.cuda;

import io.moespark.ops.config.RunConfig;

/**
 * The launches of the project's kernels ({@code src/main/cuda/moe_kernels.cu}) on a {@link DeviceLayer}:
 * for each operation, the kernels, their grids and their arguments in the kernels' parameter order, on
 * device addresses of F32 tensors in c order (F64 where the CPU backend keeps F64: the RMSNorm's rstd, the
 * cross-entropy's sums). Each method has the semantics of the {@link io.moespark.ops.backend.Backend}
 * method of the same name; CudaKernelsTest runs them on the host against the CPU backend. No grid is
 * launched for empty inputs (a grid of 0 blocks is an error on a GPU).
 */
public final class CudaKernels {
  /** Threads per block; {@code MOE_BLOCK} in moe_kernels.cu, which the block-wide reductions assume. */
  public static final int BLOCK = 256;

  private final DeviceLayer device;

  public CudaKernels(DeviceLayer device) {
    this.device = device;
  }

  /** y [rows, d] = x * rstd * w; rstd [rows] (F64) = rsqrt(mean(x^2) + eps). One block per row. */
  public void rmsNormForward(long x, long w, long y, long rstd, int rows, int d, double eps) {
    if (rows > 0) {
      device.launch("moe_rmsnorm_forward", rows, BLOCK,
          KernelArgs.of().ptr(x).ptr(w).ptr(y).ptr(rstd).i32(rows).i32(d).f64(eps));
    }
  }

  /** dx += rstd * (g - xhat * mean(g * xhat)) with g = dy * w (a block per row); dw += sum over rows, in row order. */
  public void rmsNormBackward(long x, long w, long rstd, long dy, long dx, long dw, int rows, int d) {
    if (rows == 0 || d == 0) {
      return;
    }
    device.launch("moe_rmsnorm_backward_dx", rows, BLOCK,
        KernelArgs.of().ptr(x).ptr(w).ptr(rstd).ptr(dy).ptr(dx).i32(rows).i32(d));
    device.launch("moe_rmsnorm_backward_dw", blocks(d), BLOCK,
        KernelArgs.of().ptr(x).ptr(rstd).ptr(dy).ptr(dw).i32(rows).i32(d));
  }

  /** a = silu(h1) * h3; saved = sigmoid(h1); n elements. */
  public void swigluForward(long h1, long h3, long a, long saved, long n) {
    overElements("moe_swiglu_forward", n, KernelArgs.of().ptr(h1).ptr(h3).ptr(a).ptr(saved).i64(n));
  }

  /** dh3 = da * silu(h1); dh1 = da * h3 * s * (1 + h1 (1 - s)) with s = saved; overwrites. */
  public void swigluBackward(long h1, long h3, long saved, long da, long dh1, long dh3, long n) {
    overElements("moe_swiglu_backward", n,
        KernelArgs.of().ptr(h1).ptr(h3).ptr(saved).ptr(da).ptr(dh1).ptr(dh3).i64(n));
  }

  /**
   * lossSum[0] (F64) = sum over rows of -log softmax(logits)[targets] (targets I32 [rows]), summed in row
   * order from rowLoss (F64 [rows], scratch); with globalCount > 0 the logits become (softmax - onehot) /
   * globalCount.
   */
  public void crossEntropy(long logits, long targets, long rowLoss, int rows, int vocab, long globalCount, long lossSum) {
    if (rows > 0) {
      device.launch("moe_cross_entropy_rows", rows, BLOCK,
          KernelArgs.of().ptr(logits).ptr(targets).ptr(rowLoss).i32(rows).i32(vocab).i64(globalCount));
    }
    device.launch("moe_sum_in_order", 1, 1, KernelArgs.of().ptr(rowLoss).i32(rows).ptr(lossSum).i32(0));
  }

  /** One AdamW update of n elements, in PyTorch's order (see {@code Backend.adamw}). */
  public void adamw(long w, long g, long m, long v, long n, double beta1, double beta2, double eps, double decay,
      double stepSize, double bc2Sqrt) {
    overElements("moe_adamw", n, KernelArgs.of().ptr(w).ptr(g).ptr(m).ptr(v).i64(n).f64(beta1).f64(beta2).f64(eps)
        .f64(decay).f64(stepSize).f64(bc2Sqrt));
  }

  /**
   * C [m, n] = op(A) op(B) + beta C on row-major matrices: A stored [aRows, aCols], B [bRows, bCols], over
   * {@code batch} consecutive matrices of each operand (attention's heads) in one launch; A and B F32 (or
   * bf16 with precision BF16), C F32. A row-major matrix is its transpose in column-major order, so this is
   * the column-major product C^T = op(B)^T op(A)^T: B first, each operand's leading dimension its row length.
   */
  public void gemm(RunConfig.Precision precision, long a, int aRows, int aCols, long b, int bRows, int bCols, long c,
      boolean transA, boolean transB, double beta, int batch) {
    int m = transA ? aCols : aRows, k = transA ? aRows : aCols, n = transB ? bRows : bCols;
    if ((transB ? bCols : bRows) != k) {
      throw new IllegalArgumentException("GEMM of op(A) " + m + "x" + k + " and op(B) with " + (transB ? bCols : bRows)
          + " rows");
    }
    if ((long) m * n * batch == 0) {
      return;
    }
    device.gemm(precision, transB, transA, n, m, k, 1f, b, Math.max(1, bCols), (long) bRows * bCols, a,
        Math.max(1, aCols), (long) aRows * aCols, (float) beta, c, n, (long) m * n, batch);
  }

  /** a = gelu(h1), tanh approximation. */
  public void geluForward(long h1, long a, long n) {
    overElements("moe_gelu_forward", n, KernelArgs.of().ptr(h1).ptr(a).i64(n));
  }

  /** dh1 = da * gelu'(h1); overwrites. */
  public void geluBackward(long h1, long da, long dh1, long n) {
    overElements("moe_gelu_backward", n, KernelArgs.of().ptr(h1).ptr(da).ptr(dh1).i64(n));
  }

  public void fill(long t, float value, long n) {
    overElements("moe_fill", n, KernelArgs.of().ptr(t).f32(value).i64(n));
  }

  public void fillF64(long t, double value, long n) {
    overElements("moe_fill_f64", n, KernelArgs.of().ptr(t).f64(value).i64(n));
  }

  /** y += x. */
  public void add(long y, long x, long n) {
    overElements("moe_add", n, KernelArgs.of().ptr(y).ptr(x).i64(n));
  }

  /** t *= s (in F32). */
  public void scale(long t, float s, long n) {
    overElements("moe_scale", n, KernelArgs.of().ptr(t).f32(s).i64(n));
  }

  /** dst[i] = src[srcRow[i]] for i in [0, count), rows of width d; a negative row gives zeros. */
  public void gather(long src, long srcRow, int count, int d, long dst) {
    if ((long) count * d > 0) {
      device.launch("moe_gather_rows", blocks((long) count * d), BLOCK,
          KernelArgs.of().ptr(src).ptr(srcRow).i32(count).i32(d).ptr(dst));
    }
  }

  /** dst[dstRow[i]] = scale[i] * src[srcRow[i]] where dstRow[i] >= 0 (each destination at most once); scale 0: 1. */
  public void scatter(long src, long srcRow, long scale, long dstRow, int count, int d, long dst) {
    if ((long) count * d > 0) {
      device.launch("moe_scatter_rows", blocks((long) count * d), BLOCK,
          KernelArgs.of().ptr(src).ptr(srcRow).ptr(scale).ptr(dstRow).i32(count).i32(d).ptr(dst));
    }
  }

  /** dst[dstRow[i]] += scale[i] * src[srcRow[i]] in index order; srcRow 0: the identity; scale 0: 1. */
  public void scatterAdd(long src, long srcRow, long scale, long dstRow, int count, int d, long dst) {
    if (count > 0 && d > 0) {
      device.launch("moe_scatter_add_rows", blocks(d), BLOCK,
          KernelArgs.of().ptr(src).ptr(srcRow).ptr(scale).ptr(dstRow).i32(count).i32(d).ptr(dst));
    }
  }

  /** out[i] (F64) = a[aRow[i]] . b[bRow[i]] (0 where bRow[i] is negative), rows of width d. */
  public void rowDots(long a, long aRow, long b, long bRow, int count, int d, long out) {
    if (count > 0) {
      device.launch("moe_row_dots", count, BLOCK, KernelArgs.of().ptr(a).ptr(aRow).ptr(b).ptr(bRow).i32(count).i32(d)
          .ptr(out));
    }
  }

  /** The partial sums a part of n elements takes in {@link #sumSquares}: a number fixed by n. */
  public static int sumSquaresBlocks(long n) {
    return (int) Math.min(1024, (n + BLOCK - 1) / BLOCK);
  }

  /**
   * out[index] (F64) = the sum of squares of every element of the parts (F32, lengths[p] elements each), in
   * a fixed order: each part's partial sums into {@code partials} (F64, the sum of {@link
   * #sumSquaresBlocks} over the parts), then all partials in order.
   */
  public void sumSquares(long[] parts, long[] lengths, long partials, long out, int index) {
    int used = 0;
    for (int p = 0; p < parts.length; p++) {
      int b = sumSquaresBlocks(lengths[p]);
      if (b > 0) {
        device.launch("moe_sum_squares", b, BLOCK, KernelArgs.of().ptr(parts[p]).i64(lengths[p]).ptr(partials + 8L * used));
        used += b;
      }
    }
    device.launch("moe_sum_in_order", 1, 1, KernelArgs.of().ptr(partials).i32(used).ptr(out).i32(index));
  }

  /** Each row of scores [batchHeads * t, t] becomes the causal softmax of scale * scores (the attention probabilities). */
  public void causalSoftmaxForward(long scores, int batchHeads, int t, double scale) {
    if ((long) batchHeads * t > 0) {
      device.launch("moe_causal_softmax_forward", batchHeads * t, BLOCK,
          KernelArgs.of().ptr(scores).i32(batchHeads * t).i32(t).f64(scale));
    }
  }

  /** dProbs becomes the gradient of the scaled scores: scale * p * (dProbs - rowsum(dProbs * p)), causal. */
  public void causalSoftmaxBackward(long probs, long dProbs, int batchHeads, int t, double scale) {
    if ((long) batchHeads * t > 0) {
      device.launch("moe_causal_softmax_backward", batchHeads * t, BLOCK,
          KernelArgs.of().ptr(probs).ptr(dProbs).i32(batchHeads * t).i32(t).f64(scale));
    }
  }

  /** Rows [B*T, H*hd] to heads [B*H, T, hd] or back ({@code toRows}), rotating when cos/sin are not 0. */
  public void ropeLayout(long rows, long heads, int batch, int nHeads, int seq, int hd, long cos, long sin,
      boolean toRows) {
    long n = (long) batch * nHeads * seq * hd;
    overElements("moe_rope_layout", n, KernelArgs.of().ptr(rows).ptr(heads).i32(batch).i32(nHeads).i32(seq).i32(hd)
        .ptr(cos).ptr(sin).i32(toRows ? 1 : 0));
  }

  // ---- routing (F64 arithmetic; token, expert and row indices I32) ----

  /** probs [t, e] (F64) = softmax of the logits [t, e] (F32); lse [t] (F64). */
  public void routerSoftmax(long logits, long probs, long lse, int t, int e) {
    if (t > 0) {
      device.launch("moe_router_softmax", blocks(t), BLOCK, KernelArgs.of().ptr(logits).ptr(probs).ptr(lse).i32(t).i32(e));
    }
  }

  /** Top-k per token of probs + bias (bias 0: none): assignment t k + s; gates renormalised when normalize. */
  public void routeTopK(long probs, long bias, int t, int e, int k, boolean normalize, long token, long expert, long gate) {
    if (t > 0) {
      device.launch("moe_route_topk", blocks(t), BLOCK, KernelArgs.of().ptr(probs).ptr(bias).i32(t).i32(e).i32(k)
          .i32(normalize ? 1 : 0).ptr(token).ptr(expert).ptr(gate));
    }
  }

  /** Expert choice: each expert's {@code capacity} tokens, listed in (token, expert) order; chosen: I32 [t, e] scratch. */
  public void routeExpertChoice(long probs, int t, int e, int capacity, long chosen, long token, long expert, long gate) {
    if ((long) t * e == 0) {
      return;
    }
    device.launch("moe_expert_choice_mark", blocks((long) t * e), BLOCK,
        KernelArgs.of().ptr(probs).i32(t).i32(e).i32(capacity).ptr(chosen));
    device.launch("moe_expert_choice_list", 1, 1,
        KernelArgs.of().ptr(probs).ptr(chosen).i32(t).i32(e).ptr(token).ptr(expert).ptr(gate));
  }

  /** Hash routing of t tokens by their ids. */
  public void routeHash(long ids, int t, int experts, long token, long expert, long gate) {
    if (t > 0) {
      device.launch("moe_route_hash", blocks(t), BLOCK, KernelArgs.of().ptr(ids).i32(t).i32(experts).ptr(token)
          .ptr(expert).ptr(gate));
    }
  }

  /**
   * The dispatch plan of a assignments (see {@code Backend.planDispatch}); probs and lse 0 when the router
   * has none (hash). Scratch: order (I32 [a], by gate when byGate) and work (I32 [a + 3e]).
   */
  public void planDispatch(long token, long expert, long gate, long probs, long lse, int t, int a, int e, int capacity,
      boolean byGate, long expertOrder, long slot, long sendToken, long stats, long order, long work) {
    if (byGate && a > 0) {
      device.launch("moe_rank_by_gate", blocks(a), BLOCK, KernelArgs.of().ptr(gate).i32(a).ptr(order));
    }
    device.launch("moe_plan_dispatch", 1, 1, KernelArgs.of().ptr(token).ptr(expert).ptr(byGate && a > 0 ? order : 0)
        .ptr(probs).ptr(lse).i32(t).i32(a).i32(e).i32(capacity).ptr(expertOrder).ptr(slot).ptr(sendToken).ptr(stats)
        .ptr(work));
  }

  /**
   * The router's backward into dLogits [t, e] (F32, overwritten); aux 0: none; dp: F64 [t, e] scratch.
   * {@code normalizedTopK} = k > 0 goes through each token's renormalised k gates.
   */
  public void routerBackward(long token, long expert, long gate, long dGate, long probs, long lse, long aux,
      double zScale, int normalizedTopK, int t, int e, int a, long dp, long dLogits) {
    if ((long) t * e == 0) {
      return;
    }
    fillF64(dp, 0, (long) t * e);
    int threads = normalizedTopK > 0 ? t : a;
    if (threads > 0) {
      device.launch("moe_router_backward_gates", blocks(threads), BLOCK, KernelArgs.of().ptr(token).ptr(expert)
          .ptr(gate).ptr(dGate).ptr(probs).i32(t).i32(e).i32(a).i32(normalizedTopK).ptr(dp));
    }
    device.launch("moe_router_backward_softmax", blocks(t), BLOCK, KernelArgs.of().ptr(probs).ptr(lse).ptr(aux)
        .f64(zScale).i32(t).i32(e).ptr(dp).ptr(dLogits));
  }

  /** dst (bf16) = src (F32) rounded to nearest even. */
  public void toBf16(long src, long dst, long n) {
    overElements("moe_to_bf16", n, KernelArgs.of().ptr(src).ptr(dst).i64(n));
  }

  /** dst (F32) = src (bf16), exactly. */
  public void fromBf16(long src, long dst, long n) {
    overElements("moe_from_bf16", n, KernelArgs.of().ptr(src).ptr(dst).i64(n));
  }

  /** dst (F64) = src (F32), exactly. */
  public void f32ToF64(long src, long dst, long n) {
    overElements("moe_f32_to_f64", n, KernelArgs.of().ptr(src).ptr(dst).i64(n));
  }

  /** dst (F32) = src (F64) rounded to nearest. */
  public void f64ToF32(long src, long dst, long n) {
    overElements("moe_f64_to_f32", n, KernelArgs.of().ptr(src).ptr(dst).i64(n));
  }

  /** A kernel of one thread per element over n elements (no launch for none). */
  private void overElements(String kernel, long n, KernelArgs args) {
    if (n > 0) {
      device.launch(kernel, blocks(n), BLOCK, args);
    }
  }

  private static int blocks(long n) {
    long b = (n + BLOCK - 1) / BLOCK;
    if (b > Integer.MAX_VALUE) {
      throw new IllegalArgumentException(n + " elements are more than one launch covers");
    }
    return (int) b;
  }
}
