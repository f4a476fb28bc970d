package io.moespark.job;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.moespark.ops.backend.cpu.CpuBackend;
import io.moespark.ops.config.RunConfig;
import io.moespark.ops.io.Checkpoint;
import io.moespark.ops.io.ModelFiles;
import io.moespark.ops.io.SafeTensors;
import io.moespark.ops.tensor.Tensor;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code parallel.placement: schedule} on two executor JVMs: experts moved in memory between the ranks
 * (E = 5 over R = 2, both layers, twice) give the fixed-placement run's model byte for byte, on the direct
 * path and on the shuffle path; each move is a
 * console line and a metrics.jsonl row; checkpoints record the placement in force and the moves, and a run
 * stopped after a move and resumed ends with the uninterrupted run's model.
 */
class ExpertMoveRunTest extends OnTwoExecutors {
  static final String[] SCHEDULE = {"parallel.placement=schedule",
      "parallel.placement_schedule=[\"2:0:1,0,1,0,1\", \"2:1:0,0,1,1,0\", \"4:0:0,0,1,1,1\"]"};

  static RunConfig cfg(String... more) {
    List<String> sets = new ArrayList<>(List.of("moe.shared_experts=0", "train.steps=6", "train.eval_every=0",
        "checkpoint.every=0", "parallel.steps_per_stage=4"));
    sets.addAll(List.of(more));
    return SmallRuns.config(5, 2, sets.toArray(String[]::new));
  }

  static String run(RunConfig c, Path dir, boolean resume, int stopAt) throws IOException {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    TrainJob.run(sc, c, dir.toString(), resume, stopAt, new PrintStream(out));
    return out.toString();
  }

  @Test
  void movedExpertsGiveTheFixedRunsModelAndSayWhatMoved(@TempDir Path tmp) throws IOException {
    run(cfg(), tmp.resolve("fixed"), false, 0);
    String console = run(cfg(SCHEDULE), tmp.resolve("moved"), false, 0);
    assertArrayEquals(Files.readAllBytes(tmp.resolve("fixed/model/model.safetensors")),
        Files.readAllBytes(tmp.resolve("moved/model/model.safetensors")), "the same model, byte for byte");
    assertTrue(console.contains("step 2/6 · experts moved, scheduled (parallel.placement_schedule): layer 0 experts "
        + "0 0→1, 3 1→0; layer 1 experts 4 1→0 (ranks, | between replicas); 0 replicas; "), console);
    assertTrue(console.contains("step 4/6 · experts moved, "), console);
    List<JsonNode> rows = new ArrayList<>();
    for (String l : Files.readAllLines(tmp.resolve("moved/metrics.jsonl"))) {
      rows.add(new ObjectMapper().readTree(l));
    }
    List<JsonNode> events = rows.stream().filter(r -> r.has("event")).toList();
    assertEquals(2, events.size(), "a row per move");
    assertEquals(2, events.get(0).get("step").asInt());
    assertEquals(3, events.get(0).get("moved").size());
    // Each moved expert: w1, w3, w2 and their two moments; d_model 32, d_expert 48, float32.
    assertEquals(3 * 3 * 3 * 32 * 48 * 4, events.get(0).get("bytes").asLong());
    assertEquals(6, rows.size() - events.size(), "a row per step besides");
    String report = Files.readString(tmp.resolve("moved/report.html"));
    assertTrue(report.contains("<h3>Placement over time</h3>"), "report.html shows the placements");
    assertEquals(4, report.split("class=\"placement-change\"", -1).length, "the start and two moves: " + report);
    assertTrue(report.contains("<td>2</td><td><b>1</b> 0 1 <b>0</b> 1</td><td>0 0 1 1 <b>0</b></td>"), report);
  }

