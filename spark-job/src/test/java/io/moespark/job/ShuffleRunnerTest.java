package io.moespark.job;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.moespark.ops.config.RunConfig;
import io.moespark.ops.train.Trainer;
import java.util.List;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The shuffle path on two executor JVMs (local-cluster[2,1,2048]): one Spark job per step whose
 * exchanges are shuffles gives the per-step losses and final parameters of the single-process trainer
 * and of the direct path (dropless), for E = 4 over R = 2 and the uneven E = 3 over R = 2 (1 and 2
 * experts).
 */
class ShuffleRunnerTest extends OnTwoExecutors {
  @ParameterizedTest(name = "E={0} R={1}")
  @CsvSource({"4, 2", "3, 2"})
  void shuffleStepsMatchTheSingleProcessTrainerAndTheDirectPath(int experts, int ranks) {
    int steps = 4;
    RunConfig shuffle = SmallRuns.config(experts, ranks, "train.steps=" + steps, "parallel.dispatch=shuffle");
    double[] refLoss = new double[steps];
    Trainer reference = SmallRuns.reference(shuffle, refLoss);
    DirectRunner.Result viaShuffle = DirectRunner.run(sc, shuffle, steps, s -> {});
    DirectRunnerTest.assertSameLosses(refLoss, viaShuffle.steps());
    DirectRunnerTest.assertSameParams(reference, viaShuffle.params());
    RunConfig direct = SmallRuns.config(experts, ranks, "train.steps=" + steps);
    List<StepResult> viaDirect = DirectRunner.run(sc, direct, steps, s -> {}).steps();
    for (int s = 0; s < steps; s++) {
      double a = viaShuffle.steps().get(s).loss(), b = viaDirect.get(s).loss();
      assertTrue(Math.abs(a - b) <= 1e-5 * Math.abs(b), "step " + s + ": shuffle " + a + " vs direct " + b);
    }
    assertEquals(ranks > 1, viaShuffle.steps().get(1).bytesExchanged() > 0);
  }
}
