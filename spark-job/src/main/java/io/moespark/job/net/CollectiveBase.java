package io.moespark.job.net;

/** What every collective keeps: its place in the run, and the traffic and time counters the driver reports. */
abstract class CollectiveBase implements Collective {
  protected final int rank;
  protected final int ranks;
  protected long bytesSent;
  protected long busyNanos;

  CollectiveBase(int rank, int ranks) {
    this.rank = rank;
    this.ranks = ranks;
  }

  @Override
  public final int ranks() {
    return ranks;
  }

  @Override
  public final int rank() {
    return rank;
  }

  @Override
  public final long bytesSent() {
    return bytesSent;
  }

  @Override
  public final double busySeconds() {
    return busyNanos / 1e9;
  }
}