  /**
   * The shuffle path moves experts as Spark data (a job of one shuffle round whose blocks are the moved
   * tensors): the same schedule gives the shuffle path's fixed-placement model byte for byte.
   */
  @Test
  void onTheShufflePathMovedExpertsGiveTheFixedRunsModel(@TempDir Path tmp) throws IOException {
    run(cfg("parallel.dispatch=shuffle"), tmp.resolve("fixed"), false, 0);
    String console = run(cfg("parallel.dispatch=shuffle", SCHEDULE[0], SCHEDULE[1]), tmp.resolve("moved"), false, 0);
    assertTrue(console.contains("step 2/6 · experts moved, scheduled (parallel.placement_schedule): layer 0 experts "
        + "0 0→1, 3 1→0; layer 1 experts 4 1→0 "), console);
    assertTrue(console.contains("step 4/6 · experts moved, "), console);
    List<String> rows = moveRows(tmp.resolve("moved"));
    assertEquals(2, rows.size());
    assertEquals(3 * 3 * 3 * 32 * 48 * 4, new ObjectMapper().readTree(rows.get(0)).get("bytes").asLong(),
        "three experts' parameters and moments went through the shuffle");
    Path state;
    try (Stream<Path> st = Files.walk(tmp.resolve("moved/checkpoints"))) {
      state = st.filter(p -> p.getFileName().toString().equals("state.json")).findFirst().orElseThrow();
    }
    assertTrue(weights(state.getParent(), Checkpoint.shardFile(0)).containsKey("layers.1.moe.experts.4.w1.weight"),
        "rank 0 holds layer 1's expert 4 after the move (and writes it)");
    assertArrayEquals(Files.readAllBytes(tmp.resolve("fixed/model/model.safetensors")),
        Files.readAllBytes(tmp.resolve("moved/model/model.safetensors")), "the same model, byte for byte");
  }

  /**
   * Replicas by schedule: after step 2 experts 0 and 4 of layer 0 are held by both ranks (one moves as well),
   * after step 4 they are dropped again. A replicated expert's gradient is the sum of its holders' parts, added
   * in another order than the fixed run's accumulation over sources, so the model equals the fixed run's
   * within the tolerance the project uses between rank counts in float32 (DirectPathTest), not bit for bit. A
   * checkpoint written while replicas are in force holds each expert once; resumed from it, the run ends with
   * the uninterrupted run's model exactly.
   */
  @Test
  void replicatedExpertsGiveTheFixedRunsModelAndResumeExactly(@TempDir Path tmp) throws IOException {
    String[] replicas = {"parallel.placement=schedule",
        "parallel.placement_schedule=[\"2:0:0|1,1,1,1,0|1\", \"4:0:0,0,1,1,1\"]", "checkpoint.every=3"};
    run(cfg(), tmp.resolve("fixed"), false, 0);
    String console = run(cfg(replicas), tmp.resolve("replicas"), false, 0);
    assertTrue(console.contains("layer 0 experts 0 0→0|1, 1 0→1, 4 1→0|1 (ranks, | between replicas); 2 replicas; "),
        console);
    assertTrue(console.contains("step 4/6 · experts moved") && console.contains("; 0 replicas; "), console);
    Map<String, Tensor> fixed = weights(tmp.resolve("fixed/model")), replicated = weights(tmp.resolve("replicas/model"));
    assertEquals(fixed.keySet(), replicated.keySet(), "each expert once in the exported model");
    for (String name : fixed.keySet()) {
      double[] a = fixed.get(name).toDoubles(), b = replicated.get(name).toDoubles();
      double diff = 0, norm = 0;
      for (int i = 0; i < a.length; i++) {
        diff = Math.max(diff, Math.abs(a[i] - b[i]));
        norm = Math.max(norm, Math.abs(a[i]));
      }
      assertTrue(diff <= 1e-5 * Math.max(1, norm), name + ": max difference " + diff);
    }
    Path state;
    run(cfg(replicas), tmp.resolve("parts"), false, 3);
    try (Stream<Path> s = Files.walk(tmp.resolve("parts/checkpoints"))) {
      state = s.filter(p -> p.getFileName().toString().equals("state.json")).findFirst().orElseThrow();
    }
    assertEquals("[[[0,1],1,1,1,[0,1]],[0,0,1,1,1]]", new ObjectMapper().readTree(state.toFile()).get("placement")
        .toString(), "the placement in force at step 3, replicas as arrays");
    Map<String, Tensor> shard0 = weights(state.getParent(), Checkpoint.shardFile(0));
    Map<String, Tensor> shard1 = weights(state.getParent(), Checkpoint.shardFile(1));
    assertTrue(shard0.containsKey("layers.0.moe.experts.0.w1.weight"), "the primary (rank 0) writes expert 0");
    assertTrue(shard0.keySet().stream().noneMatch(shard1::containsKey), "each tensor in one shard only");
    run(cfg(replicas), tmp.resolve("parts"), true, 0);
    assertArrayEquals(Files.readAllBytes(tmp.resolve("replicas/model/model.safetensors")),
        Files.readAllBytes(tmp.resolve("parts/model/model.safetensors")), "resumed with replicas: the same model");
    String report = Files.readString(tmp.resolve("replicas/report.html"));
    assertTrue(report.contains("<td>2</td><td><b><i class=\"replica\">0|1</i></b> <b>1</b> 1 1 <b><i class=\"replica\">"
        + "0|1</i></b></td>"), report);
  }

