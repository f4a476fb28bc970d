package io.moespark.ops.train;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.moespark.ops.config.ConfigLoader;
import io.moespark.ops.config.RunConfig;
import io.moespark.ops.moe.Exchange;
import io.moespark.ops.moe.InMemoryGroup;
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
 * The step program is what the trainer really does: the kinds of the collective calls of a training
 * step and of an evaluation, recorded on every rank of an in-memory group, equal the program built
 * from the config, for each router, capacity dropping, shared experts, dense layers between MoE
 * layers, and R = 1, 2, 3.
 */
class StepProgramTest {
  static final Path CORPUS = Path.of("..", "data", "corpus", "moby-dick.txt.gz").toAbsolutePath().normalize();

  @ParameterizedTest(name = "{0} R={1} every={2} cf={3} shared={4}")
  @CsvSource({"topk, 1, 1, 0, 0", "topk, 2, 2, 1.0, 1", "expert_choice, 2, 1, 1.0, 0", "hash, 3, 1, 0, 1"})
  void recordedCallsFollowTheProgram(String router, int ranks, int every, double cf, int shared) throws Exception {
    RunConfig cfg = ConfigLoader.load(null, List.of("model.d_model=16", "model.n_layers=3", "model.n_heads=2",
        "model.d_ff=16", "model.seq_len=8", "moe.every=" + every, "moe.experts=4", "moe.router=" + router,
        "moe.top_k=" + (router.equals("hash") ? 1 : 2), "moe.d_expert=8", "moe.shared_experts=" + shared,
        "moe.capacity_factor=" + cf, "train.batch_size=6", "train.eval_batches=2"));
    int[] tokens = TokenData.load(CORPUS, "auto", "corpus");
    int[] val = java.util.Arrays.copyOf(tokens, 9 * 14 + 3);
    InMemoryGroup group = new InMemoryGroup(ranks);
    List<List<StepProgram.Kind>> steps = new ArrayList<>(), evals = new ArrayList<>();
    ExecutorService pool = Executors.newFixedThreadPool(ranks);
    List<Future<?>> done = new ArrayList<>();
    for (int r = 0; r < ranks; r++) {
      List<StepProgram.Kind> step = Collections.synchronizedList(new ArrayList<>());
      List<StepProgram.Kind> eval = Collections.synchronizedList(new ArrayList<>());
      steps.add(step);
      evals.add(eval);
      int rank = r;
      done.add(pool.submit(() -> {
        Trainer t = new Trainer(cfg, tokens, CpuBackend.INSTANCE, DType.F64, rank, ranks,
            l -> ShardLayout.contiguous(cfg.moe().experts(), ranks, rank));
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
    List<StepProgram.Kind> program = StepProgram.training(cfg, ranks).calls().stream().map(StepProgram.Call::kind)
        .toList();
    List<StepProgram.Kind> evalProgram = StepProgram.evaluation(cfg, ranks, val.length).calls().stream()
        .map(StepProgram.Call::kind).toList();
    for (int r = 0; r < ranks; r++) {
      assertEquals(program, steps.get(r), "training step, rank " + r);
      assertEquals(evalProgram, evals.get(r), "evaluation, rank " + r);
    }
  }

  /** Passes every call on, noting its kind. */
  private static final class Recorder implements Exchange, Reducer {
    private final Exchange ex;
    private final Reducer red;
    volatile List<StepProgram.Kind> into;

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
      into.add(StepProgram.Kind.BLOCKS);
      return ex.allToAll(send);
    }

    @Override
    public int[][] allToAllCounts(int[][] send) {
      into.add(StepProgram.Kind.COUNTS);
      return ex.allToAllCounts(send);
    }

    @Override
    public void sum(double[] values) {
      into.add(StepProgram.Kind.SUM_VALUES);
      red.sum(values);
    }

    @Override
    public void sum(Tensor values) {
      into.add(StepProgram.Kind.SUM_ARRAY);
      red.sum(values);
    }
  }
}
