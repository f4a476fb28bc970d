package io.moespark.job;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.moespark.job.net.DirectCollective;
import io.moespark.ops.config.ConfigLoader;
import io.moespark.ops.config.RunConfig;
import io.moespark.ops.moe.ShardLayout;
import io.moespark.ops.tensor.Parallel;
import io.moespark.ops.tensor.Param;
import io.moespark.ops.train.StepReport;
import io.moespark.ops.train.TokenData;
import io.moespark.ops.train.Trainer;
import java.io.Serializable;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import org.apache.spark.BarrierTaskContext;
import org.apache.spark.api.java.JavaFutureAction;
import org.apache.spark.api.java.JavaRDD;
import org.apache.spark.api.java.JavaSparkContext;
import org.nd4j.linalg.api.buffer.DataType;
import scala.Function1;
import scala.reflect.ClassTag$;

/**
 * The direct runner: one barrier stage of R tasks, one per rank, each a {@link Trainer} holding its dense
 * replica and expert shard (contiguous placement) for the whole stage; the MoE exchanges, statistics and
 * dense-gradient all-reduce go over the {@link DirectCollective}. First version: the run is one stage;
 * each step's statistics reach the driver as the step ends through {@link StepFeedPlugin} when it is
 * installed (else when the stage ends). Resident state across stages and checkpoints come next.
 */
public final class DirectRunner {
  private static final ObjectMapper JSON = new ObjectMapper();

  /** Global statistics of one step, as rank 0 saw them (they are identical on every rank). */
  public record StepResult(int step, double loss, double ce, double aux, double z, double gradNorm,
      double maxOverMeanLoad, double seconds, long tokens) implements Serializable {}

  /** What one rank returns: the step results (rank 0) and the parameters it owns (dense ones on rank 0). */
  public record RankOutput(int rank, List<StepResult> steps, Map<String, float[]> params) implements Serializable {}

  /** Both runners' view of a finished run. */
  public record Result(List<StepResult> steps, Map<String, float[]> params) {}

  private DirectRunner() {}

  /** Trains {@code steps} steps with R = {@code cfg.parallel.ranks} tasks; needs R free task slots. */
  public static Result run(JavaSparkContext sc, RunConfig cfg, int steps, long timeoutMs) throws Exception {
    return run(sc, cfg, steps, timeoutMs, s -> {});
  }

  /**
   * As {@link #run(JavaSparkContext, RunConfig, int, long)}, calling {@code onStep} once per step, in
   * order, as soon as the driver has the step's statistics.
   */
  public static Result run(JavaSparkContext sc, RunConfig cfg, int steps, long timeoutMs,
      Consumer<StepResult> onStep) throws Exception {
    String runId = UUID.randomUUID().toString();
    int ranks = cfg.parallel().ranks();
    // Executors have their own working directories: a relative local data path means the driver's.
    var tree = (com.fasterxml.jackson.databind.node.ObjectNode) ConfigLoader.toTree(cfg);
    String data = cfg.data().path();
    if (!data.contains(":") && !Path.of(data).isAbsolute()) {
      ((com.fasterxml.jackson.databind.node.ObjectNode) tree.get("data")).put("path",
          Path.of(data).toAbsolutePath().normalize().toString());
    }
    String cfgJson = JSON.writeValueAsString(tree);
    Function1<scala.collection.Iterator<Integer>, scala.collection.Iterator<RankOutput>> body =
        (Function1<scala.collection.Iterator<Integer>, scala.collection.Iterator<RankOutput>> & Serializable)
            it -> scala.jdk.javaapi.CollectionConverters.asScala(List.of(rank(runId, cfgJson, steps, timeoutMs))
                .iterator());
    List<Integer> ids = new ArrayList<>();
    for (int r = 0; r < ranks; r++) {
      ids.add(r);
    }
    sc.setJobDescription("direct runner · " + steps + " steps · R=" + ranks);
    BlockingQueue<StepResult> feed = StepFeedPlugin.open(runId);
    List<RankOutput> outs;
    int delivered = 0;
    try {
      JavaFutureAction<List<RankOutput>> job = JavaRDD.fromRDD(sc.parallelize(ids, ranks).rdd().barrier()
          .mapPartitions(body, false, ClassTag$.MODULE$.apply(RankOutput.class)),
          ClassTag$.MODULE$.apply(RankOutput.class)).collectAsync();
      while (!job.isDone()) {
        StepResult s = feed.poll(100, TimeUnit.MILLISECONDS);
        if (s != null && s.step() == delivered) {
          onStep.accept(s);
          delivered++;
        }
      }
      outs = job.get();
    } finally {
      StepFeedPlugin.close(runId);
    }
    List<StepResult> results = null;
    Map<String, float[]> params = new LinkedHashMap<>();
    for (RankOutput o : outs) {
      if (o.rank() == 0) {
        results = o.steps();
      }
      params.putAll(o.params());
    }
    // Steps whose message had not arrived when the stage ended (or no plugin): from the stage's result.
    for (int s = delivered; s < results.size(); s++) {
      onStep.accept(results.get(s));
    }
    return new Result(results, params);
  }

  private static RankOutput rank(String runId, String cfgJson, int steps, long timeoutMs) {
    BarrierTaskContext task = BarrierTaskContext.get();
    try {
      RunConfig cfg = ConfigLoader.fromTree(JSON.readTree(cfgJson), "run config");
      int r = task.partitionId(), ranks = task.numPartitions();
      Parallel.setThreads(task.cpus());
      int[] tokens = TokenData.load(Path.of(cfg.data().path()), cfg.data().format(), "data.path");
      TokenData.checkVocab(tokens, cfg.model().vocabSize(), "data.path " + cfg.data().path());
      Trainer trainer = new Trainer(cfg, TokenData.split(tokens, cfg.data().valFraction()).train(), DataType.FLOAT,
          r, ranks, layer -> ShardLayout.contiguous(cfg.moe().experts(), ranks, r));
      List<StepResult> results = new ArrayList<>();
      try (DirectCollective c = DirectCollective.forBarrierTask(task, timeoutMs)) {
        for (int s = 0; s < steps; s++) {
          StepReport rep = trainer.step(c, c);
          StepResult result = new StepResult(rep.step(), rep.loss().total(), rep.loss().ce(), rep.loss().aux(),
              rep.loss().z(), rep.gradNorm(), rep.maxOverMeanLoad(), rep.seconds(), rep.tokens());
          results.add(result);
          if (r == 0) {
            StepFeedPlugin.publish(runId, result);
          }
        }
      }
      Map<String, float[]> params = new LinkedHashMap<>();
      for (Param p : trainer.model().params().all()) {
        if (p.isExpert() || r == 0) {
          params.put(p.name(), p.value().dup('c').data().asFloat());
        }
      }
      return new RankOutput(r, r == 0 ? results : List.of(), params);
    } catch (Exception e) {
      throw new IllegalStateException("rank " + task.partitionId() + " failed: " + e.getMessage(), e);
    }
  }
}
