package io.moespark.ops.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.moespark.ops.collective.InProcessGroup;
import io.moespark.ops.config.ConfigLoader;
import io.moespark.ops.config.RunConfig;
import io.moespark.ops.moe.Exchange;
import io.moespark.ops.moe.Reducer;
import io.moespark.ops.moe.ShardLayout;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import io.moespark.ops.backend.cpu.CpuBackend;
import io.moespark.ops.tensor.DType;
import io.moespark.ops.tensor.Tensor;

/**
 * The step program is what the trainer really does: the collective calls of a training step and of an
 * evaluation, recorded on every rank of an in-memory group with their kind, MoE layer and direction,
 * equal the program built from the model's layer list, for each router, capacity dropping, shared experts, dense layers between MoE
 * layers, and R = 1, 2, 3.
 */
class StepProgramTest {
  static final Path CORPUS = Path.of("..", "data", "corpus", "moby-dick.txt.gz").toAbsolutePath().normalize();

  @ParameterizedTest(name = "{0} R={1} every={2} cf={3} shared={4} replicas={5}")
  @CsvSource({"topk, 1, 1, 0, 0, false", "topk, 2, 2, 1.0, 1, false", "expert_choice, 2, 1, 1.0, 0, false",
      "hash, 3, 1, 0, 1, false", "topk, 3, 1, 0, 0, true"})
  void recordedCallsFollowTheProgram(String router, int ranks, int every, double cf, int shared, boolean replicas)
      throws Exception {
    RunConfig cfg = ConfigLoader.load(null, List.of("model.d_model=16", "model.n_layers=3", "model.n_heads=2",
        "model.d_ff=16", "model.seq_len=8", "moe.every=" + every, "moe.experts=4", "moe.router=" + router,
        "moe.top_k=" + (router.equals("hash") ? 1 : 2), "moe.d_expert=8", "moe.shared_experts=" + shared,
        "moe.capacity_factor=" + cf, "train.batch_size=6", "train.eval_batches=2"));
    int[] tokens = TokenData.load(CORPUS, "auto", "corpus");
    int[] val = java.util.Arrays.copyOf(tokens, 9 * 14 + 3);
    InProcessGroup group = new InProcessGroup(ranks);
    List<List<StepProgram.Call>> steps = new ArrayList<>(), evals = new ArrayList<>();
    ExecutorService pool = Executors.newFixedThreadPool(ranks);
    List<Future<?>> done = new ArrayList<>();
    for (int r = 0; r < ranks; r++) {
      List<StepProgram.Call> step = Collections.synchronizedList(new ArrayList<>());
      List<StepProgram.Call> eval = Collections.synchronizedList(new ArrayList<>());
      steps.add(step);
      evals.add(eval);
      int rank = r;
      done.add(pool.submit(() -> {
        int[][] holders = ShardLayout.contiguous(cfg.moe().experts(), ranks, rank).holders();
        if (replicas) {
          holders[0] = new int[] {0, ranks - 1}; // expert 0 replicated on the first and the last rank
        }
        Trainer t = new Trainer(cfg, tokens, CpuBackend.INSTANCE, DType.F64, rank, ranks,
            l -> new ShardLayout(ranks, rank, holders));
        Recorder rec = new Recorder(group.exchange(rank), group.reducer(rank));
        rec.into = step;
        t.step(rec, rec);
        rec.into = eval;
        t.evaluate(val, rec, rec);
        return null;
      }));
    }
    for (Future<?> f : done) {
      f.get();
    }
    pool.shutdown();
    List<StepProgram.Call> program = StepProgram.training(cfg, ranks, replicas).calls().stream()
        .map(Recorder::unnamed).toList();
    List<StepProgram.Call> evalProgram = StepProgram.evaluation(cfg, ranks, val.length).calls().stream()
        .map(Recorder::unnamed).toList();
    assertTrue(program.stream().anyMatch(c -> c.layer() >= 0 && c.toExperts()), "the program labels MoE calls");
    for (int r = 0; r < ranks; r++) {
      assertEquals(program, steps.get(r), "training step, rank " + r);
      assertEquals(evalProgram, evals.get(r), "evaluation, rank " + r);
    }
  }

  /** Passes every call on, noting its kind and the layer and direction the caller labelled it with. */
  private static final class Recorder implements Exchange, Reducer {
    private final Exchange ex;
    private final Reducer red;
    volatile List<StepProgram.Call> into;
    private int layer = -1;
    private boolean toExperts;

    /** A call as the recorder sees it: what it carries, its layer and direction (stage names aside). */
    static StepProgram.Call unnamed(StepProgram.Call c) {
      return new StepProgram.Call(c.kind(), "", c.layer(), c.toExperts());
    }

    private void note(StepProgram.Kind kind) {
      into.add(new StepProgram.Call(kind, "", layer, toExperts));
      layer = -1;
      toExperts = false;
    }

    @Override
    public Recorder labelled(int layer, boolean toExperts) {
      this.layer = layer;
      this.toExperts = toExperts;
      return this;
    }

    Recorder(Exchange ex, Reducer red) {
      this.ex = ex;
      this.red = red;
    }

    @Override
    public int ranks() {
      return ex.ranks();
    }

    @Override
    public int rank() {
      return ex.rank();
    }

    @Override
    public Tensor[] allToAll(Tensor[] send) {
      note(StepProgram.Kind.BLOCKS);
      return ex.allToAll(send);
    }

    @Override
    public int[][] allToAllCounts(int[][] send) {
      note(StepProgram.Kind.COUNTS);
      return ex.allToAllCounts(send);
    }

    @Override
    public void sum(double[] values) {
      note(StepProgram.Kind.SUM_VALUES);
      red.sum(values);
    }

    @Override
    public void sum(Tensor values) {
      note(StepProgram.Kind.SUM_ARRAY);
      red.sum(values);
    }
  }
}
