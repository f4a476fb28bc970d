package io.moespark.ops.optim;

/**
 * Linear warmup to the peak over {@code warmup} steps, then cosine decay to {@code minRatio * peak} at
 * the last step. Step numbers start at 0: lr(0) = peak / warmup.
 */
public record LrSchedule(double peak, int warmup, int total, double minRatio) {
  public double at(int step) {
    if (step < warmup) {
      return peak * (step + 1) / warmup;
    }
    double span = Math.max(1, total - warmup - 1);
    double progress = Math.min(1.0, (step - warmup) / span);
    double min = peak * minRatio;
    return min + (peak - min) * 0.5 * (1 + Math.cos(Math.PI * progress));
  }
}
