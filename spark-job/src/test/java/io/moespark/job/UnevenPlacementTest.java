package io.moespark.job;

import io.moespark.ops.config.RunConfig;
import io.moespark.ops.train.Trainer;
import org.apache.spark.api.java.JavaSparkContext;
import org.junit.jupiter.api.Test;

/**
 * E = 6 experts over R = 4 ranks (contiguous placement: 1, 2, 1, 2 experts per rank) on two executor
 * JVMs with two slots each: the same per-step losses and parameters as the single-process trainer.
 */
class UnevenPlacementTest {
  @Test
  void sixExpertsOverFourRanksMatchTheSingleProcessTrainer() {
    JavaSparkContext sc = LocalCluster.start(2, 2, 2048);
    try {
      int steps = 5;
      RunConfig cfg = SmallRuns.config(6, 4, "parallel.steps_per_stage=3");
      double[] refLoss = new double[steps];
      Trainer reference = SmallRuns.reference(cfg, refLoss);
      StepRunners.Result run = StepRunners.train(sc, cfg, steps, s -> {});
      DirectPathTest.assertSameLosses(refLoss, run.steps());
      DirectPathTest.assertSameParams(reference, run.params());
    } finally {
      sc.stop();
    }
  }
}
