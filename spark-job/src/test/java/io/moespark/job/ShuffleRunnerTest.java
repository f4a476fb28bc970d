package io.moespark.job;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.moespark.ops.collective.Blocks;
import io.moespark.job.shuffle.BlockSerializer;
import io.moespark.ops.config.ConfigLoader;
import io.moespark.ops.config.RunConfig;
import io.moespark.ops.train.Trainer;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.spark.scheduler.SparkListener;
import org.apache.spark.scheduler.SparkListenerJobStart;
import org.apache.spark.scheduler.SparkListenerStageCompleted;
import org.apache.spark.scheduler.StageInfo;
import org.junit.jupiter.api.Test;
import scala.jdk.javaapi.CollectionConverters;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The shuffle path on two executor JVMs (local-cluster[2,1,2048]): one Spark job per step whose
 * exchanges are shuffles gives the per-step losses and final parameters of the single-process trainer
 * and of the direct path (dropless), for E = 4 over R = 2 and the uneven E = 3 over R = 2 (1 and 2
 * experts). A listener sees stages named after the step's phases and dispatch stages whose shuffle
 * write is exactly the routed tokens' bytes plus one block header per (source, destination). With
 * capacity dropping, the driver's token counts before and after dropping equal the single-process
 * trainer's (R = 1) and the direct path's (R = 2; capacity is per rank).
 */
class ShuffleRunnerTest extends OnTwoExecutors {
  @ParameterizedTest(name = "E={0} R={1}")
  @CsvSource({"4, 2", "3, 2"})
  void shuffleStepsMatchTheSingleProcessTrainerAndTheDirectPath(int experts, int ranks) {
    int steps = 4;
    RunConfig shuffle = SmallRuns.config(experts, ranks, "train.steps=" + steps, "parallel.dispatch=shuffle");
    double[] refLoss = new double[steps];
    Trainer reference = SmallRuns.reference(shuffle, refLoss);
    StepRunners.Result viaShuffle = StepRunners.train(sc, shuffle, steps, s -> {});
    DirectPathTest.assertSameLosses(refLoss, viaShuffle.steps());
    DirectPathTest.assertSameParams(reference, viaShuffle.params());
    RunConfig direct = SmallRuns.config(experts, ranks, "train.steps=" + steps);
    List<StepResult> viaDirect = StepRunners.train(sc, direct, steps, s -> {}).steps();
    for (int s = 0; s < steps; s++) {
      double a = viaShuffle.steps().get(s).loss(), b = viaDirect.get(s).loss();
      assertTrue(Math.abs(a - b) <= 1e-5 * Math.abs(b), "step " + s + ": shuffle " + a + " vs direct " + b);
    }
    assertEquals(ranks > 1, viaShuffle.steps().get(1).bytesExchanged() > 0);
  }

