package io.moespark.prep.stage;

import static org.apache.spark.sql.functions.col;
import static org.apache.spark.sql.functions.lit;
import static org.apache.spark.sql.functions.not;
import static org.apache.spark.sql.functions.pmod;
import static org.apache.spark.sql.functions.xxhash64;

import org.apache.spark.sql.Column;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;

/**
 * Deterministic train/validation split by document hash: a document is in validation when
 * pmod(xxhash64(hash), 10^6) < valFraction * 10^6. It depends only on the document's content, so adding or
 * removing other documents never moves it.
 */
public final class Split {
  private Split() {}

  public static Column isVal(double valFraction) {
    return pmod(xxhash64(col("hash")), lit(1_000_000L)).lt(lit(Math.round(valFraction * 1_000_000)));
  }

  public static Dataset<Row> train(Dataset<Row> docs, double valFraction) {
    return docs.where(not(isVal(valFraction)));
  }

  public static Dataset<Row> val(Dataset<Row> docs, double valFraction) {
    return docs.where(isVal(valFraction));
  }
}
