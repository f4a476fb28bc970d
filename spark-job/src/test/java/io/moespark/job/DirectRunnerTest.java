package io.moespark.job;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.moespark.ops.config.ConfigLoader;
import io.moespark.ops.config.RunConfig;
import io.moespark.ops.tensor.Param;
import io.moespark.ops.train.TokenData;
import io.moespark.ops.train.Trainer;
import java.nio.file.Path;
import java.util.List;
import org.apache.spark.api.java.JavaSparkContext;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.nd4j.linalg.api.buffer.DataType;

/**
 * Two executor JVMs with two task slots each (local-cluster[2,2,2048]): the direct runner with R ranks
 * gives the per-step losses and final parameters of the single-process trainer on the same global
 * batches (dropless), for R = 1, R = 2, and E = 6 experts over R = 4 ranks (uneven placement: 1, 2, 1, 2);
 * each step's statistics reach the driver while the stage runs.
 */
class DirectRunnerTest {
  static final Path CORPUS = Path.of("..", "data", "corpus", "moby-dick.txt.gz").toAbsolutePath().normalize();
  static JavaSparkContext sc;

  @BeforeAll
  static void cluster() {
    sc = LocalCluster.start(2, 2, 2048);
  }

  @AfterAll
  static void stop() {
    sc.stop();
  }

  @ParameterizedTest(name = "E={0} R={1}")
  @CsvSource({"4, 1", "4, 2", "6, 4"})
  void ranksMatchTheSingleProcessTrainer(int experts, int ranks) throws Exception {
    int steps = 5;
    RunConfig cfg = ConfigLoader.load(null, List.of("model.d_model=32", "model.n_layers=2", "model.n_heads=2",
        "model.d_ff=64", "model.seq_len=32", "moe.experts=" + experts, "moe.top_k=2", "moe.d_expert=48",
        "moe.shared_experts=1", "moe.capacity_factor=0", "train.batch_size=8", "train.steps=" + steps,
        "train.warmup_steps=2", "data.path=" + CORPUS, "parallel.ranks=" + ranks));
    Trainer reference = Trainer.singleProcess(cfg,
        TokenData.split(TokenData.load(CORPUS, "auto", "data.path"), cfg.data().valFraction()).train(), DataType.FLOAT);
    double[] refLoss = new double[steps];
    for (int s = 0; s < steps; s++) {
      refLoss[s] = reference.step().loss().total();
    }
    List<DirectRunner.StepResult> streamed = new java.util.ArrayList<>();
    int[] whileRunning = {0};
    DirectRunner.Result run = DirectRunner.run(sc, cfg, steps, 120_000, s -> {
      streamed.add(s);
      whileRunning[0] += sc.statusTracker().getActiveJobIds().length > 0 ? 1 : 0;
    });
    assertEquals(steps, run.steps().size());
    // Every step reaches the driver once, in order, and (through the plugin) while the stage still runs.
    assertEquals(run.steps(), streamed);
    assertTrue(whileRunning[0] >= 1, "no step statistics arrived before the stage ended");
    for (int s = 0; s < steps; s++) {
      double rel = Math.abs(run.steps().get(s).loss() - refLoss[s]) / Math.abs(refLoss[s]);
      assertTrue(rel <= 1e-5, "step " + s + ": direct " + run.steps().get(s).loss() + " vs " + refLoss[s]);
    }
    assertTrue(refLoss[steps - 1] < refLoss[0], "the loss falls");
    List<Param> params = reference.model().params().all();
    assertEquals(params.size(), run.params().size());
    for (Param p : params) {
      float[] mine = run.params().get(p.name()), ref = p.value().dup('c').data().asFloat();
      double diff = 0, norm = 0;
      for (int i = 0; i < ref.length; i++) {
        diff = Math.max(diff, Math.abs(mine[i] - ref[i]));
        norm = Math.max(norm, Math.abs(ref[i]));
      }
      assertTrue(diff <= 1e-5 * Math.max(1, norm), p.name() + ": max difference " + diff);
    }
  }
}
