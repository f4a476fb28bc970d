package io.moespark.job;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.moespark.job.io.CheckpointStore;
import io.moespark.ops.config.ConfigException;
import io.moespark.ops.config.ConfigLoader;
import io.moespark.ops.config.RunConfig;
import io.moespark.ops.io.Checkpoint;
import io.moespark.ops.io.ModelFiles;
import io.moespark.ops.train.Trainer;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The driver loop on two executor JVMs (local-cluster[2,1,2048], R = 2): the run directory (with its
 * report) and the metrics-system gauges, a run
 * stopped after step 3 and resumed is bit-identical to an uninterrupted one, a checkpoint written with
 * R = 2 resumes with R = 1, corrupt checkpoints and reused run directories are refused by name, and a
 * diverging run stops with a message and leaves what it wrote intact.
 */
class TrainJobTest extends OnTwoExecutors {
  static final ObjectMapper JSON = new ObjectMapper();
  static final PrintStream QUIET = new PrintStream(new ByteArrayOutputStream());

  static RunConfig cfg(int ranks, String... more) {
    List<String> sets = new ArrayList<>(List.of("train.steps=6", "train.eval_every=3", "checkpoint.every=3",
        "moe.bias_update_rate=0.01", "parallel.steps_per_stage=2"));
    sets.addAll(List.of(more));
    return SmallRuns.config(4, ranks, sets.toArray(String[]::new));
  }

  @Test
  void stoppedAndResumedRunIsBitIdenticalAndAnyRCanResume(@TempDir Path tmp) throws IOException {
    Path straight = tmp.resolve("straight"), resumed = tmp.resolve("resumed"), oneRank = tmp.resolve("one-rank");
    RunConfig two = cfg(2, "checkpoint.keep=1");
    TrainJob.Outcome a = TrainJob.run(sc, two, straight.toString(), false, 0, QUIET);
    assertEquals(6, a.steps());

    // The run directory.
    assertEquals(two, ConfigLoader.fromTree(JSON.readTree(straight.resolve("config.json").toFile()), "config.json"));
    List<JsonNode> m = metrics(straight);
    assertEquals(6, m.size());
    for (int i = 0; i < 6; i++) {
      assertEquals(i + 1, m.get(i).get("step").asInt(), "metrics.jsonl numbers steps from 1, as the console does");
      for (String k : List.of("loss", "ce", "aux", "tokens_per_s", "max_over_mean_load", "dropped_fraction",
          "exchange_seconds", "bytes_exchanged", "expert_tokens", "expert_tokens_kept")) {
        assertTrue(m.get(i).has(k), k + " missing in " + m.get(i));
      }
      assertEquals(i == 2 || i == 5, m.get(i).has("val_loss"), "validation after steps 3 and 6 only");
      assertEquals(2, m.get(i).get("expert_tokens").size(), "two MoE layers");
    }
    assertTrue(m.get(5).get("val_loss").asDouble() < m.get(2).get("val_loss").asDouble(), "validation loss falls");
    try (Stream<Path> s = Files.list(straight.resolve(CheckpointStore.DIR))) {
      assertEquals(List.of("step-00000006"), s.map(p -> p.getFileName().toString()).toList(), "keep = 1");
    }
    assertEquals(two.model(), ModelFiles.load(straight.resolve("model"), io.moespark.ops.backend.cpu.CpuBackend.INSTANCE).config());
    // The report: one point per step on the loss curve (runs up to 500 steps: a window per step), the two
    // validation losses, a load cell per layer, expert and step holding the step's tokens of metrics.jsonl.
    String report = Files.readString(straight.resolve(io.moespark.job.io.RunReport.FILE));
    String loss = report.replaceAll("(?s).*<svg id=\"chart-loss\".*?<polyline class=\"training\"[^>]*points=\"([^\"]*)\".*", "$1");
    assertEquals(6, loss.split(" ").length, loss);
    assertEquals(2, report.split("<circle class=\"validation\"", -1).length - 1);
    java.util.regex.Matcher cell = java.util.regex.Pattern.compile("<rect class=\"load\" data-layer=\"(\\d+)\" "
        + "data-expert=\"(\\d+)\" data-first=\"(\\d+)\" data-last=\"\\3\" data-tokens=\"(\\d+)\"").matcher(report);
    int cells = 0;
    for (; cell.find(); cells++) {
      assertEquals(m.get(Integer.parseInt(cell.group(3))).get("expert_tokens").get(Integer.parseInt(cell.group(1)))
          .get(Integer.parseInt(cell.group(2))).asLong(), Long.parseLong(cell.group(4)), cell.group());
    }
    assertEquals(2 * 4 * 6, cells, "a cell per MoE layer, expert and step");
    // The metrics system reports the last step (what a Prometheus sink would scrape).
    var sources = scala.jdk.javaapi.CollectionConverters.asJava(
        sc.sc().env().metricsSystem().getSourcesByName("plugin." + StepFeedPlugin.CLASS));
    assertEquals(1, sources.size());
    var gauges = sources.get(0).metricRegistry().getGauges();
    assertEquals(6, ((Number) gauges.get("step").getValue()).intValue());
    assertEquals(m.get(5).get("loss").asDouble(), ((Number) gauges.get("loss").getValue()).doubleValue(), 0.0);

    // Stopped after step 3, then resumed: the same bits.
    TrainJob.Outcome stopped = TrainJob.run(sc, two, resumed.toString(), false, 3, QUIET);
    assertEquals(3, stopped.steps());
    assertEquals(null, stopped.modelDir());
    TrainJob.run(sc, two, resumed.toString(), true, 0, QUIET);
    List<JsonNode> r = metrics(resumed);
    assertEquals(6, r.size());
    for (int i = 0; i < 6; i++) {
      for (String k : List.of("loss", "ce", "aux", "grad_norm", "val_loss")) {
        assertEquals(m.get(i).path(k).asDouble(Double.NaN), r.get(i).path(k).asDouble(Double.NaN), 0.0, k + " " + i);
      }
    }
    assertArrayEquals(Files.readAllBytes(straight.resolve("model/model.safetensors")),
        Files.readAllBytes(resumed.resolve("model/model.safetensors")));

    // A checkpoint written by two ranks, continued by one.
    TrainJob.run(sc, two, oneRank.toString(), false, 3, QUIET);
    RunConfig one = ConfigLoader.fromTree(ConfigLoader.toTree(two), "test", List.of("parallel.ranks=1"));
    TrainJob.run(sc, one, oneRank.toString(), true, 0, QUIET);
    List<JsonNode> o = metrics(oneRank);
    for (int i = 3; i < 6; i++) {
      double ref = m.get(i).get("loss").asDouble(), got = o.get(i).get("loss").asDouble();
      assertTrue(Math.abs(got - ref) <= 1e-5 * Math.abs(ref), "step " + i + ": " + got + " vs " + ref);
    }
  }

