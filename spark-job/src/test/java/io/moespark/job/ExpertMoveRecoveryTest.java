package io.moespark.job;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.moespark.ops.config.RunConfig;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * An executor JVM killed after the experts moved (moves after steps 2 and 4, the first replicating two
 * experts of layer 0 on both ranks and the second dropping the copies; checkpoints after steps 3 and 6, the
 * kill after step 5): the run reopens its ranks from the last checkpoint with the placement it recorded
 * (replicas included), replays the moves after it, and ends with the uninterrupted run's model bytes and
 * moves.
 */
class ExpertMoveRecoveryTest extends OnTwoExecutors {
  @Test
  void aKilledExecutorAfterAMoveEndsWithTheUninterruptedModel(@TempDir Path tmp) throws Exception {
    RunConfig c = ExpertMoveRunTest.cfg("parallel.placement=schedule",
        "parallel.placement_schedule=[\"2:0:0|1,1,1,1,0|1\", \"2:1:0,0,1,1,0\", \"4:0:0,0,1,1,1\"]",
        "train.steps=8", "checkpoint.every=3", "parallel.steps_per_stage=1");
    byte[] straight = SmallRuns.uninterruptedModel(sc, c, tmp.resolve("straight"));

    Path dir = tmp.resolve("killed"), metrics = dir.resolve("metrics.jsonl");
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    PrintStream console = new PrintStream(out, true);
    ExecutorService pool = Executors.newSingleThreadExecutor();
    try {
      Future<TrainJob.Outcome> run = pool.submit(() -> TrainJob.run(sc, c, dir.toString(), false, 0, console));
      LocalCluster.awaitSteps(metrics, 7, run, out); // 5 steps and the two moves' rows
      LocalCluster.anExecutorProcess().destroyForcibly();
      run.get(10, TimeUnit.MINUTES);
      String log = out.toString();
      // Killed after step 5: the restart is from the checkpoint after step 3 (and replays the move after step 4),
      // or, if the ranks got past step 6 first, from that one; either way the same model and moves.
      assertTrue(log.contains("restart 1 of 3") && log.matches("(?s).*from the checkpoint at step [36]\\b.*"), log);
      assertArrayEquals(straight, Files.readAllBytes(dir.resolve("model/model.safetensors")),
          "the recovered run's model equals the uninterrupted run's, bit for bit");
      assertEquals(ExpertMoveRunTest.moveRows(tmp.resolve("straight")), ExpertMoveRunTest.moveRows(dir),
          "metrics.jsonl holds each move once");
    } finally {
      pool.shutdownNow();
    }
  }
}
