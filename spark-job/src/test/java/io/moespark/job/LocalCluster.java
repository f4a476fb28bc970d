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
    SparkConf conf = executorClasses(new SparkConf().setMaster(master(executors, cores, memoryMb)))
        .setAppName("moe-spark-tests")
        .set("spark.authenticate", "true")
        .set("spark.authenticate.secret", "local-cluster-test-secret")
        .set("spark.network.crypto.enabled", "true")
        .set("spark.plugins", StepFeedPlugin.CLASS)
        .set("spark.shuffle.compress", "false") // shuffle bytes are the blocks' bytes (ShuffleRunnerTest)
        .set("spark.ui.enabled", "false");
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
}
