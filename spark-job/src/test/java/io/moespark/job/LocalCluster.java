package io.moespark.job;

import java.nio.file.Path;
import org.apache.spark.SparkConf;
import org.apache.spark.api.java.JavaSparkContext;

/**
 * A local-cluster Spark context for tests: real executor JVMs that load SPARK_HOME/jars (built under
 * target/ by the build) plus this module's classes, with Spark authentication and encryption on.
 */
public final class LocalCluster {
  private LocalCluster() {}

  public static JavaSparkContext start(int executors, int cores, int memoryMb) {
    return start(executors, cores, memoryMb, java.util.Map.of());
  }

  /** The same with {@code extra} settings on top (e.g. a shorter network timeout for fault tests). */
  public static JavaSparkContext start(int executors, int cores, int memoryMb, java.util.Map<String, String> extra) {
    SparkConf conf = executorClasses(new SparkConf().setMaster(master(executors, cores, memoryMb)))
        .setAppName("moe-spark-tests")
        .set("spark.authenticate", "true")
        .set("spark.authenticate.secret", "local-cluster-test-secret")
        .set("spark.network.crypto.enabled", "true")
        .set("spark.plugins", StepFeedPlugin.CLASS)
        .set("spark.stage.maxConsecutiveAttempts", "1") // as moe-train launches: a retried stage cannot help
        .set("spark.scheduler.barrier.maxConcurrentTasksCheck.interval", "2s") // as moe-train launches
        .set("spark.scheduler.barrier.maxConcurrentTasksCheck.maxFailures", "300")
        .set("spark.shuffle.compress", "false") // shuffle bytes are the blocks' bytes (ShuffleRunnerTest)
        .set("spark.ui.enabled", "false");
    extra.forEach(conf::set);
    JavaSparkContext sc = new JavaSparkContext(conf);
    sc.setLogLevel("WARN");
    return sc;
  }

  static String master(int executors, int cores, int memoryMb) {
    return "local-cluster[" + executors + "," + cores + "," + memoryMb + "]";
  }

  /** Executor JVMs load this module's classes (the job jar is not built when tests run). */
  static SparkConf executorClasses(SparkConf conf) {
    String classes = Path.of("target", "classes").toAbsolutePath() + java.io.File.pathSeparator
        + Path.of("target", "test-classes").toAbsolutePath();
    return conf.set("spark.executor.extraClassPath", classes)
        .set("spark.executor.extraJavaOptions", System.getProperty("moe.addOpens", ""));
  }

  /** One of the executor JVMs the cluster started (children of this JVM), for fault tests. */
  static ProcessHandle anExecutorProcess() {
    return ProcessHandle.current().descendants()
        .filter(p -> p.info().commandLine().orElse("").contains("CoarseGrainedExecutorBackend"))
        .findFirst().orElseThrow(() -> new AssertionError("no executor process found"));
  }

  /** The executor id an executor process was started with ({@code --executor-id}). */
  static String executorId(ProcessHandle executor) {
    java.util.regex.Matcher m = java.util.regex.Pattern.compile("--executor-id (\\S+)")
        .matcher(executor.info().commandLine().orElse(""));
    if (!m.find()) {
      throw new AssertionError("no --executor-id in " + executor.info().commandLine());
    }
    return m.group(1);
  }

  /** Waits until a run started on another thread has written {@code steps} metrics lines (3 minutes at most). */
  static void awaitSteps(java.nio.file.Path metrics, int steps, java.util.concurrent.Future<?> run, Object console)
      throws Exception {
    long deadline = System.nanoTime() + java.util.concurrent.TimeUnit.MINUTES.toNanos(3);
    while (metricsLines(metrics) < steps) {
      org.junit.jupiter.api.Assertions.assertTrue(System.nanoTime() < deadline && !run.isDone(),
          "the run did not reach step " + steps + ": " + console);
      Thread.sleep(10);
    }
  }

  /** Complete lines of a run's metrics.jsonl so far (0 before it exists). */
  static int metricsLines(java.nio.file.Path file) throws java.io.IOException {
    return java.nio.file.Files.exists(file)
        ? (int) java.nio.file.Files.readAllLines(file).stream().filter(l -> l.endsWith("}")).count() : 0;
  }
}
