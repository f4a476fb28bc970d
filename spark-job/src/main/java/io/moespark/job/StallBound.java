package io.moespark.job;

import java.util.ArrayList;
import java.util.List;

/**
 * When a runner calls its ranks stalled: no step finished for 3 × the median step time seen so far, at
 * least 30 s; before any step has finished (the first includes warm-up), {@code parallel.timeout_s}.
 */
final class StallBound {
  static final double MIN_SECONDS = 30;
  static final double MEDIAN_STEPS = 3;

  private final double beforeFirstStep;
  private final List<Double> stepSeconds = new ArrayList<>();

  StallBound(double beforeFirstStep) {
    this.beforeFirstStep = beforeFirstStep;
  }

  void stepTook(double seconds) {
    stepSeconds.add(seconds);
  }

  double seconds() {
    if (stepSeconds.isEmpty()) {
      return beforeFirstStep;
    }
    double[] sorted = stepSeconds.stream().mapToDouble(Double::doubleValue).sorted().toArray();
    return Math.max(MIN_SECONDS, MEDIAN_STEPS * sorted[sorted.length / 2]);
  }

  /** The error a runner stops with: the bound, the step, and each rank's executor and phase from its heartbeats. */
  Stalled stalled(double bound, int afterStep, String runId, List<String> executors) {
    StepFeedPlugin.RanksNow now = StepFeedPlugin.ranksNow(runId, executors);
    return new Stalled(String.format(java.util.Locale.ROOT, "the ranks stalled: no step finished within %.0f s "
        + "(3 x the median step time, at least 30 s) after step %d: %s", bound, afterStep, now.text()),
        now.silentExecutors());
  }

  /** A stall, with the executors of the ranks that fell silent (the driver asks Spark to replace them). */
  static final class Stalled extends IllegalStateException {
    private static final long serialVersionUID = 1L;
    private final transient List<String> silentExecutors;

    Stalled(String message, List<String> silentExecutors) {
      super(message);
      this.silentExecutors = List.copyOf(silentExecutors);
    }

    List<String> silentExecutors() {
      return silentExecutors;
    }
  }
}
