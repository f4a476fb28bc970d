package io.moespark.ops.backend.cuda;

import static org.bytedeco.cuda.global.cudart.CUDA_ERROR_NOT_READY;
import static org.bytedeco.cuda.global.cudart.CUDA_ERROR_OUT_OF_MEMORY;
import static org.bytedeco.cuda.global.cudart.CUDA_SUCCESS;
import static org.bytedeco.cuda.global.cudart.CU_EVENT_DISABLE_TIMING;
import static org.bytedeco.cuda.global.cudart.cuCtxSetCurrent;
import static org.bytedeco.cuda.global.cudart.cuDeviceGet;
import static org.bytedeco.cuda.global.cudart.cuDeviceGetCount;
import static org.bytedeco.cuda.global.cudart.cuEventCreate;
import static org.bytedeco.cuda.global.cudart.cuEventDestroy;
import static org.bytedeco.cuda.global.cudart.cuEventQuery;
import static org.bytedeco.cuda.global.cudart.cuEventRecord;
import static org.bytedeco.cuda.global.cudart.cuEventSynchronize;
import static org.bytedeco.cuda.global.cudart.cuDevicePrimaryCtxRelease;
import static org.bytedeco.cuda.global.cudart.cuDevicePrimaryCtxRetain;
import static org.bytedeco.cuda.global.cudart.cuGetErrorString;
import static org.bytedeco.cuda.global.cudart.cuInit;
import static org.bytedeco.cuda.global.cudart.cuLaunchKernel;
import static org.bytedeco.cuda.global.cudart.cuMemAlloc;
import static org.bytedeco.cuda.global.cudart.cuMemAllocHost;
import static org.bytedeco.cuda.global.cudart.cuMemFree;
import static org.bytedeco.cuda.global.cudart.cuMemFreeHost;
import static org.bytedeco.cuda.global.cudart.cuMemcpyDtoD;
import static org.bytedeco.cuda.global.cudart.cuMemcpyDtoH;
import static org.bytedeco.cuda.global.cudart.cuMemcpyHtoD;
import static org.bytedeco.cuda.global.cudart.cuMemsetD8;
import static org.bytedeco.cuda.global.cudart.cuModuleGetFunction;
import static org.bytedeco.cuda.global.cudart.cuModuleLoadData;
import static org.bytedeco.cuda.global.cudart.cuModuleUnload;

import static org.bytedeco.cuda.global.cublas.CUBLAS_COMPUTE_32F;
import static org.bytedeco.cuda.global.cublas.CUBLAS_COMPUTE_32F_FAST_TF32;
import static org.bytedeco.cuda.global.cublas.CUBLAS_DEFAULT_MATH;
import static org.bytedeco.cuda.global.cublas.CUBLAS_GEMM_DEFAULT;
import static org.bytedeco.cuda.global.cublas.CUBLAS_OP_N;
import static org.bytedeco.cuda.global.cublas.CUBLAS_OP_T;
import static org.bytedeco.cuda.global.cublas.CUBLAS_PEDANTIC_MATH;
import static org.bytedeco.cuda.global.cublas.CUBLAS_STATUS_SUCCESS;
import static org.bytedeco.cuda.global.cublas.cublasCreate_v2;
import static org.bytedeco.cuda.global.cublas.cublasDestroy_v2;
import static org.bytedeco.cuda.global.cublas.cublasSetMathMode;
import static org.bytedeco.cuda.global.cublas.cublasGemmStridedBatchedEx;
import static org.bytedeco.cuda.global.cublas.cublasSgemmStridedBatched;
import static org.bytedeco.cuda.global.cudart.CUDA_R_16BF;
import static org.bytedeco.cuda.global.cudart.CUDA_R_32F;

import io.moespark.ops.config.RunConfig;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.util.HashMap;
import java.util.Map;
import org.bytedeco.cuda.cublas.cublasContext;
import org.bytedeco.cuda.cudart.CUctx_st;
import org.bytedeco.cuda.cudart.CUevent_st;
import org.bytedeco.cuda.cudart.CUfunc_st;
import org.bytedeco.cuda.cudart.CUmod_st;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.LongPointer;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.javacpp.PointerPointer;

