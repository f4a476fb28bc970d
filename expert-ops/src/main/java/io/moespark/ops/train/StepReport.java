package io.moespark.ops.train;

import io.moespark.ops.model.LossTerms;
import io.moespark.ops.moe.MoeStats;
import java.io.Serializable;
import java.util.List;

/**
 * What one training step reports: loss terms, optimizer numbers, speed and per-layer expert load.
 * Serializable so that a runner can ship it from the ranks to a driver as it is.
 */
public record StepReport(int step, LossTerms loss, double lr, double gradNorm, double seconds, long tokens,
    List<MoeStats> layers) implements Serializable {
  public StepReport {
    layers = List.copyOf(layers);
  }

  public double tokensPerSecond() {
    return tokens / seconds;
  }

  /** The worst layer's max/mean expert load (1.0 when there is no MoE layer). */
  public double maxOverMeanLoad() {
    return layers.stream().mapToDouble(MoeStats::maxOverMeanLoad).max().orElse(1.0);
  }

  public double droppedFraction() {
    long assigned = layers.stream().mapToLong(MoeStats::assigned).sum();
    long kept = layers.stream().mapToLong(MoeStats::kept).sum();
    return assigned == 0 ? 0 : 1.0 - (double) kept / assigned;
  }
}
