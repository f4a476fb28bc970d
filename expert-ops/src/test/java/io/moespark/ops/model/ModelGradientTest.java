package io.moespark.ops.model;

import static io.moespark.ops.GradCheck.check;

import io.moespark.ops.config.ConfigLoader;
import io.moespark.ops.config.RunConfig;
import io.moespark.ops.moe.Exchange;
import io.moespark.ops.moe.Reducer;
import io.moespark.ops.tensor.Param;
import java.util.List;
import java.util.function.DoubleSupplier;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import io.moespark.ops.TestTensors;
import io.moespark.ops.backend.cpu.CpuBackend;
import io.moespark.ops.tensor.DType;

/** The whole model's backward (total loss: CE + aux + z) against finite differences, in float64. */
class ModelGradientTest {

  @ParameterizedTest
  @ValueSource(strings = {"topk", "expert_choice", "hash"})
  void totalLossGradient(String router) {
    RunConfig c = ConfigLoader.load(null, List.of("model.vocab_size=13", "model.d_model=8", "model.n_layers=2",
        "model.n_heads=2", "model.d_ff=10", "model.seq_len=5", "moe.every=2", "moe.experts=4",
        "moe.top_k=" + (router.equals("hash") ? 1 : 2), "moe.d_expert=6", "moe.shared_experts=1",
        "moe.router=" + router, "moe.aux_loss_coef=0.5", "moe.z_loss_coef=0.1"));
    TransformerLM m = TransformerLM.singleRank(c.model(), c.moe(), CpuBackend.INSTANCE, DType.F64);
    m.init(3);
    // Larger weights than the 0.02 init so that every path carries a visible gradient.
    for (Param p : m.params().all()) {
      if (p.value().rank() == 2) {
        p.value().muli(20);
      }
    }
    int[] in = {1, 5, 2, 7, 3, 12, 0, 4, 4, 9}, tg = {5, 2, 7, 3, 11, 0, 4, 4, 9, 6};
    m.forward(in, tg, 2, 2, Exchange.LOCAL, Reducer.LOCAL);
    m.params().zeroGrads();
    m.backward(Exchange.LOCAL);
    DoubleSupplier loss = () -> m.forward(in, tg, 2, 2, Exchange.LOCAL, Reducer.LOCAL).total();
    for (Param p : m.params().all()) {
      check(router + " " + p.name(), TestTensors.nd(p.value()), TestTensors.nd(p.grad()), loss, 12);
    }
  }
}
