package io.moespark.job;

import io.moespark.ops.train.Trainer;
import java.util.List;
import java.util.function.Consumer;

/**
 * Runs training steps and validation passes on the ranks of a {@link RankGroup}, the way
 * {@code parallel.dispatch} says: {@link DirectRunner} (barrier stages of several steps, exchanges
 * straight between executors) or {@link ShuffleRunner} (a Spark job per step, exchanges as shuffles).
 * Both drive the same {@link Trainer} on every rank over the same rank-ordered exchange semantics, so
 * they produce the same numbers. {@link StepRunners#of} picks one.
 */
public interface StepRunner {
  /**
   * Runs the next {@code count} steps, calling {@code onStep} once per step in order as soon as the driver
   * has its statistics. Throws {@link Trainer.DivergenceException} on a non-finite loss (the ranks stop at
   * that step together: the loss is global).
   */
  List<StepResult> steps(int count, Consumer<StepResult> onStep, String description);

  /** Validation loss over every rank's share of the validation windows. */
  double evaluate();

  /**
   * Moves the ranks' experts to {@code next} in memory ({@link io.moespark.ops.train.ExpertMove}) over this
   * runner's exchange, at the step boundary the ranks are at.
   */
  RankGroup.MoveCost move(ExpertPlacement next);
}
