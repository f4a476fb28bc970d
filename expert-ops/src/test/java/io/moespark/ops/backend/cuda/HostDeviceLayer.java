package io.moespark.ops.backend.cuda;

import com.sun.jna.Library;
import com.sun.jna.Memory;
import com.sun.jna.Native;
import com.sun.jna.Pointer;
import java.nio.ByteBuffer;
import java.util.Map;
import java.util.TreeMap;

/**
 * The device layer on the host: "device memory" is native memory, and a launch runs the kernels of
 * moe_kernels.cu compiled for the CPU (target/kernels-host/libmoe_kernels_host.so, built by
 * src/main/cuda/build-kernels.sh; the build passes its path as {@code moe.kernels.host}). Like a GPU it
 * refuses what would fault there: a copy outside a live allocation, a pointer argument (other than null)
 * that points into no live allocation (a freed or never allocated buffer), an unknown kernel.
 */
final class HostDeviceLayer implements DeviceLayer {
  /** The host library's one entry point (host_launch.cpp). */
  interface Kernels extends Library {
    int moe_host_launch(String name, int gx, int gy, int gz, int bx, int by, int bz, Pointer args);

    int moe_host_sgemm(int transa, int transb, int m, int n, int k, float alpha, Pointer a, int lda, Pointer b, int ldb,
        float beta, Pointer c, int ldc);
  }

  private static final Kernels KERNELS = Native.load(library(), Kernels.class);

  private final TreeMap<Long, Memory> live = new TreeMap<>();
  private int launches;

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
    Memory m = new Memory(Math.max(1, bytes));
    m.clear();
    live.put(Pointer.nativeValue(m), m);
    return Pointer.nativeValue(m);
  }

  @Override
  public void free(long address) {
    Memory m = live.remove(address);
    if (m == null) {
      throw new IllegalArgumentException("free of " + Long.toHexString(address) + ": not an allocation's start");
    }
    m.close();
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
        case 3 -> "OpenMP gave a team of another size than the block";
        default -> "error " + rc;
      });
    }
    launches++;
  }

  @Override
  public void sgemm(boolean transA, boolean transB, int m, int n, int k, float alpha, long a, int lda, long b, int ldb,
      float beta, long c, int ldc) {
    // Every element the product reads or writes lies in live memory (a wrong leading dimension reads past it).
    check(a, extent(transA ? m : k, lda, transA ? k : m), "sgemm A");
    check(b, extent(transB ? k : n, ldb, transB ? n : k), "sgemm B");
    check(c, extent(n, ldc, m), "sgemm C");
    int rc = KERNELS.moe_host_sgemm(transA ? 1 : 0, transB ? 1 : 0, m, n, k, alpha, new Pointer(a), lda, new Pointer(b),
        ldb, beta, new Pointer(c), ldc);
    if (rc != 0) {
      throw new IllegalArgumentException("sgemm: parameter " + rc + " is invalid (m=" + m + " n=" + n + " k=" + k
          + " lda=" + lda + " ldb=" + ldb + " ldc=" + ldc + ")");
    }
  }

  /** Bytes a column-major F32 matrix of {@code cols} columns of {@code rows} rows spans with leading dimension ld. */
  private static long extent(int cols, int ld, int rows) {
    return cols == 0 || rows == 0 ? 0 : 4L * ((long) (cols - 1) * ld + rows);
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
  }
}
