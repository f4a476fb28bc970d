package io.moespark.job;

import io.moespark.job.RankTasks.RankReply;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;

/**
 * The direct path: a barrier stage runs several steps on every rank, whose exchanges go straight between
 * the ranks over their collective. Each step's statistics reach the driver as the step ends through
 * {@link StepFeedPlugin} when it is installed, else when the stage ends.
 */
final class DirectRunner implements StepRunner {
  /** The least time without a finished step that counts as a stall. */
  static final double MIN_STALL_S = 30;
  /** A stall is this many median step times without a finished step. */
  static final double STALL_STEPS = 3;

  private final RankGroup group;
  /** Step times seen so far by this runner, for the stall bound. */
  private final List<Double> stepSeconds = new ArrayList<>();
  private final boolean watched;

  DirectRunner(RankGroup group) {
    this.group = group;
    this.watched = group.sc().getConf().get("spark.plugins", "").contains(StepFeedPlugin.CLASS);
  }

  /**
   * How long the driver waits for the next step before it calls the ranks stalled: 3 × the median step
   * time, at least 30 s; before any step has finished (the first includes warm-up), parallel.timeout_s.
   */
  double stallBoundSeconds() {
    if (stepSeconds.isEmpty()) {
      return group.config().parallel().timeoutS();
    }
    double[] sorted = stepSeconds.stream().mapToDouble(Double::doubleValue).sorted().toArray();
    return Math.max(MIN_STALL_S, STALL_STEPS * sorted[sorted.length / 2]);
  }

  @Override
  public List<StepResult> steps(int count, Consumer<StepResult> onStep, String description) {
    int from = group.nextStep();
    String runId = group.runId();
    BlockingQueue<StepResult> feed = StepFeedPlugin.open(runId);
    List<StepResult> delivered = new ArrayList<>();
    List<RankReply> replies;
    try {
      replies = group.stage(new RankTasks.Steps(from, count), description, job -> {
        long lastProgress = System.nanoTime();
        while (!job.isDone()) {
          StepResult s = feed.poll(100, TimeUnit.MILLISECONDS);
          if (s != null && s.step() == from + delivered.size()) {
            onStep.accept(s);
            delivered.add(s);
            stepSeconds.add(s.report().seconds());
            lastProgress = System.nanoTime();
          }
          double bound = stallBoundSeconds();
          if (watched && (System.nanoTime() - lastProgress) / 1e9 > bound) {
            job.cancel(true);
            throw new IllegalStateException(String.format(java.util.Locale.ROOT, "the ranks stalled: no step "
                + "finished within %.0f s (3 x the median step time, at least 30 s) after step %d; ranks on "
                + "executors %s", bound, from + delivered.size(), group.executors()));
          }
        }
      });
    } finally {
      StepFeedPlugin.close(runId);
    }
    RankReply zero = replies.get(0);
    // Steps whose message had not arrived when the stage ended (or no plugin): from the stage's result.
    for (StepResult s : zero.steps().subList(delivered.size(), zero.steps().size())) {
      onStep.accept(s);
      delivered.add(s);
    }
    group.advance(zero.steps().size());
    if (zero.diverged() != null) {
      throw zero.diverged();
    }
    return delivered;
  }

  @Override
  public double evaluate() {
    return group.stage(new RankTasks.Evaluate(), "validation after step " + group.nextStep(), null).get(0).valLoss();
  }
}
