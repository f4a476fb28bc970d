package io.moespark.ops.collective;

import io.moespark.ops.moe.Exchange;
import io.moespark.ops.moe.Reducer;

/**
 * One rank's end of the exchanges between the ranks of a run: the MoE layer's all-to-all and the
 * sums, with the traffic and time counters the driver reports. {@link RankOrderedCollective} implements
 * it over any {@link BlockTransport} (sockets, the shuffle path, memory); the cuda profile's
 * {@code NcclCollective} over NCCL.
 */
public interface Collective extends Exchange, Reducer, AutoCloseable {
  /** Bytes this rank has sent to its peers since it started. */
  long bytesSent();

  /** Seconds this rank has spent inside collective calls (sending, and waiting for its peers). */
  double busySeconds();

  /** Where peers reach this rank (host:port), or a description where there is no port. */
  String endpoint();

  @Override
  Collective labelled(int layer, boolean toExperts);

  @Override
  void close();
}
