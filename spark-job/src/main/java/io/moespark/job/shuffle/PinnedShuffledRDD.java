package io.moespark.job.shuffle;

import org.apache.spark.Partition;
import org.apache.spark.Partitioner;
import org.apache.spark.rdd.RDD;
import org.apache.spark.rdd.ShuffledRDD;
import scala.Tuple2;
import scala.collection.immutable.Seq;
import scala.jdk.javaapi.CollectionConverters;
import scala.reflect.ClassTag;
import scala.reflect.ClassTag$;

/**
 * A shuffle of (key, block) records whose partition r prefers rank r's executor, so the stage that reads
 * it runs where the rank's state lives (a plain ShuffledRDD prefers wherever most map output is).
 * Records travel with {@link BlockSerializer}.
 */
public final class PinnedShuffledRDD extends ShuffledRDD<Integer, byte[], byte[]> {
  private static final long serialVersionUID = 1L;
  private static final ClassTag<Integer> INT = ClassTag$.MODULE$.apply(Integer.class);
  private static final ClassTag<byte[]> BYTES = ClassTag$.MODULE$.apply(byte[].class);
  private final String[] locations;

  public PinnedShuffledRDD(RDD<Tuple2<Integer, byte[]>> prev, Partitioner partitioner, String[] locations) {
    super(prev, partitioner, INT, BYTES, BYTES);
    this.locations = locations.clone();
    setSerializer(new BlockSerializer());
  }

  @Override
  public Seq<String> getPreferredLocations(Partition split) {
    return preference(locations[split.index()]);
  }

  /** Spark's preferred locations for one executor location (null: none). */
  public static Seq<String> preference(String location) {
    return CollectionConverters.asScala(location == null ? java.util.List.<String>of() : java.util.List.of(location))
        .toList();
  }
}
