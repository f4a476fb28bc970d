package io.moespark.ops.moe;

/**
 * Global statistics of one MoE layer for one step (all ranks): assignments per expert before and after
 * capacity dropping, and the unscaled aux and z losses.
 */
public record MoeStats(long[] assignedPerExpert, long[] keptPerExpert, double aux, double z)
    implements java.io.Serializable {
  public long assigned() {
    long s = 0;
    for (long c : assignedPerExpert) {
      s += c;
    }
    return s;
  }

  public long kept() {
    long s = 0;
    for (long c : keptPerExpert) {
      s += c;
    }
    return s;
  }

  public double droppedFraction() {
    long a = assigned();
    return a == 0 ? 0 : 1.0 - (double) kept() / a;
  }

  /** Max over mean of the assignments per expert (1.0 is perfectly balanced). */
  public double maxOverMeanLoad() {
    long max = 0;
    for (long c : assignedPerExpert) {
      max = Math.max(max, c);
    }
    double mean = (double) assigned() / assignedPerExpert.length;
    return mean == 0 ? 1.0 : max / mean;
  }
}
