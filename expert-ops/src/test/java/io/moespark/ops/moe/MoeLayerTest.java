package io.moespark.ops.moe;

import static io.moespark.ops.GradCheck.check;
import static io.moespark.ops.TestTensors.nd;
import static io.moespark.ops.TestTensors.t;
import static io.moespark.ops.GradCheck.randn;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.moespark.ops.backend.cpu.CpuBackend;
import io.moespark.ops.nn.Activation;
import io.moespark.ops.tensor.DType;
import io.moespark.ops.tensor.Tensor;
import io.moespark.ops.tensor.Param;
import io.moespark.ops.tensor.ParamStore;
import java.util.function.DoubleSupplier;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/** The MoE layer: gradients in every routing mode and the MoE-systems test patterns. */
class MoeLayerTest {
  private static final int D = 6;
  private static final int F = 5;
  private static final int T = 12;
  private static final CpuBackend CPU = CpuBackend.INSTANCE;

  private static Tensor ids(int[] hostIds) {
    Tensor t = CPU.empty(DType.I32, hostIds.length);
    CPU.fromInts(hostIds, t);
    return t;
  }

  static MoeSpec spec(int e, int k, RouterKind router, double cf, DropPolicy drop, boolean norm, int shared,
      Activation act) {
    return new MoeSpec(e, k, F, shared, act, router, norm, cf, drop, 0.3, 0.2);
  }

  static Stream<Arguments> modes() {
    return Stream.of(
        Arguments.of("topk dropless", spec(4, 2, RouterKind.TOPK, 0, DropPolicy.POSITION, true, 0, Activation.SWIGLU)),
        Arguments.of("topk raw gates + shared", spec(4, 2, RouterKind.TOPK, 0, DropPolicy.POSITION, false, 1,
            Activation.SWIGLU)),
        Arguments.of("topk dropping by position", spec(4, 2, RouterKind.TOPK, 0.5, DropPolicy.POSITION, true, 0,
            Activation.SWIGLU)),
        Arguments.of("topk dropping by gate", spec(4, 2, RouterKind.TOPK, 0.5, DropPolicy.GATE, true, 0,
            Activation.GELU)),
        Arguments.of("expert choice", spec(4, 2, RouterKind.EXPERT_CHOICE, 1.0, DropPolicy.POSITION, true, 0,
            Activation.SWIGLU)),
        Arguments.of("hash + shared", spec(4, 1, RouterKind.HASH, 0, DropPolicy.POSITION, true, 2,
            Activation.SWIGLU)));
  }

