package io.moespark.prep.stage;

import static org.apache.spark.sql.functions.col;

import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import org.apache.spark.api.java.JavaRDD;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.broadcast.Broadcast;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.apache.spark.util.LongAccumulator;

/**
 * Tokenize and pack: documents are hash-partitioned into {@code shards} partitions and ordered by hash
 * within each (so the output depends only on the documents), encoded (each ending with its end-of-text
 * token), concatenated, and cut into rows of seq_len + 1 tokens; a partition's last partial row is dropped
 * and counted.
 */
public final class Pack {
  public static final StructType SCHEMA = new StructType()
      .add("tokens", DataTypes.createArrayType(DataTypes.IntegerType, false), false);
  /** Documents handed to the encoder at once (the library encodes a batch on its own threads). */
  private static final int BATCH = 256;

  private Pack() {}

  /** Counters of one split's packing. */
  public record Counters(LongAccumulator tokens, LongAccumulator dropped) implements java.io.Serializable {}

  public static Dataset<Row> pack(SparkSession spark, Dataset<Row> docs, Encoders.Encoder encoder, int seqLen,
      int shards, Counters counters) {
    Broadcast<Encoders.Encoder> enc = JavaSparkContext.fromSparkContext(spark.sparkContext()).broadcast(encoder);
    int width = seqLen + 1;
    JavaRDD<Row> rows = docs.select(col("hash"), col("text")).repartition(shards, col("hash"))
        .sortWithinPartitions("hash").javaRDD().mapPartitions((Iterator<Row> it) -> {
          List<Row> out = new ArrayList<>();
          int[] buf = new int[width];
          int fill = 0;
          long total = 0;
          try (Encoders.Session session = enc.value().open()) {
            List<String> batch = new ArrayList<>(BATCH);
            while (it.hasNext() || !batch.isEmpty()) {
              if (it.hasNext() && batch.size() < BATCH) {
                batch.add(it.next().getString(1));
                continue;
              }
              for (int[] ids : session.encode(batch.toArray(String[]::new))) {
                total += ids.length;
                for (int id : ids) {
                  buf[fill++] = id;
                  if (fill == width) {
                    Integer[] row = new Integer[width];
                    for (int i = 0; i < width; i++) {
                      row[i] = buf[i];
                    }
                    out.add(RowFactory.create((Object) row));
                    fill = 0;
                  }
                }
              }
              batch.clear();
            }
          }
          counters.tokens().add(total);
          counters.dropped().add(fill);
          return out.iterator();
        });
    return spark.createDataFrame(rows, SCHEMA);
  }
}
