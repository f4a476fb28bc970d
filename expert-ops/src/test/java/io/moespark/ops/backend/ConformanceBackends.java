package io.moespark.ops.backend;

import io.moespark.ops.backend.cpu.CpuBackend;
import java.util.stream.Stream;

/**
 * The backends the conformance suite runs against ({@link BackendConformanceTest}, {@code
 * TorchParityTest}): each test gets a fresh instance, as a rank does. A new backend adds itself here;
 * every test of the suite then runs on it too.
 */
public final class ConformanceBackends {
  private ConformanceBackends() {}

  public static Stream<Backend> all() {
    return Stream.of(CpuBackend.create());
  }
}