  static ParamStore randomParams(MoeLayer[] holder, MoeSpec spec, long seed) {
    ParamStore ps = new ParamStore(io.moespark.ops.backend.cpu.CpuBackend.INSTANCE, io.moespark.ops.tensor.DType.F64);
    holder[0] = new MoeLayer(0, D, spec, ShardLayout.single(spec.experts()), ps);
    ps.allocate();
    int i = 0;
    for (Param p : ps.all()) {
      nd(p.value()).assign(randn(seed + i++, p.value().shape()).muli(0.7));
    }
    return ps;
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("modes")
  void gradientsMatchFiniteDifferences(String mode, MoeSpec spec) {
    MoeLayer[] h = new MoeLayer[1];
    ParamStore ps = randomParams(h, spec, 100);
    MoeLayer layer = h[0];
    INDArray x = randn(1, T, D), r = randn(2, T, D);
    int[] hostIds = new int[T];
    for (int i = 0; i < T; i++) {
      hostIds[i] = (i * 7) % 11;
    }
    Tensor ids = ids(hostIds);
    DoubleSupplier loss = () -> {
      INDArray y = x.ulike();
      layer.forward(t(x), ids, T, Exchange.LOCAL, Reducer.LOCAL, t(y));
      MoeStats s = layer.stats();
      return y.mul(r).sumNumber().doubleValue() + spec.auxLossCoef() * s.aux() + spec.zLossCoef() * s.z();
    };
    loss.getAsDouble();
    if (spec.capacityFactor() > 0 && spec.router() == RouterKind.TOPK) {
      assertTrue(layer.stats().droppedFraction() > 0, mode + " should drop some assignments");
    }
    ps.zeroGrads();
    INDArray dx = Nd4j.zeros(DataType.DOUBLE, T, D);
    layer.backward(t(r), t(dx), Exchange.LOCAL);
    check(mode + " dx", x, dx, loss, 72);
    for (Param p : ps.all()) {
      check(mode + " " + p.name(), nd(p.value()), nd(p.grad()), loss, 40);
    }
  }

  @Test
  void layoutTransformThenInverseIsIdentityIncludingEmptyExperts() {
    // 6 experts, tokens routed only to experts 1 and 4 (others receive nothing), gates summing to 1.
    int e = 6, k = 2;
    int[] token = new int[T * k], expert = new int[T * k];
    double[] gate = new double[T * k];
    for (int t = 0; t < T; t++) {
      token[t * k] = t;
      token[t * k + 1] = t;
      expert[t * k] = t % 2 == 0 ? 4 : 1;
      expert[t * k + 1] = t % 2 == 0 ? 1 : 4;
      gate[t * k] = 0.25 + 0.05 * (t % 3);
      gate[t * k + 1] = 1 - gate[t * k];
    }
    Routing routing = Routing.fromHost(CPU, T, e, token, expert, gate);
    for (int ranks : new int[] {1, 2, 4}) {
      DispatchPlan plan = DispatchPlan.build(routing, ShardLayout.contiguous(e, ranks, 0), Integer.MAX_VALUE,
          DropPolicy.POSITION);
      INDArray x = randn(3, T, D), buf = Nd4j.zeros(DataType.DOUBLE, plan.kept(), D), y = Nd4j.zeros(DataType.DOUBLE, T, D);
      plan.pack(t(x), t(buf));
      plan.combine(t(buf), t(y));
      assertEquals(0.0, y.sub(x).amaxNumber().doubleValue(), 1e-12, "values, R=" + ranks);
      // Gradients: combine backward then pack backward is the identity too.
      INDArray dy = randn(4, T, D), dBuf = Nd4j.zeros(DataType.DOUBLE, plan.kept(), D), dx = Nd4j.zeros(DataType.DOUBLE, T, D);
      plan.combineBackward(t(dy), t(buf), t(dBuf), CPU.zeros(DType.F64, T * k));
      plan.packBackward(t(dBuf), t(dx));
      assertEquals(0.0, dx.sub(dy).amaxNumber().doubleValue(), 1e-12, "gradients, R=" + ranks);
      // Empty experts have empty segments; blocks per destination cover every row once.
      int[][] counts = plan.sendCounts();
      long rows = 0;
      for (io.moespark.ops.tensor.Tensor b : plan.blocks(t(buf))) {
        rows += b.size(0);
      }
      assertEquals(plan.kept(), rows);
      int[] flat = java.util.Arrays.stream(counts).flatMapToInt(java.util.Arrays::stream).toArray();
      assertArrayEquals(new int[] {0, T, 0, 0, T, 0}, flat);
    }
  }

  @Test
  void oneExpertTopOneEqualsDenseSwiGlu() {
    MoeSpec spec = spec(1, 1, RouterKind.TOPK, 0, DropPolicy.POSITION, true, 0, Activation.SWIGLU);
    MoeLayer[] h = new MoeLayer[1];
    ParamStore ps = randomParams(h, spec, 7);
    INDArray x = randn(5, T, D), y = x.ulike();
    h[0].forward(t(x), ids(new int[T]), T, Exchange.LOCAL, Reducer.LOCAL, t(y));
    INDArray w1 = nd(ps.get("layers.0.moe.experts.0.w1.weight").value());
    INDArray w3 = nd(ps.get("layers.0.moe.experts.0.w3.weight").value());
    INDArray w2 = nd(ps.get("layers.0.moe.experts.0.w2.weight").value());
    INDArray h1 = x.mmul(w1.transpose()), h3 = x.mmul(w3.transpose());
    INDArray silu = h1.mul(org.nd4j.linalg.ops.transforms.Transforms.sigmoid(h1, true));
    INDArray dense = silu.mul(h3).mmul(w2.transpose());
    assertEquals(0.0, y.sub(dense).amaxNumber().doubleValue(), 1e-12);
  }

  @Test
  void groupedBankEqualsPerTokenLoop() {
    for (RouterKind router : RouterKind.values()) {
      MoeSpec spec = spec(5, router == RouterKind.HASH ? 1 : 2, router, router == RouterKind.EXPERT_CHOICE ? 1 : 0,
          DropPolicy.POSITION, true, 0, Activation.SWIGLU);
      MoeLayer[] h = new MoeLayer[1];
      ParamStore ps = randomParams(h, spec, 11);
      INDArray x = randn(6, T, D), y = x.ulike();
      int[] hostIds = new int[T];
      for (int i = 0; i < T; i++) {
        hostIds[i] = i * 3;
      }
      DispatchPlan plan = h[0].route(t(x), ids(hostIds), T, Reducer.LOCAL);
      h[0].combine(h[0].expertForward(new int[][] {plan.sendCounts()[0]}, h[0].dispatch()), t(y));
      Routing r = plan.routing();
      int[] rExpert = r.hostExperts(), rToken = r.hostTokens();
      double[] rGate = r.hostGates();
      INDArray expected = Nd4j.zeros(DataType.DOUBLE, T, D);
      for (int a = 0; a < r.assignments(); a++) {
        String p = "layers.0.moe.experts." + rExpert[a] + ".";
        INDArray row = x.getRow(rToken[a]).reshape(1, D);
        INDArray h1 = row.mmul(nd(ps.get(p + "w1.weight").value()).transpose());
        INDArray h3 = row.mmul(nd(ps.get(p + "w3.weight").value()).transpose());
        INDArray act = h1.mul(org.nd4j.linalg.ops.transforms.Transforms.sigmoid(h1, true)).mul(h3);
        expected.getRow(rToken[a]).addi(act.mmul(nd(ps.get(p + "w2.weight").value()).transpose()).reshape(D)
            .muli(rGate[a]));
      }
      assertEquals(0.0, y.sub(expected).amaxNumber().doubleValue(), 1e-12, router.toString());
    }
  }

  @Test
  void droppingKeepsExactlyWhatTheCapacityRuleSays() {
    // 8 tokens, k = 1, 2 experts; cf 0.5 -> capacity ceil(0.5 * 1 * 8 / 2) = 2 per expert.
    int t = 8;
    int[] token = new int[t], expert = {0, 0, 1, 0, 0, 1, 1, 1};
    double[] gate = {0.1, 0.9, 0.3, 0.5, 0.7, 0.8, 0.2, 0.8};
    for (int i = 0; i < t; i++) {
      token[i] = i;
    }
    Routing r = Routing.fromHost(CPU, t, 2, token, expert, gate);
    MoeSpec spec = spec(2, 1, RouterKind.TOPK, 0.5, DropPolicy.POSITION, true, 0, Activation.SWIGLU);
    int cap = spec.capacity(t);
    assertEquals(2, cap);
    DispatchPlan byPos = DispatchPlan.build(r, ShardLayout.single(2), cap, DropPolicy.POSITION);
    assertArrayEquals(new boolean[] {true, true, true, false, false, true, false, false}, keptMask(byPos, t));
    DispatchPlan byGate = DispatchPlan.build(r, ShardLayout.single(2), cap, DropPolicy.GATE);
    // expert 0: gates 0.1, 0.9, 0.5, 0.7 -> keeps tokens 1 (0.9), 4 (0.7); expert 1: 0.3, 0.8, 0.2, 0.8 ->
    // tokens 5 and 7 (tie at 0.8 keeps both, earlier first).
    assertArrayEquals(new boolean[] {false, true, false, false, true, true, false, true}, keptMask(byGate, t));
    assertArrayEquals(new long[] {2, 2}, byGate.keptPerExpert());
    // Kept rows are grouped by expert in token order: expert 0 -> tokens 1, 4; expert 1 -> 5, 7.
    assertEquals(0, byGate.slot(1));
    assertEquals(1, byGate.slot(4));
    assertEquals(2, byGate.slot(5));
    assertEquals(3, byGate.slot(7));
  }

  @Test
  void capacityFormula() {
    MoeSpec s = spec(8, 2, RouterKind.TOPK, 1.25, DropPolicy.POSITION, true, 0, Activation.SWIGLU);
    assertEquals((int) Math.ceil(1.25 * 2 * 100 / 8.0), s.capacity(100));
    assertEquals(Integer.MAX_VALUE, s.withCapacityFactor(0).capacity(100));
    MoeSpec ec = spec(8, 2, RouterKind.EXPERT_CHOICE, 0, DropPolicy.POSITION, true, 0, Activation.SWIGLU);
    assertEquals(25, ec.capacity(100));
  }

  private static boolean[] keptMask(DispatchPlan p, int n) {
    boolean[] m = new boolean[n];
    for (int a = 0; a < n; a++) {
      m[a] = p.slot(a) >= 0;
    }
    return m;
  }
}
