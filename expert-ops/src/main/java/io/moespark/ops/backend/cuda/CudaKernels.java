package io.moespark.ops.backend.cuda;

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
    if (n > 0) {
      device.launch("moe_swiglu_forward", blocks(n), BLOCK, KernelArgs.of().ptr(h1).ptr(h3).ptr(a).ptr(saved).i64(n));
    }
  }

  /** dh3 = da * silu(h1); dh1 = da * h3 * s * (1 + h1 (1 - s)) with s = saved; overwrites. */
  public void swigluBackward(long h1, long h3, long saved, long da, long dh1, long dh3, long n) {
    if (n > 0) {
      device.launch("moe_swiglu_backward", blocks(n), BLOCK,
          KernelArgs.of().ptr(h1).ptr(h3).ptr(saved).ptr(da).ptr(dh1).ptr(dh3).i64(n));
    }
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
    if (n > 0) {
      device.launch("moe_adamw", blocks(n), BLOCK, KernelArgs.of().ptr(w).ptr(g).ptr(m).ptr(v).i64(n).f64(beta1)
          .f64(beta2).f64(eps).f64(decay).f64(stepSize).f64(bc2Sqrt));
    }
  }

  /** dst (bf16) = src (F32) rounded to nearest even. */
  public void toBf16(long src, long dst, long n) {
    if (n > 0) {
      device.launch("moe_to_bf16", blocks(n), BLOCK, KernelArgs.of().ptr(src).ptr(dst).i64(n));
    }
  }

  /** dst (F32) = src (bf16), exactly. */
  public void fromBf16(long src, long dst, long n) {
    if (n > 0) {
      device.launch("moe_from_bf16", blocks(n), BLOCK, KernelArgs.of().ptr(src).ptr(dst).i64(n));
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
