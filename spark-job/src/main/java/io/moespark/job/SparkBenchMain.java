package io.moespark.job;

import io.moespark.job.cli.TrainMain;
import io.moespark.ops.cli.Args;
import io.moespark.ops.config.ConfigLoader;
import io.moespark.ops.config.RunConfig;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import org.apache.spark.SparkConf;
import org.apache.spark.api.java.JavaSparkContext;

/**
 * {@code moe-bench-spark --config FILE --ranks R --steps S [--master URL] [--set key=value]...}: opens R
 * ranks (on the path {@code parallel.dispatch} names), runs one warm-up step, then S timed steps in stages of {@code parallel.steps_per_stage}, and
 * prints one JSON line: tokens/s of the steps themselves and of the wall clock, and the per-step overhead
 * of the driver loop (wall time minus step time, over S: job submission, task launch, result collection).
 */
public final class SparkBenchMain {
  private static final String USAGE = "moe-bench-spark --config FILE --ranks R --steps S [--master URL] [--set key=value]...";

  private SparkBenchMain() {}

  public static void main(String[] argv) {
    Args.run("moe-bench-spark", USAGE, argv, () -> {
      Args a = new Args(argv, 0, Set.of("--config", "--ranks", "--steps", "--master", "--set"), Set.of());
      int ranks = a.integer("--ranks", 1);
      List<String> sets = new ArrayList<>(a.all("--set"));
      sets.add("parallel.ranks=" + ranks);
      bench(ConfigLoader.load(Path.of(a.required("--config")), sets), ranks, a.integer("--steps", 5),
          a.optional("--master", null));
    });
  }

  private static void bench(RunConfig cfg, int ranks, int steps, String master) {
    // In-process, the machine's cores are split evenly over the ranks (spark.task.cpus), as executors would be.
    int cores = Runtime.getRuntime().availableProcessors();
    SparkConf conf = TrainMain.sparkConf(master == null ? "local[" + Math.max(cores, ranks) + "]" : master,
        "moe-bench-spark").set("spark.ui.enabled", "false");
    if (master == null) {
      conf.set("spark.task.cpus", String.valueOf(Math.max(1, cores / ranks)));
    }
    JavaSparkContext sc = new JavaSparkContext(conf);
    sc.setLogLevel("WARN");
    try {
      long t0 = System.nanoTime();
      try (RankGroup d = RankGroup.open(sc, cfg, ExpertPlacement.contiguous(cfg, ranks), null)) {
        double open = (System.nanoTime() - t0) / 1e9;
        StepRunner runner = StepRunners.of(d);
        runner.steps(1, s -> {}, "warm-up step");
        long t1 = System.nanoTime();
        List<StepResult> timed = new ArrayList<>();
        while (timed.size() < steps) {
          timed.addAll(runner.steps(Math.min(cfg.parallel().stepsPerStage(), steps - timed.size()), s -> {}, "timed steps"));
        }
        double wall = (System.nanoTime() - t1) / 1e9, stepSeconds = 0;
        long tokens = 0;
        for (StepResult s : timed) {
          stepSeconds += s.report().seconds();
          tokens += s.report().tokens();
        }
        System.out.printf(Locale.ROOT, "{\"runner\": \"%s\", \"master\": \"%s\", \"ranks\": %d, \"steps\": %d, "
            + "\"steps_per_stage\": %d, \"tokens_per_s\": %.1f, \"wall_tokens_per_s\": %.1f, \"seconds_per_step\": %.4f, "
            + "\"overhead_per_step_s\": %.4f, \"open_s\": %.2f}%n", cfg.parallel().dispatch().key(), sc.master(), ranks, steps,
            cfg.parallel().stepsPerStage(), tokens / stepSeconds, tokens / wall, stepSeconds / steps,
            (wall - stepSeconds) / steps, open);
      }
    } finally {
      sc.stop();
    }
  }
}
