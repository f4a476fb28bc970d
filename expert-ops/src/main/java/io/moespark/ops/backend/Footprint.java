package io.moespark.ops.backend;

import java.util.Locale;

/**
 * The memory a backend instance (one rank's arena) holds: bytes of the buffers it allocated and has not
 * freed, the most it held at once, and how many allocations it made (a steady step makes none).
 */
public record Footprint(long liveBytes, long peakBytes, long allocations) implements java.io.Serializable {
  /** "12.3 MiB (peak 15.0 MiB, 412 allocations)". */
  @Override
  public String toString() {
    return String.format(Locale.ROOT, "%.1f MiB (peak %.1f MiB, %d allocations)", liveBytes / 1048576.0,
        peakBytes / 1048576.0, allocations);
  }
}
