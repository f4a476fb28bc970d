package io.moespark.job;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.moespark.ops.config.RunConfig;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.apache.spark.api.java.JavaSparkContext;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A rank whose executor JVM is stopped (SIGSTOP) mid-run: the driver sees no step finish within its stall
 * bound (3 × the median step time, at least 30 s), says so naming the stopped rank's executor (its heartbeats
 * stopped) and phase, cancels the stage, asks Spark to replace that executor, and recovers from the last
 * checkpoint once the replacement registers (long before spark.network.timeout, 600 s here); the model
 * equals the uninterrupted run's. Prints the times (README, "Faults").
 */
class StalledRankTest {
  @Test
  void aStoppedExecutorIsReportedAsAStallAndTheRunRecovers(@TempDir Path tmp) throws Exception {
    // Spark would declare the stopped executor lost only after 10 minutes: the run recovers within the test's
    // 4 minutes only because the driver asks Spark to replace the silent executor.
    JavaSparkContext sc = LocalCluster.start(2, 1, 2048, Map.of("spark.network.timeout", "600s",
        "spark.network.timeoutInterval", "10s", "spark.executor.heartbeatInterval", "10s"));
    ProcessHandle stopped = null;
    ExecutorService pool = Executors.newSingleThreadExecutor();
    try {
      RunConfig c = SmallRuns.config(4, 2, "train.steps=10", "checkpoint.every=2", "train.eval_every=0",
          "parallel.steps_per_stage=5");
      byte[] straight = SmallRuns.uninterruptedModel(sc, c, tmp.resolve("straight"));

      Path dir = tmp.resolve("stalled"), metrics = dir.resolve("metrics.jsonl");
      ByteArrayOutputStream out = new ByteArrayOutputStream();
      PrintStream console = new PrintStream(out, true);
      Future<TrainJob.Outcome> run = pool.submit(() -> TrainJob.run(sc, c, dir.toString(), false, 0, console));
      LocalCluster.awaitSteps(metrics, 3, run, out);
      stopped = LocalCluster.anExecutorProcess();
      String stoppedId = LocalCluster.executorId(stopped); // read now: Spark kills the process once it is declared lost
      new ProcessBuilder("kill", "-STOP", Long.toString(stopped.pid())).start().waitFor();
      long stoppedAt = System.nanoTime(), reported = 0;
      while (!run.isDone()) {
        if (reported == 0 && out.toString().contains("the ranks stalled")) {
          reported = System.nanoTime();
        }
        assertTrue(System.nanoTime() - stoppedAt < TimeUnit.MINUTES.toNanos(4), "no recovery: " + out);
        Thread.sleep(20);
      }
      run.get();
      long done = System.nanoTime();
      assertTrue(reported != 0, "the stall line was never seen while the run went on: " + out);
      System.out.printf(Locale.ROOT, "executor stopped: stall reported after %.1f s, run finished %.1f s later%n",
          (reported - stoppedAt) / 1e9, (done - reported) / 1e9);
      String log = out.toString();
      assertTrue(log.contains("the ranks stalled") && log.contains("restart 1 of 3"), log);
      assertTrue(log.contains("asked Spark to replace the silent executor " + stoppedId), log);
      String stall = log.substring(log.indexOf("the ranks stalled")).lines().findFirst().orElseThrow();
      System.out.println(stall);
      // The stopped rank may have sent no heartbeat at all when its steps are shorter than the heartbeat period.
      assertTrue(stall.matches(".*: rank \\d on executor " + stoppedId
          + "( \\([^)]+\\) silent for \\d+ s, last seen (in step \\d+|before its first step), [^;]+| sent no heartbeat); "
          + "others: rank \\d on executor \\d+ \\([^)]+\\) for \\d+ s in step \\d+, exchange after [^;]+ "
          + "\\(waiting for its peers\\)"),
          "names the silent rank, its executor, and the phase its peers wait in: " + stall);
      assertTrue((reported - stoppedAt) / 1e9 < 45, "stall reported within the 30 s bound (plus polling): " + log);
      assertArrayEquals(straight, Files.readAllBytes(dir.resolve("model/model.safetensors")),
          "the recovered run's model equals the uninterrupted run's, bit for bit");
    } finally {
      if (stopped != null) {
        stopped.destroyForcibly();
      }
      pool.shutdownNow();
      sc.stop();
    }
  }
}
