package io.moespark.ops.backend;

import io.moespark.ops.backend.cpu.CpuBackend;
import io.moespark.ops.backend.cuda.CudaBackend;
import io.moespark.ops.backend.cuda.DeviceLayer;
import io.moespark.ops.config.ConfigException;
import io.moespark.ops.config.RunConfig;
import java.lang.reflect.InvocationTargetException;

/** The one place a backend is chosen: by {@code parallel.device} for a rank, the host's for the driver and tools. */
public final class Backends {
  /** The GPU device layer, compiled only with the {@code cuda} profile (it links JavaCPP's CUDA presets). */
  private static final String CUDA_LAYER = "io.moespark.ops.backend.cuda.CudaDeviceLayer";

  private Backends() {}

  /**
   * A fresh backend instance for one rank (its arena) on {@code parallel.device}, in {@code
   * parallel.precision}; {@code gpu} is the address of the GPU Spark assigned to the rank's task (its
   * {@code gpu} resource), or null when none was. A device that cannot be used is a {@link
   * ConfigException} naming what is missing and the setting.
   */
  public static Backend forRank(RunConfig.Parallel parallel, String gpu) {
    return switch (parallel.device()) {
      case CPU -> CpuBackend.create();
      case CUDA -> new CudaBackend(openGpu(gpu), parallel.precision());
    };
  }

  /** Refuses {@code parallel.device: cuda} in a build without the {@code cuda} profile's device layer. */
  public static void requireCudaBuild() {
    try {
      Class.forName(CUDA_LAYER, false, Backends.class.getClassLoader());
    } catch (ClassNotFoundException e) {
      throw new ConfigException("parallel.device: cuda needs moe-spark built with the cuda profile "
          + "(mvn -B -Pcuda -DskipTests package); this build computes on the CPU only");
    }
  }

  private static DeviceLayer openGpu(String gpu) {
    requireCudaBuild();
    if (gpu == null) {
      throw new ConfigException("parallel.device: cuda, but Spark assigned no GPU to this rank's task: set "
          + "spark.executor.resource.gpu.amount=1, spark.task.resource.gpu.amount=1 and "
          + "spark.executor.resource.gpu.discoveryScript");
    }
    int ordinal;
    try {
      ordinal = Integer.parseInt(gpu.trim());
    } catch (NumberFormatException e) {
      throw new ConfigException("parallel.device: cuda: the GPU address Spark assigned, '" + gpu
          + "', is not a device ordinal (the discovery script must list CUDA ordinals: 0, 1, ...)");
    }
    try {
      return (DeviceLayer) Class.forName(CUDA_LAYER).getMethod("open", int.class).invoke(null, ordinal);
    } catch (InvocationTargetException e) {
      // open's own failures name the missing library, GPU or kernels: an input problem of this machine.
      Throwable c = e.getCause();
      throw new ConfigException("parallel.device: cuda: " + c.getMessage(), c);
    } catch (ReflectiveOperationException e) {
      throw new IllegalStateException(CUDA_LAYER + ".open(int): " + e, e);
    }
  }

  /**
   * The process's host backend: the driver and the tools that assemble, export or score a model in host
   * memory (the driver holds no rank's state).
   */
  public static Backend host() {
    return CpuBackend.INSTANCE;
  }
}
