package io.moespark.ops.collective;

/**
 * The one primitive a transport provides to {@link RankOrderedCollective}: a round in which every rank
 * sends one message to each rank and receives one from each. Messages are {@link Blocks} messages (their
 * header carries the round's sequence number and the source rank). Implementations: the direct path's
 * authenticated sockets, the shuffle path's bridge to Spark stages, and an in-memory group for tests.
 */
public interface BlockTransport extends AutoCloseable {
  int rank();

  int ranks();

  /**
   * Round {@code seq}: {@code out[d]} goes to rank d; returns the message each rank s sent to this one at
   * index s (null where s sent nothing). {@code out[rank()]} is null unless {@link #routesSelf()}: the
   * collective keeps its own block without a copy.
   */
  byte[][] swap(long seq, byte[][] out);

  /** True when this rank's message to itself must travel through the transport (the shuffle path's does). */
  boolean routesSelf();

  /** Where peers reach this rank (host:port), or a description where there is no port. */
  String endpoint();

  @Override
  void close();
}