  @Test
  void corruptCheckpointAndReusedRunDirectoryAreRefusedByName(@TempDir Path tmp) throws IOException {
    Path run = tmp.resolve("run");
    RunConfig c = cfg(2);
    TrainJob.run(sc, c, run.toString(), false, 3, QUIET);
    ConfigException reuse = assertThrows(ConfigException.class,
        () -> TrainJob.run(sc, c, run.toString(), false, 0, QUIET));
    assertTrue(reuse.getMessage().contains("already holds a run") && reuse.getMessage().contains("--resume"),
        reuse.getMessage());
    Path shard = run.resolve(CheckpointStore.DIR).resolve("step-00000003").resolve(Checkpoint.shardFile(1));
    byte[] bytes = Files.readAllBytes(shard);
    bytes[bytes.length - 1] ^= 1;
    Files.write(shard, bytes);
    IllegalStateException e = assertThrows(IllegalStateException.class,
        () -> TrainJob.run(sc, c, run.toString(), true, 0, QUIET));
    assertTrue(e.getMessage().contains(Checkpoint.shardFile(1)) && e.getMessage().contains("checksum"), e.getMessage());
    assertEquals(3, metrics(run).size(), "the metrics of the first three steps are kept");
  }

  @Test
  void divergenceStopsWithAMessageAndKeepsWhatWasWritten(@TempDir Path tmp) throws IOException {
    Path run = tmp.resolve("run");
    RunConfig c = cfg(2, "train.lr=1e30", "train.warmup_steps=0", "train.grad_clip=0", "checkpoint.every=1",
        "parallel.steps_per_stage=1", "train.eval_every=0");
    Trainer.DivergenceException e = assertThrows(Trainer.DivergenceException.class,
        () -> TrainJob.run(sc, c, run.toString(), false, 0, QUIET));
    assertTrue(e.getMessage().contains("diverged at step") && e.getMessage().contains("train.lr"), e.getMessage());
    int diverged = Integer.parseInt(e.getMessage().replaceAll(".*diverged at step (\\d+).*", "$1"));
    assertTrue(diverged >= 1, "step 0 has a finite loss: " + e.getMessage());
    assertEquals(diverged, metrics(run).size(), "one line per finished step");
    try (Stream<Path> s = Files.list(run.resolve(CheckpointStore.DIR))) {
      List<String> names = s.map(p -> p.getFileName().toString()).sorted().toList();
      assertFalse(names.isEmpty());
      assertTrue(names.stream().allMatch(n -> n.startsWith("step-")), "no temporary directories left: " + names);
    }
    assertFalse(Files.exists(run.resolve("model")), "no export of a diverged run");
  }

