package io.moespark.ops.backend.cuda;

import com.sun.jna.Library;
import com.sun.jna.Memory;
import com.sun.jna.Native;
import com.sun.jna.Pointer;
import io.moespark.ops.config.RunConfig;
import java.nio.ByteBuffer;
import java.util.Map;
import java.util.TreeMap;

/**
 * The device layer on the host: "device memory" is native memory, and a launch runs the kernels of
 * moe_kernels.cu compiled for the CPU (target/kernels-host/libmoe_kernels_host.so, built by
 * src/main/cuda/build-kernels.sh; the build passes its path as {@code moe.kernels.host}). Like a GPU it
 * refuses what would fault there: a copy outside a live allocation, a pointer argument (other than null)
 * that points into no live allocation (a freed or never allocated buffer), an unknown kernel. New memory
 * is filled with 0xff bytes (NaN in every floating type, -1 as an int), as device memory holds whatever
 * was there: a value read before it is written shows in the results instead of passing as a zero.
 */
public final class HostDeviceLayer implements DeviceLayer {
  /** The host library's one entry point (host_launch.cpp). */
  interface Kernels extends Library {
    int moe_host_launch(String name, int gx, int gy, int gz, int bx, int by, int bz, Pointer args);

    int moe_host_gemm(int inputs, int transa, int transb, int m, int n, int k, float alpha, Pointer a, int lda,
        Pointer b, int ldb, float beta, Pointer c, int ldc);
  }

  private static final Kernels KERNELS = Native.load(library(), Kernels.class);

  private final TreeMap<Long, Memory> live = new TreeMap<>();
  private final Map<Long, Long> requested = new java.util.HashMap<>();
  private final long capacity;
  private long held;
  private int launches;
  private long events;

  /** A device with as much memory as the host gives. */
  public HostDeviceLayer() {
    this(Long.MAX_VALUE);
  }

  /** A device of {@code capacity} bytes: an allocation past it fails as a full GPU's does. */
  public HostDeviceLayer(long capacity) {
    this.capacity = capacity;
  }

  private static String library() {
    String path = System.getProperty("moe.kernels.host");
    if (path == null || !new java.io.File(path).isFile()) {
      throw new IllegalStateException("moe.kernels.host names no file (" + path + "): build expert-ops with Maven,"
          + " whose generate-resources phase compiles the kernels for the host");
    }
    return path;
  }

  @Override
  public String name() {
    return "host";
  }

  @Override
  public long alloc(long bytes) {
    if (bytes > capacity - held) {
      throw new OutOfMemory(name() + " has not " + bytes + " bytes free (" + held + " of " + capacity + " held)");
    }
    held += bytes;
    Memory m = new Memory(Math.max(1, bytes));
    m.setMemory(0, m.size(), (byte) 0xff);
    live.put(Pointer.nativeValue(m), m);
    requested.put(Pointer.nativeValue(m), bytes);
    return Pointer.nativeValue(m);
  }

  @Override
  public void free(long address) {
    Memory m = live.remove(address);
    if (m == null) {
      throw new IllegalArgumentException("free of " + Long.toHexString(address) + ": not an allocation's start");
    }
    held -= requested.remove(address);
    m.close();
  }

  @Override
  public void zero(long address, long bytes) {
    check(address, bytes, "zero");
    new Pointer(address).setMemory(0, bytes, (byte) 0);
  }

  @Override
  public void copy(long src, long dst, long bytes) {
    check(src, bytes, "copy from");
    check(dst, bytes, "copy to");
    if (src < dst + bytes && dst < src + bytes && bytes > 0) {
      throw new IllegalArgumentException("copy of " + bytes + " bytes between overlapping ranges");
    }
    new Pointer(dst).write(0, new Pointer(src).getByteArray(0, (int) bytes), 0, (int) bytes);
  }

  @Override
  public void copyToDevice(ByteBuffer src, long dst) {
    int n = src.remaining();
    check(dst, n, "copy to the device");
    byte[] b = new byte[n];
    src.duplicate().get(b);
    new Pointer(dst).write(0, b, 0, n);
  }

