package io.moespark.ops.tensor;

import java.util.concurrent.ForkJoinPool;
import java.util.stream.IntStream;

/**
 * Splits a row loop over this process's compute threads. Bodies are elementwise or row-local, so the
 * result does not depend on the split. The thread count defaults to the available processors and is
 * set to a task's cores by the Spark executor runtime ({@link #setThreads}).
 */
public final class Parallel {
  private static volatile ForkJoinPool pool = new ForkJoinPool(Runtime.getRuntime().availableProcessors());

  /** A loop body over rows [from, to). */
  public interface RowRange {
    void run(int from, int to);
  }

  private Parallel() {}

  public static void setThreads(int threads) {
    ForkJoinPool old = pool;
    pool = new ForkJoinPool(Math.max(1, threads));
    old.shutdown();
  }

  public static int threads() {
    return pool.getParallelism();
  }

  public static void rows(int rows, RowRange body) {
    int chunks = Math.min(rows, pool.getParallelism() * 4);
    if (chunks <= 1 || rows < 64) {
      body.run(0, rows);
      return;
    }
    pool.submit(() -> IntStream.range(0, chunks).parallel()
        .forEach(c -> body.run((int) ((long) c * rows / chunks), (int) ((long) (c + 1) * rows / chunks)))).join();
  }
}
