package io.moespark.job;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.moespark.ops.config.RunConfig;
import io.moespark.ops.tensor.Param;
import io.moespark.ops.train.Trainer;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Two executor JVMs with one task slot each (local-cluster[2,1,2048], authentication and encryption
 * on): the direct runner's ranks stay resident across stages of two steps and give the per-step losses
 * and final parameters of the single-process trainer on the same global batches (dropless), for R = 1
 * and R = 2; each step's statistics reach the driver while its stage runs; a client without the
 * secret is refused by a running rank and the run is unaffected; a rank whose state is not on the
 * executor its task lands on fails with both executors named (on either path's stages).
 */
class DirectPathTest extends OnTwoExecutors {

  @ParameterizedTest(name = "R={0}")
  @ValueSource(ints = {1, 2})
  void ranksMatchTheSingleProcessTrainer(int ranks) {
    int steps = 5;
    RunConfig cfg = SmallRuns.config(4, ranks, "parallel.steps_per_stage=2");
    double[] refLoss = new double[steps];
    Trainer reference = SmallRuns.reference(cfg, refLoss);
    List<StepResult> streamed = new ArrayList<>();
    int[] whileRunning = {0};
    StepRunners.Result run = StepRunners.train(sc, cfg, steps, s -> {
      streamed.add(s);
      whileRunning[0] += sc.statusTracker().getActiveJobIds().length > 0 ? 1 : 0;
    });
    assertEquals(steps, run.steps().size());
    // Every step reaches the driver once, in order, and (through the plugin) while its stage still runs.
    assertEquals(run.steps(), streamed);
    assertTrue(whileRunning[0] >= 1, "no step statistics arrived before a stage ended");
    assertSameLosses(refLoss, run.steps());
    assertTrue(refLoss[steps - 1] < refLoss[0], "the loss falls");
    assertSameParams(reference, run.params());
    // Bytes between executors: none with one rank, some with two.
    assertEquals(ranks > 1, run.steps().get(1).bytesExchanged() > 0);
  }

  @Test
  void aClientWithoutTheSecretIsRefusedByARunningRankAndTheRunGoesOn() throws Exception {
    int steps = 4;
    RunConfig cfg = SmallRuns.config(4, 2, "train.steps=" + steps);
    double[] refLoss = new double[steps];
    SmallRuns.reference(cfg, refLoss);
    List<StepResult> results = new ArrayList<>();
    ExecutorService attacker = Executors.newSingleThreadExecutor();
    try (RankGroup d = RankGroup.open(sc, cfg, ExpertPlacement.contiguous(cfg, 2), null)) {
      String address = d.addresses().get(1);
      // Forged blocks for the run's own next sequence numbers, sent without the handshake while the steps run
      // (whenever the attacker gets to run, the rank's port is open: the group holds it until closed).
      Future<List<RankPortProbe.Outcome>> outcomes = attacker.submit(() -> {
        List<RankPortProbe.Outcome> seen = new ArrayList<>();
        for (long seq = 1; seq < 50; seq++) {
          ByteBuffer forged = ByteBuffer.allocate(64).putLong(0, seq); // sequence number first, as real blocks
          seen.add(RankPortProbe.unauthenticated(address, forged, 60_000));
        }
        return seen;
      });
      results.addAll(StepRunners.of(d).steps(steps, s -> {}, "steps under attack"));
      assertEquals(List.of(RankPortProbe.Outcome.REFUSED), outcomes.get().stream().distinct().toList(),
          "every forged block was refused (an answer, not a timeout)");
      assertEquals(0, RankPortProbe.authenticated(sc, address, 60_000), "the port is the rank's, serving its peers");
    } finally {
      attacker.shutdownNow();
    }
    assertSameLosses(refLoss, results);
  }

  @ParameterizedTest(name = "{0}")
  @ValueSource(strings = {"direct", "shuffle"})
  void aRankWhoseStateIsNotOnItsExecutorFailsNamingBoth(String dispatch) throws Exception {
    RunConfig cfg = SmallRuns.config(4, 1, "train.steps=2", "parallel.dispatch=" + dispatch);
    try (RankGroup d = RankGroup.open(sc, cfg, ExpertPlacement.contiguous(cfg, 1), null)) {
      String home = d.executors().get(0);
      // Occupy the rank's executor (its only slot) until cancelled, so that the scheduler, after its locality
      // wait (spark.locality.wait), runs the step's stage on the other executor.
      sc.setJobGroup("blocker", "occupies executor " + home, true);
      String location = d.locations().get(0);
      org.apache.spark.api.java.JavaRDD.fromRDD(RankStages.pinned(sc, new String[] {location}),
              scala.reflect.ClassTag$.MODULE$.apply(Integer.class))
          .map(i -> {
            Thread.sleep(java.util.concurrent.TimeUnit.HOURS.toMillis(1)); // interrupted by the cancellation
            return i;
          }).collectAsync();
      sc.clearJobGroup();
      // The blocker's task must be running before the step is submitted, or the step could take the slot first.
      long deadline = System.nanoTime() + java.util.concurrent.TimeUnit.MINUTES.toNanos(2);
      while (java.util.Arrays.stream(sc.statusTracker().getActiveStageIds())
          .mapToObj(id -> sc.statusTracker().getStageInfo(id)).noneMatch(i -> i != null && i.numActiveTasks() > 0)) {
        assertTrue(System.nanoTime() < deadline, "the blocker's task never started; active stages: "
            + java.util.Arrays.toString(sc.statusTracker().getActiveStageIds()));
        Thread.sleep(10);
      }
      IllegalStateException e = assertThrows(IllegalStateException.class, () -> StepRunners.of(d).steps(1, s -> {}, "misplaced"));
      sc.cancelJobGroup("blocker");
      String m = e.getMessage();
      assertTrue(m.contains("no resident state on executor") && m.contains("lives on executor " + home)
          && m.contains("--resume"), m);
    }
  }

  static void assertSameLosses(double[] ref, List<StepResult> got) {
    assertEquals(ref.length, got.size());
    for (int s = 0; s < ref.length; s++) {
      double rel = Math.abs(got.get(s).loss() - ref[s]) / Math.abs(ref[s]);
      assertTrue(rel <= 1e-5, "step " + s + ": direct " + got.get(s).loss() + " vs " + ref[s]);
    }
  }

  static void assertSameParams(Trainer reference, Map<String, float[]> got) {
    List<Param> params = reference.model().params().all();
    assertEquals(params.size(), got.size());
    for (Param p : params) {
      float[] mine = got.get(p.name()), ref = io.moespark.ops.backend.cpu.CpuBackend.array(p.value()).dup('c').data().asFloat();
      double diff = 0, norm = 0;
      for (int i = 0; i < ref.length; i++) {
        diff = Math.max(diff, Math.abs(mine[i] - ref[i]));
        norm = Math.max(norm, Math.abs(ref[i]));
      }
      assertTrue(diff <= 1e-5 * Math.max(1, norm), p.name() + ": max difference " + diff);
    }
  }
}
