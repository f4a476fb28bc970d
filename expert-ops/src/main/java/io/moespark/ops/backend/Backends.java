package io.moespark.ops.backend;

import io.moespark.ops.backend.cpu.CpuBackend;
import io.moespark.ops.config.RunConfig;

/** The one place a backend is chosen: by {@code parallel.device} for a rank, the host's for the driver and tools. */
public final class Backends {
  private Backends() {}

  /** A fresh backend instance for one rank (its arena) on the configured device. */
  public static Backend forRank(RunConfig.Device device) {
    return switch (device) {
      case CPU -> CpuBackend.create();
    };
  }

  /**
   * The process's host backend: the driver and the tools that assemble, export or score a model in host
   * memory (the driver holds no rank's state).
   */
  public static Backend host() {
    return CpuBackend.INSTANCE;
  }
}