  private static Map<String, Tensor> weights(Path model) throws IOException {
    return weights(model, ModelFiles.WEIGHTS);
  }

  private static Map<String, Tensor> weights(Path dir, String file) throws IOException {
    try (InputStream in = Files.newInputStream(dir.resolve(file))) {
      return SafeTensors.read(in, dir.resolve(file).toString(), CpuBackend.INSTANCE);
    }
  }

  /**
   * parallel.placement: dynamic with a threshold any imbalance passes: the run moves experts by their loads
   * and still ends with the fixed run's model; stopped mid-window after a move and resumed, it decides the
   * same moves (the checkpoint carries the window's loads) and ends with the same model.
   */
  @Test
  void dynamicPlacementMovesByLoadAndComputesTheSameModel(@TempDir Path tmp) throws IOException {
    String[] dynamic = {"parallel.placement=dynamic", "parallel.placement_window=2",
        "parallel.placement_threshold=1.0", "parallel.placement_min_interval=0", "parallel.placement_move_cost=0",
        "checkpoint.every=3"};
    run(cfg("checkpoint.every=3"), tmp.resolve("fixed"), false, 0);
    String console = run(cfg(dynamic), tmp.resolve("dynamic"), false, 0);
    assertTrue(console.contains("experts moved, by load over steps 1-2 (layer "), console);
    assertArrayEquals(Files.readAllBytes(tmp.resolve("fixed/model/model.safetensors")),
        Files.readAllBytes(tmp.resolve("dynamic/model/model.safetensors")), "the same model, byte for byte");
    run(cfg(dynamic), tmp.resolve("parts"), false, 3);
    String resumed = run(cfg(dynamic), tmp.resolve("parts"), true, 0);
    assertEquals(moveRows(tmp.resolve("dynamic")), moveRows(tmp.resolve("parts")), resumed);
    assertArrayEquals(Files.readAllBytes(tmp.resolve("dynamic/model/model.safetensors")),
        Files.readAllBytes(tmp.resolve("parts/model/model.safetensors")), "resumed mid-window: the same model");
  }

  /** metrics.jsonl's placement_move rows, without their timings. */
  static List<String> moveRows(Path run) throws IOException {
    List<String> out = new ArrayList<>();
    for (String l : Files.readAllLines(run.resolve("metrics.jsonl"))) {
      JsonNode r = new ObjectMapper().readTree(l);
      if (r.has("event")) {
        ((com.fasterxml.jackson.databind.node.ObjectNode) r).remove("seconds");
        out.add(r.toString());
      }
    }
    return out;
  }

  @Test
  void aRunStoppedAfterAMoveResumesToTheUninterruptedModel(@TempDir Path tmp) throws IOException {
    run(cfg(SCHEDULE), tmp.resolve("whole"), false, 0);
    RunConfig c = cfg(SCHEDULE[0], SCHEDULE[1], "checkpoint.every=3");
    run(c, tmp.resolve("parts"), false, 3);
    Path state;
    try (Stream<Path> s = Files.walk(tmp.resolve("parts/checkpoints"))) {
      state = s.filter(p -> p.getFileName().toString().equals("state.json")).findFirst().orElseThrow();
    }
    JsonNode st = new ObjectMapper().readTree(state.toFile());
    assertEquals("[[1,0,1,0,1],[0,0,1,1,0]]", st.get("placement").toString(), "the placement in force at step 3");
    assertEquals(1, st.get("placement_moves").size(), "the move at step 2");
    String resumed = run(c, tmp.resolve("parts"), true, 0);
    assertTrue(resumed.contains("step 4/6 · experts moved"), resumed);
    assertArrayEquals(Files.readAllBytes(tmp.resolve("whole/model/model.safetensors")),
        Files.readAllBytes(tmp.resolve("parts/model/model.safetensors")), "resumed after a move: the same model");
  }
}