  @Override
  public void copyToHost(long src, ByteBuffer dst) {
    int n = dst.remaining();
    check(src, n, "copy to the host");
    dst.put(new Pointer(src).getByteArray(0, n));
  }

  @Override
  public void launch(String kernel, int blocks, int threads, KernelArgs args) {
    Memory params = new Memory(8L * Math.max(1, args.count()));
    Pointer slots = Native.getDirectBufferPointer(args.slots());
    for (int i = 0; i < args.count(); i++) {
      if (args.isAddress(i) && args.slot(i) != 0) { // 0: an optional argument left out
        check(args.slot(i), 0, kernel + " argument " + i);
      }
      params.setPointer(8L * i, slots.share(8L * i));
    }
    int rc = KERNELS.moe_host_launch(kernel, blocks, 1, 1, threads, 1, 1, params);
    if (rc != 0) {
      throw new IllegalStateException(kernel + " on the host: " + switch (rc) {
        case 1 -> "no such kernel";
        case 2 -> "a block of " + threads + " threads";
        case 4 -> "part of a block ended while the rest waited at __syncthreads";
        default -> "error " + rc;
      });
    }
    launches++;
  }

  @Override
  public void gemm(RunConfig.Precision precision, boolean transA, boolean transB, int m, int n, int k, float alpha,
      long a, int lda, long strideA, long b, int ldb, long strideB, float beta, long c, int ldc, long strideC,
      int batch) {
    if (batch < 0) {
      throw new IllegalArgumentException("gemm: batch " + batch);
    }
    int width = precision == RunConfig.Precision.BF16 ? 2 : 4;
    for (int i = 0; i < batch; i++) {
      long ai = a + width * i * strideA, bi = b + width * i * strideB, ci = c + 4L * i * strideC;
      // Every element the product reads or writes lies in live memory (a wrong leading dimension reads past it).
      check(ai, extent(transA ? m : k, lda, transA ? k : m, width), "gemm A[" + i + "]");
      check(bi, extent(transB ? k : n, ldb, transB ? n : k, width), "gemm B[" + i + "]");
      check(ci, extent(n, ldc, m, 4), "gemm C[" + i + "]");
      int rc = KERNELS.moe_host_gemm(precision.ordinal(), transA ? 1 : 0, transB ? 1 : 0, m, n, k, alpha,
          new Pointer(ai), lda, new Pointer(bi), ldb, beta, new Pointer(ci), ldc);
      if (rc != 0) {
        throw new IllegalArgumentException("gemm: parameter " + rc + " is invalid (m=" + m + " n=" + n + " k=" + k
            + " lda=" + lda + " ldb=" + ldb + " ldc=" + ldc + ")");
      }
    }
  }

  /** Work runs as it is issued here: every event is done when recorded. */
  @Override
  public long record() {
    return ++events;
  }

  @Override
  public boolean isDone(long event) {
    return true;
  }

  @Override
  public void synchronize(long event) {}

  @Override
  public void release(long event) {}

  /** Bytes a column-major matrix of {@code cols} columns of {@code rows} rows spans with leading dimension ld. */
  private static long extent(int cols, int ld, int rows, int width) {
    return cols == 0 || rows == 0 ? 0 : width * ((long) (cols - 1) * ld + rows);
  }

  /** Launches so far. */
  int launches() {
    return launches;
  }

  /** Live allocations. */
  int allocations() {
    return live.size();
  }

  private void check(long address, long bytes, String what) {
    Map.Entry<Long, Memory> e = live.floorEntry(address);
    if (e == null || address + bytes > e.getKey() + e.getValue().size() || address >= e.getKey() + e.getValue().size()) {
      throw new IllegalArgumentException(what + ": [" + Long.toHexString(address) + ", +" + bytes
          + ") is not inside a live allocation");
    }
  }

  @Override
  public void close() {
    live.values().forEach(Memory::close);
    live.clear();
    requested.clear();
    held = 0;
  }
}
