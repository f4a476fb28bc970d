package io.moespark.job.net;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.moespark.ops.config.ConfigLoader;
import io.moespark.ops.config.RunConfig;
import io.moespark.ops.model.LossTerms;
import io.moespark.ops.model.TransformerLM;
import io.moespark.ops.moe.Exchange;
import io.moespark.ops.moe.Reducer;
import io.moespark.ops.moe.ShardLayout;
import io.moespark.ops.tensor.Param;
import io.moespark.ops.train.Batches;
import java.util.List;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import io.moespark.ops.backend.cpu.CpuBackend;
import io.moespark.ops.tensor.DType;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * One training step's forward and backward with the MoE layers' exchanges and the dense-gradient
 * all-reduce going over the authenticated direct collective (loopback), experts sharded over the ranks:
 * the same loss and gradients as one rank holding everything.
 */
class DirectStepTest {

  @ParameterizedTest(name = "E={0} R={1}")
  @CsvSource({"4, 2", "6, 4"})
  void shardedStepOverTheNetworkMatchesOneRank(int experts, int ranks) throws Exception {
    RunConfig c = ConfigLoader.load(null, List.of("model.vocab_size=50", "model.d_model=16", "model.n_layers=2",
        "model.n_heads=2", "model.d_ff=24", "model.seq_len=8", "moe.every=1", "moe.experts=" + experts,
        "moe.top_k=2", "moe.d_expert=12", "moe.shared_experts=1", "train.batch_size=8"));
    int global = c.train().batchSize();
    int[] tokens = new int[3000];
    for (int i = 0; i < tokens.length; i++) {
      tokens[i] = (int) ((i * 2654435761L >>> 9) % 50);
    }
    Batches batches = new Batches(tokens, c.model().seqLen(), global, 5);
    TransformerLM one = TransformerLM.singleRank(c.model(), c.moe(), CpuBackend.INSTANCE, DType.F64);
    one.init(3);
    Batches.Slice all = batches.slice(0, 0, 1);
    LossTerms ref = one.forward(all.inputs(), all.targets(), global, global, Exchange.LOCAL, Reducer.LOCAL);
    one.backward(Exchange.LOCAL);

    List<Object[]> out = DirectCollectiveTest.onRanks(ranks, DirectCollectiveTest.security(true, true, "k"), col -> {
      int r = col.rank();
      TransformerLM m = new TransformerLM(c.model(), c.moe(), i -> ShardLayout.contiguous(experts, ranks, r),
          CpuBackend.INSTANCE, DType.F64);
      m.init(3);
      Batches.Slice s = batches.slice(0, r, ranks);
      LossTerms l = m.forward(s.inputs(), s.targets(), s.sequences(), global, col, col);
      m.backward(col);
      for (Param p : m.params().all()) {
        if (!p.isExpert()) {
          col.sum(p.grad());
        }
      }
      return new Object[] {l, m};
    }, null);
    for (Object[] o : out) {
      LossTerms l = (LossTerms) o[0];
      assertEquals(ref.total(), l.total(), 1e-12 * Math.abs(ref.total()));
      for (Param p : ((TransformerLM) o[1]).params().all()) {
        INDArray e = CpuBackend.array(one.params().get(p.name()).grad());
        double err = CpuBackend.array(p.grad()).sub(e).norm2Number().doubleValue() / Math.max(1e-12, e.norm2Number().doubleValue());
        assertTrue(err < 1e-10, p.name() + ": " + err);
      }
    }
  }
}
