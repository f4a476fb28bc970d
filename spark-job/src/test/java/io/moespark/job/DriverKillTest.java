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

  /** Runs moe-train's main class on {@code dir} (through the halt: scheme), returns its exit code. */
  static int driver(Path tmp, Path dir, boolean resume, Point halt) throws IOException, InterruptedException {
    List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
        "-Xmx1g", "-cp", System.getProperty("java.class.path")));
    for (String opt : System.getProperty("moe.addOpens", "").split("\\s+")) {
      if (!opt.isEmpty()) {
        cmd.add(opt);
      }
    }
    cmd.addAll(List.of("-Dspark.hadoop.fs.halt.impl=" + HaltingFileSystem.class.getName(), "-Dspark.ui.enabled=false"));
    if (halt != null) {
      cmd.addAll(List.of("-Dmoe.halt.path=" + halt.path(), "-Dmoe.halt.bytes=" + halt.bytes()));
    }
    cmd.addAll(List.of(TrainMain.class.getName(), "--master", "local[2]", "--run-dir", "halt://" + dir));
    if (resume) {
      cmd.add("--resume");
    } else {
      cmd.addAll(List.of("--config", Path.of("..", "conf", "tiny.yaml").toString()));
      for (String set : SmallRuns.sets(4, 2, "train.steps=6", "checkpoint.every=2", "checkpoint.keep=3",
          "train.eval_every=0", "parallel.steps_per_stage=2")) {
        cmd.addAll(List.of("--set", set));
      }
    }
    File log = tmp.resolve(dir.getFileName() + ".log").toFile();
    Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log).start();
    if (!p.waitFor(3, TimeUnit.MINUTES)) {
      p.destroyForcibly();
      throw new AssertionError("moe-train did not end within 3 minutes: " + Files.readString(log.toPath()));
    }
    return p.exitValue();
  }
}