/**
 * The device layer on a GPU, through the CUDA driver API of JavaCPP's presets (the {@code cuda} profile):
 * the primary context of one device, made current on whichever thread calls (a rank's steps run as
 * successive Spark tasks, on different threads; one thread at a time), the kernels from the fatbin the jar carries ({@code moe_kernels.fatbin}, built by
 * {@code src/main/cuda/build-kernels.sh} where nvcc exists), the default stream. Compiled in CI; not yet
 * run on a GPU (README, "What has not run on a GPU").
 */
public final class CudaDeviceLayer implements DeviceLayer {
  static final String FATBIN = "moe_kernels.fatbin";

  private final int ordinal;
  /** The layer whose context is current on each thread (cuCtxSetCurrent only when it changes). */
  private static final ThreadLocal<CudaDeviceLayer> BOUND = new ThreadLocal<>();
  private final CUctx_st context = new CUctx_st();
  private final CUmod_st module = new CUmod_st();
  private final Map<String, CUfunc_st> functions = new HashMap<>();
  private final cublasContext blas = new cublasContext();
  private final Map<Long, CUevent_st> events = new HashMap<>();
  private int math = -1;
  private BytePointer pinned;
  private long pinnedBytes;
  private long lastEvent;

  private CudaDeviceLayer(int ordinal) {
    this.ordinal = ordinal;
  }

  /**
   * Opens device {@code ordinal} (the address Spark assigned to the task) on the calling thread. Fails in
   * one line naming what is missing: the CUDA driver library, a GPU, that ordinal, or the kernels.
   */
  public static CudaDeviceLayer open(int ordinal) {
    try {
      check(cuInit(0), "cuInit (the CUDA driver)");
    } catch (UnsatisfiedLinkError | NoClassDefFoundError e) {
      throw new IllegalStateException("the CUDA 13 driver and runtime libraries (libcuda.so.1, libcudart.so.13) "
          + "could not be loaded: " + e.getMessage() + " (on the library path, or named by "
          + "-Dorg.bytedeco.javacpp.platform.preloadpath)", e);
    }
    int[] count = new int[1];
    check(cuDeviceGetCount(count), "cuDeviceGetCount");
    if (ordinal < 0 || ordinal >= count[0]) {
      throw new IllegalStateException("GPU " + ordinal + " does not exist: this machine has " + count[0] + " GPU(s)");
    }
    CudaDeviceLayer d = new CudaDeviceLayer(ordinal);
    int[] device = new int[1];
    check(cuDeviceGet(device, ordinal), "cuDeviceGet " + ordinal);
    check(cuDevicePrimaryCtxRetain(d.context, device[0]), "cuDevicePrimaryCtxRetain " + ordinal);
    d.bind();
    byte[] image = fatbin();
    BytePointer bytes = new BytePointer(image.length);
    bytes.put(image);
    check(cuModuleLoadData(d.module, bytes), "cuModuleLoadData " + FATBIN);
    checkBlas(cublasCreate_v2(d.blas), "cublasCreate (libcublas.so.13)");
    return d;
  }

  private static byte[] fatbin() {
    try (InputStream in = CudaDeviceLayer.class.getResourceAsStream(FATBIN)) {
      if (in == null) {
        throw new IllegalStateException(FATBIN + " is not in the jar: it was built without nvcc (src/main/cuda/build-kernels.sh)");
      }
      return in.readAllBytes();
    } catch (IOException e) {
      throw new IllegalStateException("reading " + FATBIN + ": " + e.getMessage(), e);
    }
  }

  @Override
  public String name() {
    return "cuda:" + ordinal;
  }

  @Override
  public long alloc(long bytes) {
    bind();
    long[] address = new long[1];
    int rc = cuMemAlloc(address, Math.max(1, bytes));
    if (rc == CUDA_ERROR_OUT_OF_MEMORY) {
      throw new OutOfMemory(name() + " has not " + bytes + " bytes free");
    }
    check(rc, "cuMemAlloc " + bytes + " bytes on " + name());
    return address[0];
  }

