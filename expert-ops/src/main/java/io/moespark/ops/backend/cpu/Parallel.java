package io.moespark.ops.backend.cpu;

import java.util.concurrent.ForkJoinPool;
import java.util.stream.IntStream;
import org.nd4j.linalg.factory.Nd4j;

/**
 * Splits a row loop over this process's compute threads. Bodies are elementwise or row-local, so the
 * result does not depend on the split. The thread count defaults to the available processors; the Spark
 * runners set it to the task's cores ({@link #setThreads}).
 */
final class Parallel {
  private static volatile ForkJoinPool pool = new ForkJoinPool(Runtime.getRuntime().availableProcessors());

  /** A loop body over rows [from, to). */
  public interface RowRange {
    void run(int from, int to);
  }

  private Parallel() {}

  /**
   * Sets this process's compute threads: the row loops here, ND4J's native ops and OpenBLAS. A Spark task
   * calls it with its cores, or two executors sharing a machine oversubscribe it.
   */
  public static void setThreads(int threads) {
    int n = Math.max(1, threads);
    if (pool.getParallelism() != n) {
      ForkJoinPool old = pool;
      pool = new ForkJoinPool(n);
      old.shutdown();
    }
    Nd4j.getEnvironment().setMaxThreads(n);
    Nd4j.getEnvironment().setMaxMasterThreads(n);
    Nd4j.factory().blas().setMaxThreads(n);
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