  static List<JsonNode> metrics(Path run) throws IOException {
    List<JsonNode> out = new ArrayList<>();
    for (String l : Files.readAllLines(run.resolve(RunDirectory.METRICS))) {
      out.add(JSON.readTree(l));
    }
    return out;
  }

  /**
   * A rank that meets bad input on its executor (a GPU it cannot use, a build without a device's layer)
   * fails the run as bad input (exit 2), without the restarts meant for lost executors; any other failure
   * of a rank stays a failure the driver may restart from.
   */
  @Test
  void aRanksBadInputIsReportedAsBadInputAndOtherFailuresAreNot() {
    ConfigException bad = assertThrows(ConfigException.class,
        () -> RankStages.byRank(failingBarrierStage(true), job -> {}, r -> r, "open 2 ranks"));
    assertEquals("parallel.device: cuda: no GPU", bad.getMessage());
    IllegalStateException other = assertThrows(IllegalStateException.class,
        () -> RankStages.byRank(failingBarrierStage(false), job -> {}, r -> r, "open 2 ranks"));
    assertTrue(other.getMessage().contains("out of disk"), other.getMessage());
  }

  /** A barrier stage of two tasks whose task 1 fails as RankTasks wraps a failure: with a ConfigException, or not. */
  private static org.apache.spark.api.java.JavaFutureAction<List<Integer>> failingBarrierStage(boolean badInput) {
    scala.reflect.ClassTag<Integer> tag = scala.reflect.ClassTag$.MODULE$.apply(Integer.class);
    scala.Function1<scala.collection.Iterator<Integer>, scala.collection.Iterator<Integer>> body =
        (scala.Function1<scala.collection.Iterator<Integer>, scala.collection.Iterator<Integer>> & java.io.Serializable)
            it -> {
              if (org.apache.spark.TaskContext.getPartitionId() == 1) {
                RuntimeException cause = badInput ? new ConfigException("parallel.device: cuda: no GPU")
                    : new java.io.UncheckedIOException(new IOException("out of disk"));
                throw new IllegalStateException("run x rank 1 on executor 1: " + cause, cause);
              }
              return scala.jdk.javaapi.CollectionConverters.asScala(List.of(0).iterator());
            };
    return org.apache.spark.api.java.JavaRDD.fromRDD(
        sc.parallelize(List.of(0, 1), 2).rdd().barrier().mapPartitions(body, false, tag), tag).collectAsync();
  }

  @Test
  void theDeviceAndTransportAreCheckedBeforeAnythingIsWritten(@TempDir Path tmp) {
    Path run = tmp.resolve("run");
    ConfigException cuda = assertThrows(ConfigException.class,
        () -> TrainJob.run(sc, cfg(2, "parallel.device=cuda"), run.toString(), false, 0, QUIET));
    assertTrue(cuda.getMessage().contains("-Pcuda"), cuda.getMessage()); // this build has no GPU layer
    ConfigException nccl = assertThrows(ConfigException.class,
        () -> TrainJob.run(sc, cfg(2, "parallel.transport=nccl"), run.toString(), false, 0, QUIET));
    assertTrue(nccl.getMessage().startsWith("parallel.transport: nccl"), nccl.getMessage());
    assertFalse(Files.exists(run), "nothing written");
  }
}
