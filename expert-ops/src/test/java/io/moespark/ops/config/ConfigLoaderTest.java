package io.moespark.ops.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.moespark.ops.moe.RouterKind;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class ConfigLoaderTest {
  static final Path ROOT = Path.of("..").toAbsolutePath().normalize();

  @Test
  void bundledConfigsLoadWithTheirValues() {
    RunConfig bench = ConfigLoader.load(ROOT.resolve("conf/bench.yaml"), List.of());
    assertEquals(4096, bench.model().vocabSize());
    assertEquals(256, bench.model().dModel());
    assertEquals(4, bench.model().nLayers());
    assertEquals(4, bench.model().nHeads());
    assertEquals(256, bench.model().seqLen());
    assertEquals(1024, bench.model().dFf());
    assertEquals(8, bench.moe().experts());
    assertEquals(2, bench.moe().topK());
    assertEquals(512, bench.moe().dExpert());
    assertEquals(1, bench.moe().every());
    assertEquals(16, bench.train().batchSize());
    RunConfig tiny = ConfigLoader.load(ROOT.resolve("conf/tiny.yaml"), List.of());
    assertEquals(0.01, tiny.moe().auxLossCoef(), "defaults fill what a file leaves out");
  }

  @Test
  void overridesApplyInOrderAndParseTypes() {
    RunConfig c = ConfigLoader.load(null, List.of("train.steps=7", "moe.router=expert_choice", "train.lr=0.5",
        "data.path=x.txt", "train.steps=9"));
    assertEquals(9, c.train().steps());
    assertEquals(RouterKind.EXPERT_CHOICE, c.moe().router());
    assertEquals(0.5, c.train().lr());
    assertEquals("x.txt", c.data().path());
  }

  @ParameterizedTest
  @CsvSource(delimiter = '|', value = {
      "moe.top_k=9|moe.top_k: expected in [1, moe.experts = 4], got 9",
      "model.d_model=30|model.d_model: expected a multiple of model.n_heads (4), got 30",
      "train.lr=-1|train.lr: expected > 0, got -1.0",
      "train.steps=abc|train.steps",
      "moe.router=mystery|moe.router: expected one of topk, expert_choice, hash",
      "moe.expertz=3|unknown key 'moe.expertz'",
      "parallel.dispatch=carrier-pigeon|parallel.dispatch: expected one of direct, shuffle",
      "parallel.device=tpu|parallel.device: expected one of cpu, cuda",
      "parallel.precision=fp16|parallel.precision: expected one of fp32, tf32, bf16",
      "parallel.precision=bf16|parallel.precision: expected fp32 with parallel.device: cpu",
      "train.steps|--set train.steps: expected key=value",
      "train.sample_tokens=0;train.sample_prompts=[a]|train.sample_tokens: expected > 0, got 0",
      "train.sample_prompts=[a]|train.sample_prompts: expected train.eval_every > 0",
      "train.eval_every=5;train.sample_prompts=[a, ' ']|train.sample_prompts: expected a list of non-empty prompts",
      "train.eval_every=5;train.sample_prompts=[a];moe.router=expert_choice|no prompts with moe.router: expert_choice",
      "train.sample_prompts=7|train.sample_prompts",
      "parallel.placement=roaming|parallel.placement: expected one of fixed, schedule, dynamic",
      "parallel.placement_window=0|parallel.placement_window: expected > 0",
      "parallel.placement_threshold=0.9|parallel.placement_threshold: expected >= 1",
      "parallel.placement_schedule=['1:0:0']|no entries unless parallel.placement: schedule",
      "parallel.placement=schedule;parallel.placement_schedule=['x']|expected entries STEP:LAYER:ranks,ranks",
      "parallel.replica_slots=-1|parallel.replica_slots: expected >= 0, got -1",
      "parallel.placement_move_cost=-5|parallel.placement_move_cost: expected >= 0",
      "parallel.placement=schedule;parallel.replica_slots=1|parallel.replica_slots: expected 0 unless parallel.placement: dynamic",
      "parallel.placement=dynamic;parallel.replica_slots=1;parallel.dispatch=shuffle|parallel.replica_slots: expected 0 with parallel.dispatch: shuffle",
      "parallel.placement=schedule;parallel.ranks=2;moe.experts=4;parallel.placement_schedule=['1:0:0,0,0,0']|rank 1 holds none",
      "parallel.placement=schedule;parallel.ranks=2;moe.experts=4;parallel.placement_schedule=['1:0:0,1,2,0']|ranks in [0, parallel.ranks = 2)",
      "parallel.placement=schedule;parallel.ranks=2;moe.experts=4;parallel.placement_schedule=['1:0:0,1']|a rank for each of the 4 experts",
      "parallel.placement=schedule;train.steps=5;parallel.placement_schedule=['5:0:0,0,0,0']|steps in [1, train.steps)"})
  void badValuesNameTheKey(String overrides, String message) { // several overrides: separated by ';'
    ConfigException e = assertThrows(ConfigException.class,
        () -> ConfigLoader.load(null, List.of(overrides.split(";"))));
    assertTrue(e.getMessage().contains(message), e.getMessage());
  }

  /** Replicas in a schedule are ranks joined by | (the table above splits its rows at |). */
  @Test
  void scheduledReplicasParseAndBadOnesNameTheKey() {
    List<String> base = List.of("parallel.placement=schedule", "parallel.ranks=2", "moe.experts=4");
    java.util.function.Function<String, List<String>> with = entry -> java.util.stream.Stream.concat(base.stream(),
        java.util.stream.Stream.of("parallel.placement_schedule=['" + entry + "']")).toList();
    RunConfig ok = ConfigLoader.load(null, with.apply("1:0:1|0,0,1,1"));
    assertEquals("[[1, 0], [0], [1], [1]]", // as written; a layout sorts each expert's ranks
        java.util.Arrays.deepToString(ok.parallel().moves().get(0).holders()));
    for (String[] bad : new String[][] {{"1:0:0|0,0,1,1", "distinct ranks for an expert's replicas"},
        {"1:0:0|,0,1,1", "ranks joined by | for replicas), got '1:0:0|,0,1,1'"},
        {"1:0:0|2,0,1,1", "ranks in [0, parallel.ranks = 2)"}}) {
      ConfigException e = assertThrows(ConfigException.class, () -> ConfigLoader.load(null, with.apply(bad[0])));
      assertTrue(e.getMessage().startsWith("parallel.placement_schedule: ") && e.getMessage().contains(bad[1]),
          e.getMessage());
    }
    List<String> onShuffle = new java.util.ArrayList<>(with.apply("1:0:0|1,0,1,1"));
    onShuffle.add("parallel.dispatch=shuffle");
    ConfigException e = assertThrows(ConfigException.class, () -> ConfigLoader.load(null, onShuffle));
    assertTrue(e.getMessage().contains("one rank per expert with parallel.dispatch: shuffle"), e.getMessage());
  }

  @ParameterizedTest
  @CsvSource(delimiter = '|', value = {
      "train.steps=abc|train.steps: expected an integer, got 'abc' (--set train.steps=abc)",
      "train.steps=2.5|train.steps: expected an integer, got '2.5' (--set train.steps=2.5)",
      "train.lr=fast|train.lr: expected a number, got 'fast' (--set train.lr=fast)",
      "moe.norm_topk=maybe|moe.norm_topk: expected true or false, got 'maybe' (--set moe.norm_topk=maybe)",
      "train.steps=-3|train.steps: expected > 0, got -3 (--set train.steps=-3)",
      "moe.router=mystery|moe.router: expected one of topk, expert_choice, hash (--set moe.router=mystery)"})
  void aBadOverrideIsReportedAgainstTheOverrideNotTheFile(String override, String message) {
    ConfigException e = assertThrows(ConfigException.class,
        () -> ConfigLoader.load(ROOT.resolve("conf/tiny.yaml"), List.of(override)));
    assertEquals(message, e.getMessage());
  }

  @Test
  void overridesTakeTheKeysTypesNotTheDefaultsSpelling() {
    // defaults.yaml spells some doubles as integers (capacity_factor: 0): a double is still a double.
    RunConfig c = ConfigLoader.load(ROOT.resolve("conf/tiny.yaml"), List.of("moe.capacity_factor=1.0",
        "moe.capacity_factor=1.25", "train.lr=1", "moe.norm_topk=false", "train.steps=12"));
    assertEquals(1.25, c.moe().capacityFactor());
    assertEquals(1.0, c.train().lr());
    assertEquals(12, c.train().steps());
  }

  @Test
  void unknownKeyInAFileNamesFileAndKey(@TempDir Path tmp) throws IOException {
    Path f = tmp.resolve("run.yaml");
    Files.writeString(f, "model:\n  d_model: 64\n  dmodel: 3\n");
    ConfigException e = assertThrows(ConfigException.class, () -> ConfigLoader.load(f, List.of()));
    assertTrue(e.getMessage().contains(f.toString()) && e.getMessage().contains("unknown key 'model.dmodel'"),
        e.getMessage());
  }

  @Test
  void wrongTypeInAFileNamesTheKey(@TempDir Path tmp) throws IOException {
    Path f = tmp.resolve("run.yaml");
    Files.writeString(f, "train:\n  batch_size: sixteen\n");
    ConfigException e = assertThrows(ConfigException.class, () -> ConfigLoader.load(f, List.of()));
    assertTrue(e.getMessage().contains("train.batch_size"), e.getMessage());
  }

  @Test
  void missingFileIsOneClearError() {
    ConfigException e = assertThrows(ConfigException.class,
        () -> ConfigLoader.load(Path.of("no/such/run.yaml"), List.of()));
    assertEquals("config file no/such/run.yaml does not exist", e.getMessage());
  }

  @Test
  void roundTripsThroughItsTree() {
    RunConfig c = ConfigLoader.load(ROOT.resolve("conf/tiny.yaml"), List.of("moe.router=hash", "moe.top_k=1"));
    assertEquals(c, ConfigLoader.fromTree(ConfigLoader.toTree(c), "config.json"));
  }
}
