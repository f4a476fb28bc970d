package io.moespark.prep.stage;

import static org.apache.spark.sql.functions.col;
import static org.apache.spark.sql.functions.collect_set;
import static org.apache.spark.sql.functions.explode;
import static org.apache.spark.sql.functions.sha2;
import static org.apache.spark.sql.functions.size;
import static org.apache.spark.sql.functions.udf;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.api.java.UDF1;
import org.apache.spark.sql.api.java.UDF2;
import org.apache.spark.sql.expressions.UserDefinedFunction;
import org.apache.spark.sql.types.DataTypes;

/**
 * Exact dedup by content hash, and near-duplicate removal by MinHash with LSH banding over character
 * 5-gram shingles: 64 hash functions in 16 bands of 4; candidate pairs (sharing a band) are verified
 * with the exact Jaccard similarity, and of each pair at or above the threshold the document with the
 * larger content hash is dropped. Deterministic: hashes and seeds are fixed.
 */
public final class Dedup {
  static final int SHINGLE = 5;
  static final int HASHES = 64;
  static final int ROWS_PER_BAND = 4;
  private static final long PRIME = 4294967311L;
  private static final long[] A = new long[HASHES];
  private static final long[] B = new long[HASHES];

  static {
    java.util.SplittableRandom r = new java.util.SplittableRandom(0x5eed);
    for (int i = 0; i < HASHES; i++) {
      A[i] = 1 + r.nextLong(PRIME - 1);
      B[i] = r.nextLong(PRIME);
    }
  }

  static final UserDefinedFunction BAND_KEYS = udf((UDF1<String, List<String>>) Dedup::bandKeys,
      DataTypes.createArrayType(DataTypes.StringType));
  static final UserDefinedFunction JACCARD = udf((UDF2<String, String, Double>) Dedup::jaccard, DataTypes.DoubleType);

  private Dedup() {}

  /** Adds {@code hash} (SHA-256 of the text, hex) and keeps one document per hash. */
  public static Dataset<Row> exact(Dataset<Row> docs) {
    return docs.withColumn("hash", sha2(col("text"), 256)).dropDuplicates("hash");
  }

  /** Drops near-duplicates; docs need {@code hash} and {@code text}. */
  public static Dataset<Row> near(Dataset<Row> docs, double jaccardThreshold) {
    Dataset<Row> bands = docs.select(col("hash"), explode(BAND_KEYS.apply(col("text"))).as("band"));
    Dataset<Row> buckets = bands.groupBy("band").agg(collect_set("hash").as("members")).where(size(col("members")).gt(1));
    Dataset<Row> pairs = buckets.select(explode(col("members")).as("a"), col("members"))
        .select(col("a"), explode(col("members")).as("b")).where(col("a").lt(col("b"))).distinct();
    Dataset<Row> texts = docs.select(col("hash"), col("text"));
    Dataset<Row> scored = pairs
        .join(texts.withColumnRenamed("hash", "a").withColumnRenamed("text", "ta"), "a")
        .join(texts.withColumnRenamed("hash", "b").withColumnRenamed("text", "tb"), "b")
        .where(JACCARD.apply(col("ta"), col("tb")).geq(jaccardThreshold));
    Dataset<Row> drop = scored.select(col("b").as("hash")).distinct();
    return docs.join(drop, docs.col("hash").equalTo(drop.col("hash")), "left_anti");
  }

  static Set<Integer> shingles(String s) {
    Set<Integer> out = new HashSet<>();
    byte[] b = s.getBytes(StandardCharsets.UTF_8);
    if (b.length < SHINGLE) {
      out.add(java.util.Arrays.hashCode(b));
      return out;
    }
    for (int i = 0; i + SHINGLE <= b.length; i++) {
      int h = 0x811c9dc5;
      for (int j = i; j < i + SHINGLE; j++) {
        h = (h ^ (b[j] & 0xff)) * 0x01000193;
      }
      out.add(h);
    }
    return out;
  }

  static List<String> bandKeys(String text) {
    long[] min = new long[HASHES];
    java.util.Arrays.fill(min, Long.MAX_VALUE);
    for (int s : shingles(text)) {
      long x = s & 0xffffffffL;
      for (int i = 0; i < HASHES; i++) {
        min[i] = Math.min(min[i], (A[i] * x + B[i]) % PRIME);
      }
    }
    List<String> keys = new ArrayList<>();
    for (int band = 0; band < HASHES / ROWS_PER_BAND; band++) {
      StringBuilder k = new StringBuilder().append(band);
      for (int r = 0; r < ROWS_PER_BAND; r++) {
        k.append(':').append(min[band * ROWS_PER_BAND + r]);
      }
      keys.add(k.toString());
    }
    return keys;
  }

  static Double jaccard(String x, String y) {
    Set<Integer> a = shingles(x), b = shingles(y);
    int inter = 0;
    for (int s : a) {
      if (b.contains(s)) {
        inter++;
      }
    }
    return (double) inter / (a.size() + b.size() - inter);
  }
}