  @Test
  void eachDispatchStageWritesTheRoutedTokensPlusBlockHeadersAndStagesAreNamedAfterPhases() throws Exception {
    int steps = 2, ranks = 2, d = 32;
    RunConfig cfg = SmallRuns.config(4, ranks, "train.steps=" + steps, "parallel.dispatch=shuffle");
    List<String[]> stages = Collections.synchronizedList(new ArrayList<>()); // name, description, bytes written
    Map<Integer, String> jobOfStage = new ConcurrentHashMap<>();
    SparkListener listener = new SparkListener() {
      @Override
      public void onJobStart(SparkListenerJobStart job) {
        String description = job.properties().getProperty("spark.job.description", "");
        for (Object id : CollectionConverters.asJava(job.stageIds())) {
          jobOfStage.put((Integer) id, description);
        }
      }

      @Override
      public void onStageCompleted(SparkListenerStageCompleted done) {
        StageInfo s = done.stageInfo();
        stages.add(new String[] {s.name(), jobOfStage.getOrDefault(s.stageId(), ""),
            String.valueOf(s.taskMetrics().shuffleWriteMetrics().bytesWritten())});
      }
    };
    sc.sc().addSparkListener(listener);
    List<StepResult> results;
    try {
      results = StepRunners.train(sc, cfg, steps, s -> {}).steps();
      sc.sc().listenerBus().waitUntilEmpty(30_000);
    } finally {
      sc.sc().removeSparkListener(listener);
    }
    List<String> names = stages.stream().filter(s -> s[1].startsWith("step 1/")).map(s -> s[0]).toList();
    for (String phase : List.of("L0 attention + router", "L0 route", "L0 dispatch", "L0 experts fwd",
        "L1 dispatch", "lm head + loss", "L1 combine bwd", "L1 experts bwd", "L0 experts bwd",
        "dense grads (reduce-scatter)", "dense grads (all-gather)", "grad norm", "optimizer + statistics")) {
      assertTrue(names.contains(phase), "no stage named '" + phase + "' in " + names);
    }
    // One record per (source, destination): framing, block header, dtype, rows and columns, then the values.
    long perRecord = BlockSerializer.FRAMING + Blocks.HEADER + 1 + 4 + 4;
    for (int step = 0; step < steps; step++) {
      for (int layer = 0; layer < 2; layer++) {
        String name = "L" + layer + " dispatch", job = "step " + (step + 1);
        long written = stages.stream().filter(s -> s[0].equals(name) && s[1].startsWith(job + "/"))
            .mapToLong(s -> Long.parseLong(s[2])).sum();
        long kept = java.util.Arrays.stream(results.get(step).report().layers().get(layer).keptPerExpert()).sum();
        long routed = kept * d * Float.BYTES;
        assertEquals(routed + (long) ranks * ranks * perRecord, written,
            name + " of " + job + ": " + kept + " routed token copies of " + d + " floats");
      }
    }
  }

  @Test
  void droppedCountsWithCapacityMatchTheSingleProcessTrainerAndTheDirectPath() {
    int steps = 3;
    RunConfig one = SmallRuns.config(4, 1, "train.steps=" + steps, "moe.capacity_factor=1.0",
        "parallel.dispatch=shuffle");
    Trainer reference = Trainer.singleProcess(one, io.moespark.ops.train.TokenData.split(io.moespark.ops.train
        .TokenData.load(SmallRuns.CORPUS, "auto", "data"), one.data().valFraction()).train(),
        io.moespark.ops.backend.cpu.CpuBackend.INSTANCE, io.moespark.ops.tensor.DType.F32);
    List<StepResult> shuffled = StepRunners.train(sc, one, steps, s -> {}).steps();
    boolean dropped = false;
    for (int s = 0; s < steps; s++) {
      io.moespark.ops.train.StepReport ref = reference.step();
      for (int l = 0; l < ref.layers().size(); l++) {
        assertArrayEquals(ref.layers().get(l).assignedPerExpert(),
            shuffled.get(s).report().layers().get(l).assignedPerExpert(), "assigned, step " + s + " layer " + l);
        assertArrayEquals(ref.layers().get(l).keptPerExpert(),
            shuffled.get(s).report().layers().get(l).keptPerExpert(), "kept, step " + s + " layer " + l);
      }
      dropped |= ref.droppedFraction() > 0;
    }
    assertTrue(dropped, "capacity factor 1.0 drops something on these batches");
    // Capacity is per rank (ceil(cf k T_rank / E)), so with two ranks the reference is the direct path's two ranks.
    RunConfig two = SmallRuns.config(4, 2, "train.steps=" + steps, "moe.capacity_factor=1.0");
    List<StepResult> direct = StepRunners.train(sc, two, steps, s -> {}).steps();
    List<StepResult> shuffle2 = StepRunners.train(sc, ConfigLoader.fromTree(ConfigLoader.toTree(two), "test",
        List.of("parallel.dispatch=shuffle")), steps, s -> {}).steps();
    for (int s = 0; s < steps; s++) {
      assertEquals(direct.get(s).report().droppedFraction(), shuffle2.get(s).report().droppedFraction(), 0.0,
          "step " + s);
      for (int l = 0; l < 2; l++) {
        assertArrayEquals(direct.get(s).report().layers().get(l).keptPerExpert(),
            shuffle2.get(s).report().layers().get(l).keptPerExpert(), "kept, R=2, step " + s + " layer " + l);
      }
    }
  }
}
