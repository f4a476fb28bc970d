package io.moespark.job;

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
  private final RankGroup group;
  private final StallBound stall;
  /** Steps are watched only when they stream to the driver as they end (the plugin is installed). */
  private final boolean watched;

  DirectRunner(RankGroup group) {
    this.group = group;
    this.stall = new StallBound(group.config().parallel().timeoutS());
    this.watched = group.sc().getConf().get("spark.plugins", "").contains(StepFeedPlugin.CLASS);
  }

  @Override
  public List<StepResult> steps(int count, Consumer<StepResult> onStep, String description) {
    int from = group.nextStep();
    String runId = group.runId();
    BlockingQueue<StepResult> feed = StepFeedPlugin.open(runId);
    List<StepResult> delivered = new ArrayList<>();
    List<RankTasks.Stepped> replies;
    try {
      replies = group.stage(new RankTasks.Steps(from, count), RankTasks.Stepped.class, description, job -> {
        long lastProgress = System.nanoTime();
        while (!job.isDone()) {
          StepResult s = feed.poll(100, TimeUnit.MILLISECONDS);
          if (s != null && s.step() == from + delivered.size()) {
            onStep.accept(s);
            delivered.add(s);
            stall.stepTook(s.report().seconds());
            lastProgress = System.nanoTime();
          }
          double bound = stall.seconds();
          if (watched && (System.nanoTime() - lastProgress) / 1e9 > bound) {
            job.cancel(true);
            throw stall.stalled(bound, from + delivered.size(), group.runId(), group.executors());
          }
        }
      });
    } finally {
      StepFeedPlugin.close(runId);
    }
    RankTasks.Stepped zero = replies.get(0);
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
    return group.stage(new RankTasks.Evaluate(), RankTasks.Evaluated.class, "validation after step " + group.nextStep(),
        null).get(0).valLoss();
  }

  @Override
  public RankGroup.MoveCost move(ExpertPlacement next) {
    return group.move(next);
  }
}
