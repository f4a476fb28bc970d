package io.moespark.ops.backend.cuda;

import java.nio.ByteBuffer;

/**
 * What the CUDA backend asks of a device: memory, copies, and launches of the kernels of
 * {@code src/main/cuda/moe_kernels.cu} by name. On a GPU it is the CUDA driver API (one context per rank
 * thread); in the tests it is a host implementation that runs the same kernel sources compiled for the CPU
 * (a barrier per {@code __syncthreads}, blocks in turn), so everything above this interface (addresses,
 * argument order and types, grid sizes) is checked without a GPU. One stream: operations run in the order
 * they are issued, and a copy to the host returns once the data is there.
 */
public interface DeviceLayer extends AutoCloseable {
  /** A short name for messages ("host", "cuda:0"). */
  String name();

  /** {@code bytes} of device memory (its address; 0 bytes gives a valid address that must not be read). */
  long alloc(long bytes);

  void free(long address);

  /** Copies {@code src}'s remaining bytes to {@code dst}. */
  void copyToDevice(ByteBuffer src, long dst);

  /** Fills {@code dst}'s remaining bytes from {@code src}. */
  void copyToHost(long src, ByteBuffer dst);

  /** Runs {@code kernel} over {@code blocks} blocks of {@code threads} threads each. */
  void launch(String kernel, int blocks, int threads, KernelArgs args);

  /**
   * cuBLAS's {@code cublasSgemm}: C = alpha op(A) op(B) + beta C on column-major matrices, op(A) m x k,
   * op(B) k x n, C m x n, with leading dimensions lda, ldb, ldc (C is not read when beta is 0).
   */
  void sgemm(boolean transA, boolean transB, int m, int n, int k, float alpha, long a, int lda, long b, int ldb,
      float beta, long c, int ldc);

  @Override
  void close();
}
