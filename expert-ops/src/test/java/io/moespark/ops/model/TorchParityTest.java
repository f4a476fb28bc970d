package io.moespark.ops.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.moespark.ops.config.RunConfig;
import io.moespark.ops.io.ModelFiles;
import io.moespark.ops.io.SafeTensors;
import io.moespark.ops.moe.Exchange;
import io.moespark.ops.moe.Reducer;
import io.moespark.ops.optim.AdamW;
import io.moespark.ops.optim.GradClip;
import io.moespark.ops.tensor.Param;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.params.ParameterizedTest;
import java.util.stream.Stream;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import io.moespark.ops.backend.Backend;
import io.moespark.ops.backend.ConformanceBackends;
import io.moespark.ops.backend.cpu.CpuBackend;
import io.moespark.ops.tensor.DType;
import io.moespark.ops.tensor.Tensor;

/**
 * Against fixtures from tools/make_torch_fixtures.py (PyTorch, float64): a 2-layer model with one MoE
 * layer (E=4, k=2, one shared expert), with multi-head attention, with grouped-query attention (4 query
 * heads on 2 key/value heads), with the output layer tied to the embedding, with Llama 3.1's RoPE scaling, and
 * with Qwen2's q/k/v biases. Loss terms and every gradient, then three AdamW steps with
 * global-norm clipping. Errors are relative, per tensor: |a - b| / |b| in the L2 norm. Part of the backend
 * conformance suite: runs on every backend of {@link ConformanceBackends}.
 */
class TorchParityTest {
  private static final ObjectMapper JSON = new ObjectMapper();

  /** The fixtures (tools/make_torch_fixtures.py --case): multi-head, grouped-query, tied, llama3 RoPE, q/k/v biases. */
  private static final List<String> FIXTURES = List.of("torch_moe", "torch_moe_gqa", "torch_moe_tied", "torch_moe_rope",
      "torch_moe_qkv_bias");

  /** Every fixture on every backend of the conformance suite, in F32 and F64, with the tolerance of each type. */
  static Stream<Arguments> cases() {
    return FIXTURES.stream().flatMap(f -> Stream.concat(
        ConformanceBackends.all().map(be -> Arguments.of(f, be, DType.F32, 1e-4)),
        ConformanceBackends.float64().map(be -> Arguments.of(f, be, DType.F64, 1e-9))));
  }

  @ParameterizedTest(name = "{0} {1} {2}")
  @MethodSource("cases")
  void lossAndGradientsMatchPyTorch(String fixture, Backend backend, DType type, double tol) throws Exception {
    Fixture f = new Fixture(fixture);
    TransformerLM m = f.model(backend, type);
    int[][] b = f.batch(0);
    LossTerms loss = m.forward(b[0], b[1], f.batchSize, f.batchSize, Exchange.LOCAL, Reducer.LOCAL);
    JsonNode ref = f.caseJson.get("loss0");
    assertRel("total", ref.get("total").asDouble(), loss.total(), tol);
    assertRel("ce", ref.get("ce").asDouble(), loss.ce(), tol);
    assertRel("aux", ref.get("aux").asDouble(), loss.aux(), tol);
    assertRel("z", ref.get("z").asDouble(), loss.z(), tol);
    m.params().zeroGrads();
    m.backward(Exchange.LOCAL);
    for (Param p : m.params().all()) {
      assertTensor("grad of " + p.name(), f.expected.get("grad." + p.name()), p.grad(), tol);
    }
  }

  @ParameterizedTest(name = "{0} {1} {2}")
  @MethodSource("cases")
  void threeAdamWStepsMatchPyTorch(String fixture, Backend backend, DType type, double tol) throws Exception {
    Fixture f = new Fixture(fixture);
    TransformerLM m = f.model(backend, type);
    JsonNode train = f.caseJson.get("train");
    AdamW opt = new AdamW(m.params(), train.get("beta1").asDouble(), train.get("beta2").asDouble(), train.get("eps").asDouble(),
        train.get("weight_decay").asDouble());
    for (int s = 0; s < 3; s++) {
      int[][] b = f.batch(s);
      m.params().zeroGrads();
      LossTerms loss = m.forward(b[0], b[1], f.batchSize, f.batchSize, Exchange.LOCAL, Reducer.LOCAL);
      m.backward(Exchange.LOCAL);
      double norm = GradClip.clip(m.params(), train.get("grad_clip").asDouble(), Reducer.LOCAL);
      opt.update(train.get("lr").get(s).asDouble());
      JsonNode ref = f.caseJson.get("steps").get(s);
      assertRel("step " + s + " loss", ref.get("total").asDouble(), loss.total(), tol);
      assertRel("step " + s + " grad norm", ref.get("grad_norm").asDouble(), norm, tol);
      assertTrue(norm > train.get("grad_clip").asDouble(), "fixture should exercise clipping");
    }
    for (Param p : m.params().all()) {
      assertTensor("after 3 steps " + p.name(), f.expected.get("step3." + p.name()), p.value(), tol);
    }
  }

  private static void assertRel(String what, double expected, double actual, double tol) {
    double err = Math.abs(actual - expected) / Math.max(1e-12, Math.abs(expected));
    assertTrue(err <= tol, what + ": expected " + expected + ", got " + actual + " (relative error " + err + ")");
  }

  private static void assertTensor(String what, Tensor expectedTensor, Tensor actualTensor, double tol) {
    double[] e = expectedTensor.toDoubles(), a = actualTensor.toDoubles();
    assertEquals(e.length, a.length, what + ": length");
    double diff = 0, norm = 0;
    for (int i = 0; i < e.length; i++) {
      diff += (a[i] - e[i]) * (a[i] - e[i]);
      norm += e[i] * e[i];
    }
    double err = Math.sqrt(diff) / Math.max(1e-12, Math.sqrt(norm));
    assertTrue(err <= tol, what + ": relative error " + err + " > " + tol);
  }

  private static final class Fixture {
    final Path dir;
    final JsonNode caseJson;
    final Map<String, Tensor> expected;
    final int batchSize;

    Fixture(String name) throws Exception {
      dir = Path.of(TorchParityTest.class.getResource("/fixtures/" + name).toURI());
      caseJson = JSON.readTree(dir.resolve("case.json").toFile());
      try (InputStream in = Files.newInputStream(dir.resolve("expected.safetensors"))) {
        expected = SafeTensors.read(in, "expected.safetensors", CpuBackend.INSTANCE);
      }
      batchSize = caseJson.get("train").get("batch_size").asInt();
    }

    TransformerLM model(Backend backend, DType type) throws Exception {
      RunConfig c = ModelFiles.readConfig(dir);
      assertEquals(caseJson.get("train").get("aux_loss_coef").asDouble(), c.moe().auxLossCoef());
      assertEquals(caseJson.get("train").get("z_loss_coef").asDouble(), c.moe().zLossCoef());
      TransformerLM m = TransformerLM.singleRank(c.model(), c.moe(), backend, type);
      ModelFiles.loadWeights(dir.resolve("initial.safetensors"), m);
      return m;
    }

    /** {inputs, targets} of batch s, row-major [B * T]. */
    int[][] batch(int s) {
      JsonNode rows = caseJson.get("batches").get(s);
      int t = rows.get(0).size() - 1;
      int[] in = new int[batchSize * t], tg = new int[batchSize * t];
      for (int r = 0; r < batchSize; r++) {
        for (int i = 0; i < t; i++) {
          in[r * t + i] = rows.get(r).get(i).asInt();
          tg[r * t + i] = rows.get(r).get(i + 1).asInt();
        }
      }
      return new int[][] {in, tg};
    }
  }
}
