package io.moespark.job;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.moespark.job.cli.TrainMain;
import java.io.File;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The driver (moe-train in its own JVM, {@code local[2]}, two ranks) killed at five points of a run: before
 * the first checkpoint, while a checkpoint's shards are written, while its manifest is written, after the
 * last checkpoint, and while the export is written. The kill is {@code Runtime.halt} at an exact byte of a
 * write ({@link HaltingFileSystem}). After each, the command the README gives (a rerun, or {@code --resume})
 * completes with the model bytes of an uninterrupted run.
 */
class DriverKillTest {
  /** Where the driver dies: a path pattern, the bytes written to it first, and how the user continues. */
  record Point(String name, String path, long bytes, boolean resume, String says) {}

  static final String CKPT4 = ".*/checkpoints/_tmp-step-00000004-[^/]*";

  static final List<Point> POINTS = List.of(
      new Point("before the first checkpoint", ".*/checkpoints/_tmp-step-00000002-[^/]*", 0, false, "starting over"),
      new Point("during a checkpoint write", CKPT4 + "/shard-00001.safetensors", 200, true,
          "removed 1 uncommitted checkpoint folder"),
      new Point("during the manifest", CKPT4 + "/manifest.json", 20, true, "removed 1 uncommitted checkpoint folder"),
      new Point("after the last checkpoint", ".*/_tmp-model-[^/]*", 0, true, "nothing left to run: exporting"),
      new Point("during the export", ".*/_tmp-model-[^/]*/model.safetensors", 1000, true,
          "removed 1 unfinished temporary file(s) or folder(s) of an interrupted export"));

  @Test
  void aDriverKilledAtFivePointsLosesNothing(@TempDir Path tmp) throws Exception {
    Path straight = tmp.resolve("straight");
    assertEquals(0, driver(tmp, straight, false, null), "the uninterrupted run");
    byte[] model = Files.readAllBytes(straight.resolve("model/model.safetensors"));
    for (Point p : POINTS) {
      Path dir = tmp.resolve(p.name().replace(' ', '-'));
      assertEquals(137, driver(tmp, dir, false, p), p.name() + ": the driver was killed");
      assertFalse(Files.exists(dir.resolve("model/model.safetensors")), p.name() + ": killed before the export");
      int rc = driver(tmp, dir, p.resume(), null);
      String log = Files.readString(tmp.resolve(dir.getFileName() + ".log"));
      assertEquals(0, rc, p.name() + ": " + (p.resume() ? "--resume" : "the rerun") + " completes: " + log);
      assertTrue(log.contains(p.says()), p.name() + ": says '" + p.says() + "': " + log);
      assertArrayEquals(model, Files.readAllBytes(dir.resolve("model/model.safetensors")),
          p.name() + ": the model equals the uninterrupted run's");
      for (Path d : List.of(dir, dir.resolve("checkpoints"))) {
        try (var s = Files.list(d)) {
          assertTrue(s.noneMatch(f -> f.getFileName().toString().startsWith("_tmp-")), p.name() + ": no temporary "
              + "file or folder left in " + d);
        }
      }
      System.out.println("driver killed " + p.name() + ": " + (p.resume() ? "--resume" : "rerun") + " ends with the same model bytes");
    }
  }

