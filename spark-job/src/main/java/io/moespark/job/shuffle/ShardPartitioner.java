package io.moespark.job.shuffle;

import org.apache.spark.Partitioner;

/**
 * Partitions of the shuffle path are ranks (partition r = rank r = expert shard r). Dispatch records
 * are keyed by expert id and go to the shard that holds the expert ({@link #byExpert}, from the driver's
 * placement of that layer); combine and reduction records are keyed by rank ({@link #byRank}).
 */
public final class ShardPartitioner extends Partitioner {
  private static final long serialVersionUID = 1L;
  private final int ranks;
  private final int[] owner; // expert -> rank; null when keys are ranks

  private ShardPartitioner(int ranks, int[] owner) {
    this.ranks = ranks;
    this.owner = owner;
  }

  public static ShardPartitioner byExpert(int ranks, int[] owner) {
    return new ShardPartitioner(ranks, owner.clone());
  }

  public static ShardPartitioner byRank(int ranks) {
    return new ShardPartitioner(ranks, null);
  }

  @Override
  public int numPartitions() {
    return ranks;
  }

  @Override
  public int getPartition(Object key) {
    int k = (Integer) key;
    return owner == null ? k : owner[k];
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof ShardPartitioner p && p.ranks == ranks && java.util.Arrays.equals(p.owner, owner);
  }

  @Override
  public int hashCode() {
    return 31 * ranks + java.util.Arrays.hashCode(owner);
  }
}
