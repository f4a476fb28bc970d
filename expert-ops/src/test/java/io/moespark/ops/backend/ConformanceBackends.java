package io.moespark.ops.backend;

import io.moespark.ops.backend.cpu.CpuBackend;
import io.moespark.ops.backend.cuda.CudaBackend;
import io.moespark.ops.backend.cuda.HostDeviceLayer;
import java.util.stream.Stream;

/**
 * The backends the conformance suite runs against ({@link BackendConformanceTest}, {@code
 * TorchParityTest}, {@code StepResidencyTest}): each test gets a fresh instance, as a rank does. A new
 * backend adds itself here; every test of the suite then runs on it too. The CUDA backend runs on the host
 * device layer (its kernels' sources compiled for the CPU), so its code runs here, not a GPU's.
 */
public final class ConformanceBackends {
  private ConformanceBackends() {}

  /** Every backend, for the F32 model (the training type). */
  public static Stream<Backend> all() {
    return Stream.of(CpuBackend.create(), new CudaBackend(new HostDeviceLayer()));
  }

  /**
   * The backends that also compute in F64 (the suite's per-op checks against finite differences and the
   * F64 PyTorch parity): the CPU backend. The CUDA backend computes in F32; its kernels are compared op by
   * op with the CPU backend (CudaKernelsTest) and its whole model with PyTorch in F32 (TorchParityTest).
   */
  public static Stream<Backend> float64() {
    return Stream.of(CpuBackend.create());
  }
}
