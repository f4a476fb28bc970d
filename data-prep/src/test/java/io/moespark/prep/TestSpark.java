package io.moespark.prep;

import org.apache.spark.sql.SparkSession;

/** One in-process Spark session for the module's tests (local[2], few shuffle partitions). */
public final class TestSpark {
  private static SparkSession spark;

  private TestSpark() {}

  public static synchronized SparkSession get() {
    if (spark == null) {
      spark = SparkSession.builder().master("local[2]").appName("data-prep-tests")
          .config("spark.sql.shuffle.partitions", 4).config("spark.ui.enabled", false).getOrCreate();
      spark.sparkContext().setLogLevel("ERROR");
    }
    return spark;
  }
}
