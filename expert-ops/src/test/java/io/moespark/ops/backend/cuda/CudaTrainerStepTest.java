package io.moespark.ops.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.moespark.ops.backend.cpu.CpuBackend;
import io.moespark.ops.config.ConfigException;
import io.moespark.ops.config.ConfigLoader;
import io.moespark.ops.config.RunConfig;
import io.moespark.ops.tensor.DType;
import io.moespark.ops.tensor.Param;
import io.moespark.ops.train.TokenData;
import io.moespark.ops.train.Trainer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Whole training steps ({@link Trainer}: forward, backward, clipping, AdamW) on the CUDA backend's code,
 * over the host device layer (the kernels' CUDA sources compiled for the CPU, cuBLAS's GEMM semantics),
 * against the CPU backend on the same config, seed and data; and the CUDA backend against itself, twice.
 *
 * <p>Tolerance: the two backends compute the same F32 model and differ only in the order of F32 sums
 * (OpenBLAS's GEMM blocking against double-accumulated products, a block tree against a loop), the
 * difference the project already allows between rank counts (DirectPathTest): 1e-5 relative on each
 * step's loss, 1e-5 of max(1, |w|) on every parameter. Twice on the CUDA backend: bit-identical (no
 * floating-point atomics; the host layer runs a launch's blocks in parallel, as a GPU does).
 */
class CudaTrainerStepTest {
  private static final Path ROOT = Path.of("..").toAbsolutePath().normalize();
  private static final Path CORPUS = ROOT.resolve("data/corpus/moby-dick.txt.gz");
  private static final int STEPS = 2;

  private record Run(double[] losses, List<double[]> params) {}

  private static Run run(Trainer t) {
    double[] losses = new double[STEPS];
    for (int s = 0; s < STEPS; s++) {
      losses[s] = t.step().loss().total();
    }
    List<double[]> params = new ArrayList<>();
    for (Param p : t.model().params().all()) {
      params.add(p.value().toDoubles());
    }
    return new Run(losses, params);
  }

  @ParameterizedTest(name = "{0}")
  @CsvSource(delimiter = ';', value = {
      "top-k dropless with aux-free bias; moe.bias_update_rate=0.001",
      "top-k capacity dropping by gate, shared expert, GeLU; moe.capacity_factor=1.0, moe.drop_policy=gate, moe.shared_experts=1, moe.activation=gelu",
      "expert choice; moe.router=expert_choice",
      "hash; moe.router=hash, moe.top_k=1"})
  void stepsEqualTheCpuBackendsAndRepeatBitForBit(String name, String sets) {
    List<String> s = new ArrayList<>(List.of("data.path=" + CORPUS, "train.batch_size=2", "model.seq_len=32"));
    s.addAll(List.of(sets.split(",\\s*")));
    RunConfig c = ConfigLoader.load(ROOT.resolve("conf/tiny.yaml"), s);
    int[] tokens = TokenData.split(TokenData.load(CORPUS, "auto", "corpus"), c.data().valFraction()).train();

    Run cpu = run(Trainer.singleProcess(c, tokens, CpuBackend.create(), DType.F32));
    Run cuda, again;
    try (HostDeviceLayer device = new HostDeviceLayer()) {
      cuda = run(Trainer.singleProcess(c, tokens, new CudaBackend(device), DType.F32));
    }
    try (HostDeviceLayer device = new HostDeviceLayer()) {
      again = run(Trainer.singleProcess(c, tokens, new CudaBackend(device), DType.F32));
    }

    for (int i = 0; i < STEPS; i++) {
      double rel = Math.abs(cuda.losses[i] - cpu.losses[i]) / Math.abs(cpu.losses[i]);
      assertTrue(rel <= 1e-5, name + ", step " + (i + 1) + ": cuda " + cuda.losses[i] + " vs cpu " + cpu.losses[i]);
    }
    assertEquals(cpu.params.size(), cuda.params.size());
    for (int p = 0; p < cpu.params.size(); p++) {
      double[] want = cpu.params.get(p), got = cuda.params.get(p);
      double diff = 0, norm = 0;
      for (int i = 0; i < want.length; i++) {
        diff = Math.max(diff, Math.abs(got[i] - want[i]));
        norm = Math.max(norm, Math.abs(want[i]));
      }
      assertTrue(diff <= 1e-5 * Math.max(1, norm), name + ", parameter " + p + ": max difference " + diff);
    }
    assertArrayEquals(cuda.losses, again.losses, name + ": losses of two runs on the CUDA backend");
    for (int p = 0; p < cuda.params.size(); p++) {
      assertArrayEquals(cuda.params.get(p), again.params.get(p), name + ": parameter " + p + " of two runs");
    }
  }

  @Test
  void runningOutOfGpuMemoryIsBadInputNamingTheKeysThatShrinkIt() {
    RunConfig c = ConfigLoader.load(ROOT.resolve("conf/tiny.yaml"), List.of("data.path=" + CORPUS));
    int[] tokens = TokenData.split(TokenData.load(CORPUS, "auto", "corpus"), c.data().valFraction()).train();
    try (HostDeviceLayer device = new HostDeviceLayer(1 << 20)) { // 1 MiB: less than the model's parameters
      ConfigException e = assertThrows(ConfigException.class,
          () -> Trainer.singleProcess(c, tokens, new CudaBackend(device), DType.F32));
      assertTrue(e.getMessage().startsWith("out of GPU memory on host: ") && e.getMessage().contains("train.batch_size")
          && e.getMessage().contains("parallel.ranks"), e.getMessage());
    }
  }

  /**
   * tf32 and bf16 steps against fp32 on the same backend: within what the rounding of the GEMMs' operands
   * allows (unit roundoff 2^-11 for TF32, 2^-9 for bf16; a product of two rounded operands is within twice
   * that, and the first steps' losses, dominated by near-uniform logits, move less than the products:
   * 2^-10 and 2^-8 relative per step), and not equal to it (the mode takes effect).
   */
  @ParameterizedTest(name = "{0}")
  @CsvSource({"TF32, 0x1p-10", "BF16, 0x1p-8"})
  void reducedPrecisionStepsStayWithinTheirRoundingOfFp32(RunConfig.Precision precision, double tol) {
    RunConfig c = ConfigLoader.load(ROOT.resolve("conf/tiny.yaml"), List.of("data.path=" + CORPUS,
        "train.batch_size=2", "model.seq_len=32"));
    int[] tokens = TokenData.split(TokenData.load(CORPUS, "auto", "corpus"), c.data().valFraction()).train();
    Run fp32, reduced;
    try (HostDeviceLayer device = new HostDeviceLayer()) {
      fp32 = run(Trainer.singleProcess(c, tokens, new CudaBackend(device), DType.F32));
    }
    try (HostDeviceLayer device = new HostDeviceLayer()) {
      reduced = run(Trainer.singleProcess(c, tokens, new CudaBackend(device, precision), DType.F32));
    }
    for (int i = 0; i < STEPS; i++) {
      double rel = Math.abs(reduced.losses[i] - fp32.losses[i]) / fp32.losses[i];
      assertTrue(rel <= tol && rel > 0, precision + ", step " + (i + 1) + ": " + reduced.losses[i] + " vs fp32 "
          + fp32.losses[i] + " (relative " + rel + ")");
    }
  }
}
