package io.moespark.job;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.moespark.job.cli.TrainMain;
import io.moespark.job.io.CheckpointStore;
import io.moespark.ops.config.ConfigException;
import io.moespark.ops.config.RunConfig;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Comparator;
import java.util.List;
import java.util.stream.Stream;
import org.apache.spark.api.java.JavaSparkContext;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Nothing already written is lost, and nothing left behind blocks the next attempt (in-process
 * {@code local[2]}, two ranks): a finished run whose export is gone re-exports with --resume; a corrupt
 * newest checkpoint falls back to the one before (and the run ends with the same model bytes); an
 * uncommitted checkpoint folder and a torn last metrics line are cleaned up on resume; a start that
 * failed before its first checkpoint is rerun; a missing data path fails on the driver, writing nothing.
 */
class RunRecoveryTest {
  static JavaSparkContext sc;

  @BeforeAll
  static void start() {
    sc = new JavaSparkContext(TrainMain.sparkConf("local[2]", "recovery tests").set("spark.ui.enabled", "false"));
    sc.setLogLevel("WARN");
  }

  @AfterAll
  static void stop() {
    sc.stop();
  }

  static RunConfig cfg(String... more) {
    java.util.List<String> sets = new java.util.ArrayList<>(List.of("train.steps=4", "checkpoint.every=2",
        "checkpoint.keep=2", "train.eval_every=0", "parallel.steps_per_stage=2"));
    sets.addAll(List.of(more));
    return SmallRuns.config(4, 2, sets.toArray(String[]::new));
  }

  static String run(Path dir, boolean resume, int stopAt, RunConfig c) throws IOException {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    TrainJob.run(sc, c, dir.toString(), resume, stopAt, new PrintStream(out));
    return out.toString();
  }

  static byte[] model(Path dir) throws IOException {
    return Files.readAllBytes(dir.resolve("model/model.safetensors"));
  }

  static void delete(Path p) throws IOException {
    try (Stream<Path> s = Files.walk(p)) {
      for (Path x : s.sorted(Comparator.reverseOrder()).toList()) {
        Files.delete(x);
      }
    }
  }

  @Test
  void aLostExportAndACorruptNewestCheckpointAreRecovered(@TempDir Path tmp) throws IOException {
    Path dir = tmp.resolve("run");
    run(dir, false, 0, cfg());
    byte[] straight = model(dir);
    assertEquals(java.util.Optional.of("local[2]"),
        io.moespark.job.cli.TrainMain.recordedMaster(dir.toString(), new org.apache.hadoop.conf.Configuration()),
        "the run records its master for --resume");

    delete(dir.resolve("model"));
    String again = run(dir, true, 0, cfg());
    assertTrue(again.contains("nothing left to run: exporting the model"), again);
    assertArrayEquals(straight, model(dir), "re-exported from the last checkpoint");

    Path newest = dir.resolve(CheckpointStore.DIR).resolve("step-00000004").resolve("shard-00001.safetensors");
    byte[] b = Files.readAllBytes(newest);
    b[b.length - 3] ^= (byte) 0xFF;
    Files.write(newest, b);
    delete(dir.resolve("model"));
    String fallback = run(dir, true, 0, cfg());
    assertTrue(fallback.contains("warning: checkpoint") && fallback.contains("step-00000004")
        && fallback.contains("using the one before it") && fallback.contains("resuming from"), fallback);
    assertArrayEquals(straight, model(dir), "replayed from step 2: the same model bytes");
  }

  @Test
  void leftoversOfAnInterruptedRunAreCleanedOnResume(@TempDir Path tmp) throws IOException {
    Path dir = tmp.resolve("run");
    run(dir, false, 2, cfg());
    Path orphan = Files.createDirectories(dir.resolve(CheckpointStore.DIR).resolve("_tmp-step-00000004-dead"));
    Files.writeString(orphan.resolve("shard-00000.safetensors"), "half");
    Files.writeString(dir.resolve("metrics.jsonl"), "{\"step\": 2, \"loss\": 6.1", StandardOpenOption.APPEND);
    String out = run(dir, true, 0, cfg());
    assertTrue(out.contains("removed 1 uncommitted checkpoint folder") && out.contains("cut off mid-write"), out);
    assertFalse(Files.exists(orphan));
    List<String> lines = Files.readAllLines(dir.resolve("metrics.jsonl"));
    assertEquals(4, lines.size());
    ObjectMapper json = new ObjectMapper();
    for (int i = 0; i < 4; i++) {
      assertEquals(i + 1, json.readTree(lines.get(i)).get("step").asInt(), "metrics.jsonl numbers steps from 1");
    }
  }

  @Test
  void aFailedStartLeavesNothingThatBlocksTheNextAttempt(@TempDir Path tmp) throws IOException {
    Path dir = tmp.resolve("run");
    ConfigException e = assertThrows(ConfigException.class,
        () -> run(dir, false, 0, cfg("data.path=" + tmp.resolve("no-such-corpus.txt"))));
    assertTrue(e.getMessage().contains("data.path") && e.getMessage().contains("does not exist"), e.getMessage());
    assertFalse(Files.exists(dir), "nothing written for a start that fails on the driver");

    // A driver killed before the first checkpoint leaves a config and a few metrics lines: a rerun starts over.
    Files.createDirectories(dir);
    Files.writeString(dir.resolve("metrics.jsonl"), "{\"step\": 0, \"loss\": 6.0}\n");
    String out = run(dir, false, 0, cfg());
    assertTrue(out.contains("starting over"), out);
    assertEquals(4, Files.readAllLines(dir.resolve("metrics.jsonl")).size());
    ConfigException again = assertThrows(ConfigException.class, () -> run(dir, false, 0, cfg()));
    assertTrue(again.getMessage().contains("already holds a run"), again.getMessage());
  }
}
