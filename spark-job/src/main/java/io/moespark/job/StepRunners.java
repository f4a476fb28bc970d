package io.moespark.job;

import io.moespark.ops.config.RunConfig;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;
import org.apache.spark.api.java.JavaSparkContext;

/** Choosing a {@link StepRunner}, and a whole short run for benchmarks and tests. */
public final class StepRunners {
  private StepRunners() {}

  /** The runner of the group's {@code parallel.dispatch}. */
  public static StepRunner of(RankGroup group) {
    return switch (group.config().parallel().dispatch()) {
      case DIRECT -> new DirectRunner(group);
      case SHUFFLE -> new ShuffleRunner(group);
    };
  }

  /** A finished run: every step's statistics and the gathered parameters. */
  public record Result(List<StepResult> steps, Map<String, float[]> params) {}

  /** Trains {@code steps} steps with R = {@code cfg.parallel.ranks} fresh ranks and gathers the parameters. */
  public static Result train(JavaSparkContext sc, RunConfig cfg, int steps, Consumer<StepResult> onStep) {
    try (RankGroup group = RankGroup.open(sc, cfg, ExpertPlacement.contiguous(cfg, cfg.parallel().ranks()), null)) {
      StepRunner runner = of(group);
      List<StepResult> all = new ArrayList<>();
      while (all.size() < steps) {
        all.addAll(runner.steps(Math.min(cfg.parallel().stepsPerStage(), steps - all.size()), onStep, "run"));
      }
      return new Result(all, group.gather());
    }
  }
}
