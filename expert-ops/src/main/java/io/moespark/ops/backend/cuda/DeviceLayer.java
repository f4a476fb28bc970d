package io.moespark.ops.backend.cuda;

import io.moespark.ops.config.RunConfig;
import java.nio.ByteBuffer;

/**
 * What the CUDA backend asks of a device: memory, copies, and launches of the kernels of
 * {@code src/main/cuda/moe_kernels.cu} by name. On a GPU it is the CUDA driver API (one context per rank
 * thread); in the tests it is a host implementation that runs the same kernel sources compiled for the CPU
 * (a block's threads as fibers that meet at each {@code __syncthreads}), so everything above this interface (addresses,
 * argument order and types, grid sizes, GEMM arguments) is checked without a GPU. One stream: operations run in the order
 * they are issued, and a copy to the host returns once the data is there.
 */
public interface DeviceLayer extends AutoCloseable {
  /** {@link #alloc}'s failure when the device has not that much memory free. */
  final class OutOfMemory extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public OutOfMemory(String message) {
      super(message);
    }
  }

  /** A short name for messages ("host", "cuda:0"). */
  String name();

  /**
   * {@code bytes} of device memory (its address; 0 bytes gives a valid address that must not be read). Not
   * zeroed. Throws {@link OutOfMemory} when the device has not that much free.
   */
  long alloc(long bytes);

  void free(long address);

  /** Sets {@code bytes} bytes from {@code address} on to 0. */
  void zero(long address, long bytes);

  /** Copies {@code bytes} bytes between device addresses (the ranges do not overlap). */
  void copy(long src, long dst, long bytes);

  /** Copies {@code src}'s remaining bytes to {@code dst}. */
  void copyToDevice(ByteBuffer src, long dst);

  /** Fills {@code dst}'s remaining bytes from {@code src}. */
  void copyToHost(long src, ByteBuffer dst);

  /** Runs {@code kernel} over {@code blocks} blocks of {@code threads} threads each. */
  void launch(String kernel, int blocks, int threads, KernelArgs args);

  /**
   * cuBLAS's strided batched GEMM: for i in [0, batch), C_i = alpha op(A_i) op(B_i) + beta C_i on
   * column-major matrices, op(A) m x k, op(B) k x n, C m x n, with leading dimensions lda, ldb, ldc and X_i
   * at X + i strideX elements (C is not read when beta is 0). C is F32; A and B are F32 multiplied as
   * {@code precision} says (FP32: as they are; TF32: rounded to TF32 by the tensor cores), or bf16 values
   * (BF16). Sums accumulate in F32 or wider.
   */
  void gemm(RunConfig.Precision precision, boolean transA, boolean transB, int m, int n, int k, float alpha, long a,
      int lda, long strideA, long b, int ldb, long strideB, float beta, long c, int ldc, long strideC, int batch);

  /** Marks the work issued so far; the handle is released by {@link #release}. */
  long record();

  /** Whether the work before {@code event} is done. */
  boolean isDone(long event);

  /** Blocks until the work before {@code event} is done. */
  void synchronize(long event);

  void release(long event);

  @Override
  void close();
}
