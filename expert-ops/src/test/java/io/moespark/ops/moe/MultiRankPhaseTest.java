package io.moespark.ops.moe;

import static org.junit.jupiter.api.Assertions.assertTrue;

import io.moespark.ops.collective.InProcessGroup;
import io.moespark.ops.config.ConfigLoader;
import io.moespark.ops.config.RunConfig;
import io.moespark.ops.model.LossTerms;
import io.moespark.ops.model.TransformerLM;
import io.moespark.ops.tensor.Param;
import io.moespark.ops.train.Batches;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import io.moespark.ops.TestTensors;
import io.moespark.ops.backend.cpu.CpuBackend;
import io.moespark.ops.tensor.DType;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * The phase API cut at its exchanges: R ranks (threads), each with a data-parallel slice of the global
 * batch and a shard of the experts, give the loss and gradients of one rank holding everything. This holds
 * for dropless top-k and hash routing. Expert choice and capacity dropping decide per rank (DESIGN §3:
 * capacity is per rank), so by definition they depend on the number of ranks.
 */
class MultiRankPhaseTest {

  @ParameterizedTest(name = "E={0} R={1} {2}")
  @CsvSource({"4, 2, topk", "6, 4, topk", "3, 2, topk", "5, 2, hash"})
  void shardedRanksMatchOneRank(int experts, int ranks, String router) throws Exception {
    RunConfig c = ConfigLoader.load(null, List.of("model.vocab_size=40", "model.d_model=16", "model.n_layers=2",
        "model.n_heads=2", "model.d_ff=24", "model.seq_len=8", "moe.every=1", "moe.experts=" + experts,
        "moe.top_k=" + (router.equals("hash") ? 1 : 2), "moe.d_expert=12", "moe.shared_experts=1",
        "moe.router=" + router, "train.batch_size=8"));
    int global = c.train().batchSize();
    int[] tokens = new int[4000];
    for (int i = 0; i < tokens.length; i++) {
      tokens[i] = (int) ((i * 2654435761L >>> 7) % 40);
    }
    Batches batches = new Batches(tokens, c.model().seqLen(), global, 3);

    TransformerLM one = TransformerLM.singleRank(c.model(), c.moe(), CpuBackend.INSTANCE, DType.F64);
    one.init(11);
    Batches.Slice all = batches.slice(0, 0, 1);
    one.params().zeroGrads();
    LossTerms ref = one.forward(all.inputs(), all.targets(), global, global, Exchange.LOCAL, Reducer.LOCAL);
    one.backward(Exchange.LOCAL);

    InProcessGroup group = new InProcessGroup(ranks);
    List<TransformerLM> models = new ArrayList<>();
    ExecutorService pool = Executors.newFixedThreadPool(ranks);
    try {
      List<Future<LossTerms>> losses = new ArrayList<>();
      for (int r = 0; r < ranks; r++) {
        int rank = r;
        TransformerLM m = new TransformerLM(c.model(), c.moe(), i -> ShardLayout.contiguous(experts, ranks, rank),
            CpuBackend.INSTANCE, DType.F64);
        m.init(11); // per-name seeding: the same values as the single rank's
        models.add(m);
        losses.add(pool.submit(() -> {
          Batches.Slice s = batches.slice(0, rank, ranks);
          Exchange ex = group.exchange(rank);
          Reducer red = group.reducer(rank);
          m.params().zeroGrads();
          LossTerms l = m.forward(s.inputs(), s.targets(), s.sequences(), global, ex, red);
          m.backward(ex);
          for (Param p : m.params().all()) {
            if (!p.isExpert()) {
              red.sum(p.grad());
            }
          }
          return l;
        }));
      }
      for (Future<LossTerms> f : losses) {
        LossTerms l = f.get();
        assertClose("total loss", ref.total(), l.total());
        assertClose("aux", ref.aux(), l.aux());
        assertClose("z", ref.z(), l.z());
      }
    } finally {
      pool.shutdownNow();
    }
    for (int r = 0; r < ranks; r++) {
      int expertsHere = 0;
      for (Param p : models.get(r).params().all()) {
        INDArray expected = TestTensors.nd(one.params().get(p.name()).grad());
        double err = TestTensors.nd(p.grad()).sub(expected).norm2Number().doubleValue()
            / Math.max(1e-12, expected.norm2Number().doubleValue());
        assertTrue(err < 1e-10, "rank " + r + " " + p.name() + " gradient differs: " + err);
        expertsHere += p.isExpert() ? 1 : 0;
      }
      assertTrue(expertsHere > 0, "rank " + r + " holds no expert");
    }
  }

  private static void assertClose(String what, double expected, double actual) {
    assertTrue(Math.abs(expected - actual) <= 1e-10 * Math.max(1, Math.abs(expected)),
        what + ": expected " + expected + ", got " + actual);
  }
}
