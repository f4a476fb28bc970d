package io.moespark.ops.backend;

import java.util.concurrent.atomic.AtomicLong;

/**
 * Counts a backend's copies between its memory and host Java memory ({@code toHost}, {@code fromHost},
 * {@code toDoubles}, {@code fromDoubles}, {@code fromInts}), so that a test can hold a training step to
 * the transfers it is allowed (the batch up; per MoE layer the counts that size the exchange; the logged
 * scalars once). For the CPU backend host memory is its memory, and the count is what a device backend
 * would have to copy at the same calls.
 */
public final class HostTransfers {
  private final AtomicLong toHostCalls = new AtomicLong();
  private final AtomicLong toHostBytes = new AtomicLong();
  private final AtomicLong fromHostCalls = new AtomicLong();
  private final AtomicLong fromHostBytes = new AtomicLong();

  /** Totals since the backend was made. */
  public record Snapshot(long toHostCalls, long toHostBytes, long fromHostCalls, long fromHostBytes) {
    /** What happened between {@code before} and this snapshot. */
    public Snapshot minus(Snapshot before) {
      return new Snapshot(toHostCalls - before.toHostCalls, toHostBytes - before.toHostBytes,
          fromHostCalls - before.fromHostCalls, fromHostBytes - before.fromHostBytes);
    }
  }

  /** Records a copy of {@code bytes} from the backend to the host. */
  public void down(long bytes) {
    toHostCalls.incrementAndGet();
    toHostBytes.addAndGet(bytes);
  }

  /** Records a copy of {@code bytes} from the host to the backend. */
  public void up(long bytes) {
    fromHostCalls.incrementAndGet();
    fromHostBytes.addAndGet(bytes);
  }

  public Snapshot snapshot() {
    return new Snapshot(toHostCalls.get(), toHostBytes.get(), fromHostCalls.get(), fromHostBytes.get());
  }
}
