package io.moespark.ops;

import io.moespark.ops.backend.cpu.CpuBackend;
import io.moespark.ops.tensor.Tensor;
import org.nd4j.linalg.api.ndarray.INDArray;

/** Tests build inputs and read results as ND4J arrays; the ops take the project's tensors on the CPU backend. */
public final class TestTensors {
  private TestTensors() {}

  /** The tensor over {@code a} (no copy). */
  public static Tensor t(INDArray a) {
    return a == null ? null : CpuBackend.wrap(a);
  }

  /** The ND4J array behind a CPU tensor (no copy). */
  public static INDArray nd(Tensor t) {
    return CpuBackend.array(t);
  }

  /** A copy of a tensor on its backend. */
  public static Tensor dup(Tensor t) {
    return t.backend().empty(t.dtype(), t.shape()).assign(t);
  }
}
