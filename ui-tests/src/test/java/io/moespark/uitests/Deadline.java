package io.moespark.uitests;

import static org.junit.jupiter.api.Assertions.fail;

import java.lang.management.ManagementFactory;
import java.lang.management.OperatingSystemMXBean;
import java.util.function.Supplier;

/**
 * A wait's deadline measured in the machine's share of time rather than wall time: each poll counts the
 * wall time since the last one divided by how oversubscribed the CPUs are (the load average over the
 * cores, at least 1), so a machine busy with other work gets proportionally longer before a wait fails.
 * A wait that fails says what it awaited and what it saw last.
 */
final class Deadline {
  private static final OperatingSystemMXBean OS = ManagementFactory.getOperatingSystemMXBean();

  private final String awaited;
  private final double budgetSeconds;
  private double spent;
  private long last = System.nanoTime();

  private Deadline(String awaited, double budgetSeconds) {
    this.awaited = awaited;
    this.budgetSeconds = budgetSeconds;
  }

  /** {@code seconds} of an unloaded machine's time to see {@code awaited}. */
  static Deadline of(String awaited, double seconds) {
    return new Deadline(awaited, seconds);
  }

  /** Fails naming what was awaited and {@code seen} once the budget is spent, or when {@code alive} is false. */
  void check(boolean alive, Supplier<String> seen) {
    long now = System.nanoTime();
    spent += (now - last) / 1e9 / loadFactor();
    last = now;
    if (!alive || spent > budgetSeconds) {
      fail(String.format(java.util.Locale.ROOT, "%s: %s (%.0f s of machine time%s); seen: %s", awaited,
          alive ? "not within its deadline" : "the process it waits on ended", budgetSeconds,
          loadFactor() > 1 ? String.format(java.util.Locale.ROOT, ", load %.1f on %d cores", OS.getSystemLoadAverage(),
              OS.getAvailableProcessors()) : "", seen.get()));
    }
  }

  /** How many runnable threads share each core (1 when idle or unknown). */
  static double loadFactor() {
    double load = OS.getSystemLoadAverage();
    return load < 0 ? 1 : Math.max(1, load / OS.getAvailableProcessors());
  }
}
