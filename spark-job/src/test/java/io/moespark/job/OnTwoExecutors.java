package io.moespark.job;

import org.apache.spark.api.java.JavaSparkContext;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;

/** Tests sharing one local-cluster[2,1,2048]: two executor JVMs with one task slot each. */
abstract class OnTwoExecutors {
  static JavaSparkContext sc;

  @BeforeAll
  static void cluster() {
    sc = LocalCluster.start(2, 1, 2048);
  }

  @AfterAll
  static void stop() {
    sc.stop();
  }
}