  /**
   * SIGTERM (what Ctrl-C does too) stops either path the same way: the current stage ends, a checkpoint is
   * written, the report, one line saying how to resume; --resume then ends with the uninterrupted model.
   */
  @Test
  void aSignalStopsBothPathsWithACheckpointAndTheReport(@TempDir Path tmp) throws Exception {
    for (String dispatch : List.of("direct", "shuffle")) {
      String set = "parallel.dispatch=" + dispatch;
      Path straight = tmp.resolve(dispatch + "-straight"), dir = tmp.resolve(dispatch + "-stopped");
      int rc = driver(tmp, straight, false, null, set);
      assertEquals(0, rc, dispatch + ": the uninterrupted run: " + log(tmp, straight));
      // The run pauses as it begins its step-2 checkpoint until the signal has arrived, so it cannot finish first.
      Process p = start(tmp, dir, false, null, ".*/checkpoints/_tmp-step-00000002-[^/]*", set);
      while (LocalCluster.metricsLines(dir.resolve("metrics.jsonl")) < 1) {
        assertTrue(p.isAlive(), dispatch + ": the run ended before its first step: " + log(tmp, dir));
        Thread.sleep(20);
      }
      p.destroy(); // SIGTERM
      assertTrue(p.waitFor(3, TimeUnit.MINUTES), dispatch + ": the run stops");
      String log = log(tmp, dir);
      java.util.regex.Matcher m = java.util.regex.Pattern.compile("stopped after step (\\d+) of 6 \\(stop requested\\); "
          + "continue with: bin/moe-train --resume --run-dir \\S+").matcher(log);
      assertTrue(log.contains("stop requested: finishing the current stage") && m.find(), dispatch + ": " + log);
      int step = Integer.parseInt(m.group(1));
      assertTrue(step < 6, dispatch + ": stopped before the end (step " + step + ")");
      assertTrue(Files.exists(dir.resolve(String.format("checkpoints/step-%08d/manifest.json", step))),
          dispatch + ": a checkpoint at step " + step);
      assertTrue(Files.exists(dir.resolve("report.html")), dispatch + ": the report");
      assertFalse(log.contains("Exception"), dispatch + ": no stack traces: " + log);
      assertEquals(0, driver(tmp, dir, true, null), dispatch + ": --resume completes: " + log(tmp, dir));
      assertArrayEquals(Files.readAllBytes(straight.resolve("model/model.safetensors")),
          Files.readAllBytes(dir.resolve("model/model.safetensors")), dispatch + ": same model as uninterrupted");
      System.out.println(dispatch + ": SIGTERM after step " + step + " of 6, --resume ends with the same model bytes");
    }
  }

  static String log(Path tmp, Path dir) throws IOException {
    return Files.readString(tmp.resolve(dir.getFileName() + ".log"));
  }

  /** Runs moe-train's main class on {@code dir} (through the halt: scheme), returns its exit code. */
  static int driver(Path tmp, Path dir, boolean resume, Point halt, String... sets)
      throws IOException, InterruptedException {
    Process p = start(tmp, dir, resume, halt, null, sets);
    if (!p.waitFor(3, TimeUnit.MINUTES)) {
      p.destroyForcibly();
      throw new AssertionError("moe-train did not end within 3 minutes: " + log(tmp, dir));
    }
    return p.exitValue();
  }

  /** The driver as a child process; it halts at {@code halt}, or pauses at {@code pause} until it is signalled. */
  static Process start(Path tmp, Path dir, boolean resume, Point halt, String pause, String... sets)
      throws IOException {
    List<String> cmd = Jvm.command();
    cmd.addAll(List.of("-Dspark.hadoop.fs.halt.impl=" + HaltingFileSystem.class.getName(), "-Dspark.ui.enabled=false"));
    if (halt != null) {
      cmd.addAll(List.of("-Dmoe.halt.path=" + halt.path(), "-Dmoe.halt.bytes=" + halt.bytes()));
    }
    if (pause != null) {
      cmd.add("-Dmoe.pause.path=" + pause);
    }
    cmd.addAll(List.of(TrainMain.class.getName(), "--master", "local[2]", "--run-dir", "halt://" + dir));
    if (resume) {
      cmd.add("--resume");
    } else {
      cmd.addAll(List.of("--config", Path.of("..", "conf", "tiny.yaml").toString()));
      List<String> all = new ArrayList<>(SmallRuns.sets(4, 2, "train.steps=6", "checkpoint.every=2",
          "checkpoint.keep=3", "train.eval_every=0", "parallel.steps_per_stage=2"));
      all.addAll(List.of(sets));
      for (String set : all) {
        cmd.addAll(List.of("--set", set));
      }
    }
    File log = tmp.resolve(dir.getFileName() + ".log").toFile();
    return new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log).start();
  }
}
