package io.moespark.prep.stage;

import static org.apache.spark.sql.functions.col;

import io.moespark.prep.bpe.BpeTokenizer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.api.java.JavaRDD;
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
 * within each (so the output depends only on the documents), encoded, each followed by the
 * end-of-document token, concatenated, and cut into rows of seq_len + 1 tokens; a partition's last
 * partial row is dropped and counted.
 */
public final class Pack {
  public static final StructType SCHEMA = new StructType()
      .add("tokens", DataTypes.createArrayType(DataTypes.IntegerType, false), false);

  private Pack() {}

  /** Counters of one split's packing. */
  public record Counters(LongAccumulator tokens, LongAccumulator dropped) implements java.io.Serializable {}

  public static Dataset<Row> pack(SparkSession spark, Dataset<Row> docs, BpeTokenizer tokenizer, int seqLen,
      int shards, Counters counters) {
    Broadcast<BpeTokenizer> tok = JavaSparkContext.fromSparkContext(spark.sparkContext()).broadcast(tokenizer);
    int width = seqLen + 1;
    JavaRDD<Row> rows = docs.select(col("hash"), col("text")).repartition(shards, col("hash"))
        .sortWithinPartitions("hash").javaRDD().mapPartitions((Iterator<Row> it) -> {
          BpeTokenizer t = tok.value();
          List<Row> out = new ArrayList<>();
          int[] buf = new int[width];
          int fill = 0;
          long total = 0;
          while (it.hasNext()) {
            int[] ids = t.encode(it.next().getString(1));
            int[] withEod = Arrays.copyOf(ids, ids.length + 1);
            withEod[ids.length] = BpeTokenizer.EOD_ID;
            total += withEod.length;
            for (int id : withEod) {
              buf[fill++] = id;
              if (fill == width) {
                out.add(RowFactory.create((Object) Arrays.stream(buf).boxed().toArray(Integer[]::new)));
                fill = 0;
              }
            }
          }
          counters.tokens().add(total);
          counters.dropped().add(fill);
          return out.iterator();
        });
    return spark.createDataFrame(rows, SCHEMA);
  }
}