  @Override
  public void free(long address) {
    bind();
    check(cuMemFree(address), "cuMemFree");
  }

  @Override
  public void zero(long address, long bytes) {
    bind();
    check(cuMemsetD8(address, (byte) 0, bytes), "cuMemsetD8 " + bytes + " bytes");
  }

  @Override
  public void copy(long src, long dst, long bytes) {
    bind();
    check(cuMemcpyDtoD(dst, src, bytes), "cuMemcpyDtoD " + bytes + " bytes");
  }

  /** Through the pinned staging buffer: one DMA at full speed, and the caller's buffer may be any buffer. */
  @Override
  public void copyToDevice(ByteBuffer src, long dst) {
    bind();
    int n = src.remaining();
    BytePointer p = pinned(n);
    p.asBuffer().put(src.duplicate());
    check(cuMemcpyHtoD(dst, p, n), "cuMemcpyHtoD " + n + " bytes");
  }

  @Override
  public void copyToHost(long src, ByteBuffer dst) {
    bind();
    int n = dst.remaining();
    BytePointer p = pinned(n);
    check(cuMemcpyDtoH(p, src, n), "cuMemcpyDtoH " + n + " bytes");
    dst.put(p.asBuffer());
  }

  /** The pinned (page-locked) host buffer every copy goes through, its first {@code bytes} bytes; grows by doubling. */
  private BytePointer pinned(long bytes) {
    if (bytes > pinnedBytes) {
      if (pinnedBytes > 0) {
        check(cuMemFreeHost(pinned), "cuMemFreeHost");
      }
      long size = Math.max(bytes, 2 * pinnedBytes);
      PointerPointer<Pointer> at = new PointerPointer<>(1);
      check(cuMemAllocHost(at, size), "cuMemAllocHost " + size + " bytes (pinned staging)");
      pinned = new BytePointer(at.get(0)).capacity(size);
      pinnedBytes = size;
    }
    return pinned.position(0).limit(bytes);
  }

  @Override
  public void launch(String kernel, int blocks, int threads, KernelArgs args) {
    bind();
    CUfunc_st f = functions.computeIfAbsent(kernel, k -> {
      CUfunc_st fn = new CUfunc_st();
      check(cuModuleGetFunction(fn, module, k), "cuModuleGetFunction " + k);
      return fn;
    });
    // cuLaunchKernel reads each argument through a pointer to its value: the slots (a direct buffer, whose
    // address JavaCPP takes as it is), 8 bytes apart; the array of those addresses is built explicitly.
    long slots = new BytePointer(args.slots()).address();
    LongPointer params = new LongPointer(Math.max(1, args.count()));
    for (int i = 0; i < args.count(); i++) {
      params.put(i, slots + 8L * i);
    }
    check(cuLaunchKernel(f, blocks, 1, 1, threads, 1, 1, 0, null, params, null), kernel + " on " + name());
  }

