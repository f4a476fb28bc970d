package io.moespark.job;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.moespark.ops.config.RunConfig;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * An executor JVM killed (SIGKILL) in the middle of a run on {@code local-cluster[2,1,2048]}: the run
 * notices, reopens its ranks from the last checkpoint on the executors Spark has (the cluster starts a
 * replacement), replays, and ends with the model bytes of an uninterrupted run. Prints the times to
 * detect and to recover (README, "Faults").
 */
class ExecutorLossTest extends OnTwoExecutors {
  @Test
  void aKilledExecutorIsReplacedAndTheRunEndsWithTheUninterruptedModel(@TempDir Path tmp) throws Exception {
    RunConfig c = SmallRuns.config(4, 2, "train.steps=8", "checkpoint.every=2", "train.eval_every=0",
        "parallel.steps_per_stage=1");
    byte[] straight = SmallRuns.uninterruptedModel(sc, c, tmp.resolve("straight"));

    Path dir = tmp.resolve("killed"), metrics = dir.resolve("metrics.jsonl");
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    PrintStream console = new PrintStream(out, true);
    ExecutorService pool = Executors.newSingleThreadExecutor();
    try {
      Future<TrainJob.Outcome> run = pool.submit(() -> TrainJob.run(sc, c, dir.toString(), false, 0, console));
      LocalCluster.awaitSteps(metrics, 3, run, out);
      ProcessHandle executor = LocalCluster.anExecutorProcess();
      String executorId = LocalCluster.executorId(executor);
      long killed = System.nanoTime();
      executor.destroyForcibly();
      long detected = 0, recovered = 0;
      int before = LocalCluster.metricsLines(metrics);
      while (!run.isDone()) {
        // Recovery takes well under a minute here (README, "Faults"); ten leave room for a loaded machine.
        assertTrue(System.nanoTime() - killed < TimeUnit.MINUTES.toNanos(10), "the run neither finished nor failed "
            + "within 10 minutes of the kill (failure seen: " + (detected != 0) + ", ranks reopened: "
            + (recovered != 0) + "); console: " + out);
        if (detected == 0 && out.toString().contains("run failed")) {
          detected = System.nanoTime();
          before = LocalCluster.metricsLines(metrics);
        }
        if (detected != 0 && recovered == 0 && out.toString().contains("rank(s) on executors")
            && out.toString().lastIndexOf("rank(s) on executors") > out.toString().indexOf("run failed")) {
          recovered = System.nanoTime();
        }
        Thread.sleep(20);
      }
      run.get();
      assertTrue(detected != 0 && recovered != 0, "the failure and the reopened ranks were seen while the run went on "
          + "(failure: " + (detected != 0) + ", reopened: " + (recovered != 0) + "): " + out);
      System.out.printf(Locale.ROOT, "executor killed after step %d: failure detected after %.1f s, ranks reopened "
          + "after %.1f s more%n", before, (detected - killed) / 1e9, (recovered - detected) / 1e9);
      String log = out.toString();
      assertTrue(log.contains("restart 1 of 3") && log.contains("from the checkpoint at step"), log);
      assertTrue(log.matches("(?s).*run failed at step \\d+ with the ranks on executors \\[.*\\], rank \\d lost executor "
          + executorId + " \\(host [^:]+: .+\\).*"), "the failure names the rank, executor and host: " + log);
      assertArrayEquals(straight, Files.readAllBytes(dir.resolve("model/model.safetensors")),
          "the recovered run's model equals the uninterrupted run's, bit for bit");
    } finally {
      pool.shutdownNow();
    }
  }
}