  /**
   * FP32: cublasSgemmStridedBatched in pedantic math (no TF32, the parity mode). TF32 and BF16:
   * cublasGemmStridedBatchedEx in default math on tensor cores, F32 accumulation (compute 32F_FAST_TF32 on
   * F32 operands; compute 32F on bf16 operands).
   */
  @Override
  public void gemm(RunConfig.Precision precision, boolean transA, boolean transB, int m, int n, int k, float alpha,
      long a, int lda, long strideA, long b, int ldb, long strideB, float beta, long c, int ldc, long strideC,
      int batch) {
    bind();
    int opA = transA ? CUBLAS_OP_T : CUBLAS_OP_N, opB = transB ? CUBLAS_OP_T : CUBLAS_OP_N;
    mathMode(precision == RunConfig.Precision.FP32 ? CUBLAS_PEDANTIC_MATH : CUBLAS_DEFAULT_MATH);
    if (precision == RunConfig.Precision.FP32) {
      checkBlas(cublasSgemmStridedBatched(blas, opA, opB, m, n, k, new FloatPointer(alpha), at(a), lda, strideA, at(b),
          ldb, strideB, new FloatPointer(beta), at(c), ldc, strideC, batch), "cublasSgemmStridedBatched");
      return;
    }
    int inputs = precision == RunConfig.Precision.BF16 ? CUDA_R_16BF : CUDA_R_32F;
    int compute = precision == RunConfig.Precision.BF16 ? CUBLAS_COMPUTE_32F : CUBLAS_COMPUTE_32F_FAST_TF32;
    checkBlas(cublasGemmStridedBatchedEx(blas, opA, opB, m, n, k, new FloatPointer(alpha), at(a), inputs, lda, strideA,
        at(b), inputs, ldb, strideB, new FloatPointer(beta), at(c), CUDA_R_32F, ldc, strideC, batch, compute,
        CUBLAS_GEMM_DEFAULT), "cublasGemmStridedBatchedEx " + precision.key());
  }

  private void mathMode(int mode) {
    if (mode != math) {
      checkBlas(cublasSetMathMode(blas, mode), "cublasSetMathMode");
      math = mode;
    }
  }

  @Override
  public long record() {
    bind();
    CUevent_st e = new CUevent_st();
    check(cuEventCreate(e, CU_EVENT_DISABLE_TIMING), "cuEventCreate");
    check(cuEventRecord(e, null), "cuEventRecord");
    events.put(++lastEvent, e);
    return lastEvent;
  }

  @Override
  public boolean isDone(long event) {
    int rc = cuEventQuery(event(event));
    if (rc == CUDA_ERROR_NOT_READY) {
      return false;
    }
    check(rc, "cuEventQuery");
    return true;
  }

  @Override
  public void synchronize(long event) {
    check(cuEventSynchronize(event(event)), "cuEventSynchronize");
  }

  @Override
  public void release(long event) {
    bind();
    CUevent_st e = events.remove(event);
    if (e != null) {
      check(cuEventDestroy(e), "cuEventDestroy");
    }
  }

  private CUevent_st event(long id) {
    bind();
    CUevent_st e = events.get(id);
    if (e == null) {
      throw new IllegalArgumentException("event " + id + " of " + name() + " was released");
    }
    return e;
  }

  /** A device address as the pointer type JavaCPP's cuBLAS signatures take (never dereferenced on the host). */
  private static FloatPointer at(long address) {
    return new FloatPointer() {
      {
        this.address = address;
      }
    };
  }

  private static void checkBlas(int status, String what) {
    if (status != CUBLAS_STATUS_SUCCESS) {
      throw new IllegalStateException(what + ": cuBLAS status " + status);
    }
  }

  private void bind() {
    if (BOUND.get() != this) {
      check(cuCtxSetCurrent(context), "cuCtxSetCurrent " + ordinal);
      BOUND.set(this);
    }
  }

  @Override
  public void close() {
    bind();
    for (CUevent_st e : events.values()) {
      cuEventDestroy(e);
    }
    events.clear();
    if (pinnedBytes > 0) {
      check(cuMemFreeHost(pinned), "cuMemFreeHost");
    }
    checkBlas(cublasDestroy_v2(blas), "cublasDestroy");
    check(cuModuleUnload(module), "cuModuleUnload");
    check(cuDevicePrimaryCtxRelease(ordinal), "cuDevicePrimaryCtxRelease " + ordinal);
    BOUND.remove();
  }

  private static void check(int rc, String what) {
    if (rc != CUDA_SUCCESS) {
      PointerPointer<BytePointer> text = new PointerPointer<>(1);
      String message = cuGetErrorString(rc, text) == CUDA_SUCCESS && text.get(0) != null
          ? text.get(BytePointer.class, 0).getString() : "error " + rc;
      throw new IllegalStateException(what + ": " + message + " (CUDA error " + rc + ")");
    }
  }
}
