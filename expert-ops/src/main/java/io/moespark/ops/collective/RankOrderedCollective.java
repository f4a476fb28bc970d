package io.moespark.ops.collective;

import io.moespark.ops.backend.Backend;
import io.moespark.ops.tensor.Tensor;
import io.moespark.ops.train.StepProgram;

/**
 * The exchange semantics of every host transport, written once: all-to-all of one block per (source,
 * destination), all-to-all of per-expert counts, and sums in rank order, over a {@link BlockTransport}'s
 * rounds. A sum of a few doubles is one round (every rank sends its values to all); a sum of a tensor
 * (the dense gradients) is a reduce-scatter round (rank d sums everyone's chunk d) then an all-gather
 * round of the summed chunks. Every sum adds rank 0's values first, then rank 1's, and so on, so every
 * rank holds the same bits whichever transport carried them: the direct and shuffle paths agree by
 * construction.
 */
public final class RankOrderedCollective implements Collective {
  /** Sees each call before it runs, with the layer and direction its caller labelled it with (-1, false: none). */
  @FunctionalInterface
  public interface CallObserver {
    void call(StepProgram.Kind kind, int layer, boolean toExperts);
  }

  private final BlockTransport transport;
  private final int rank;
  private final int ranks;
  private final boolean routesSelf;
  private final CallObserver observer;
  private long seq;
  private long bytesSent;
  private long busyNanos;
  private int labelLayer = -1;
  private boolean labelToExperts;
  /** This rank's summed chunk of a tensor sum, kept from call to call (the dense gradients' all-reduce). */
  private Tensor reducedBuf;

  public RankOrderedCollective(BlockTransport transport) {
    this(transport, null);
  }

  public RankOrderedCollective(BlockTransport transport, CallObserver observer) {
    this.transport = transport;
    this.rank = transport.rank();
    this.ranks = transport.ranks();
    this.routesSelf = transport.routesSelf();
    this.observer = observer;
  }

  @Override
  public int rank() {
    return rank;
  }

  @Override
  public int ranks() {
    return ranks;
  }

  @Override
  public long bytesSent() {
    return bytesSent;
  }

  @Override
  public double busySeconds() {
    return busyNanos / 1e9;
  }

  @Override
  public String endpoint() {
    return transport.endpoint();
  }

  @Override
  public RankOrderedCollective labelled(int layer, boolean toExperts) {
    labelLayer = layer;
    labelToExperts = toExperts;
    return this;
  }

  @Override
  public Tensor[] allToAll(Tensor[] send) {
    long t0 = begin(StepProgram.Kind.BLOCKS);
    try {
      long s = ++seq;
      // The blocks are staged on this thread: wait for the work that wrote them (a device's stream).
      send[rank].backend().record().synchronize();
      byte[][] out = new byte[ranks][];
      for (int d = 0; d < ranks; d++) {
        if (d != rank || routesSelf) {
          out[d] = Blocks.bytes(Blocks.matrix(s, rank, send[d]));
        }
      }
      byte[][] in = swap(s, out);
      Backend be = send[rank].backend();
      Tensor[] recv = new Tensor[ranks];
      for (int src = 0; src < ranks; src++) {
        if (src == rank && !routesSelf) {
          recv[src] = send[rank];
        } else if (in[src] == null) {
          // A shard without experts in this layer receives no dispatch message on the shuffle path.
          recv[src] = be.empty(send[rank].dtype(), 0, send[rank].size(1));
        } else {
          recv[src] = Blocks.readMatrix(Blocks.open(in[src]), be);
        }
      }
      return recv;
    } finally {
      busyNanos += System.nanoTime() - t0;
    }
  }

  @Override
  public int[][] allToAllCounts(int[][] send) {
    long t0 = begin(StepProgram.Kind.COUNTS);
    try {
      long s = ++seq;
      byte[][] out = new byte[ranks][];
      for (int d = 0; d < ranks; d++) {
        if (d != rank || routesSelf) {
          out[d] = Blocks.bytes(Blocks.ints(s, rank, new int[][] {send[d]}));
        }
      }
      byte[][] in = swap(s, out);
      int[][] recv = new int[ranks][];
      for (int src = 0; src < ranks; src++) {
        recv[src] = src == rank && !routesSelf ? send[rank].clone()
            : in[src] == null ? new int[0] : Blocks.readInts(Blocks.open(in[src]))[0];
      }
      return recv;
    } finally {
      busyNanos += System.nanoTime() - t0;
    }
  }

  @Override
  public void sum(double[] values) {
    long t0 = begin(StepProgram.Kind.SUM_VALUES);
    try {
      long s = ++seq;
      byte[] mine = Blocks.bytes(Blocks.doubles(s, rank, values));
      byte[][] out = new byte[ranks][];
      for (int d = 0; d < ranks; d++) {
        out[d] = d != rank || routesSelf ? mine : null;
      }
      byte[][] in = swap(s, out);
      double[] own = values.clone();
      java.util.Arrays.fill(values, 0);
      for (int src = 0; src < ranks; src++) {
        double[] v = src == rank && !routesSelf ? own : Blocks.readDoubles(Blocks.open(in[src]));
        for (int i = 0; i < v.length; i++) {
          values[i] += v[i];
        }
      }
    } finally {
      busyNanos += System.nanoTime() - t0;
    }
  }

  @Override
  public void sum(Tensor values) {
    long t0 = begin(StepProgram.Kind.SUM_ARRAY);
    try {
      Backend be = values.backend();
      // Reduce-scatter: rank d receives everyone's chunk d and sums it in rank order.
      long s = ++seq;
      byte[][] out = new byte[ranks][];
      for (int d = 0; d < ranks; d++) {
        if (d != rank || routesSelf) {
          out[d] = Blocks.bytes(Blocks.matrix(s, rank, chunk(values, d)));
        }
      }
      byte[][] in = swap(s, out);
      Tensor own = chunk(values, rank);
      reducedBuf = be.ensure(reducedBuf != null && reducedBuf.backend() == be ? reducedBuf : null, values.dtype(),
          own.length());
      Tensor reduced = reducedBuf;
      reduced.assign(received(in, 0, own, be));
      for (int src = 1; src < ranks; src++) {
        reduced.addi(received(in, src, own, be));
      }
      // All-gather of the summed chunks.
      s = ++seq;
      byte[] mine = Blocks.bytes(Blocks.matrix(s, rank, reduced));
      for (int d = 0; d < ranks; d++) {
        out[d] = d != rank || routesSelf ? mine : null;
      }
      in = swap(s, out);
      for (int src = 0; src < ranks; src++) {
        chunk(values, src).assign(src == rank && !routesSelf ? reduced : received(in, src, own, be));
      }
    } finally {
      busyNanos += System.nanoTime() - t0;
    }
  }

  /** Rank {@code src}'s chunk as received (this rank's own, kept, when it does not travel), as a vector. */
  private Tensor received(byte[][] in, int src, Tensor own, Backend be) {
    if (src == rank && !routesSelf) {
      return own;
    }
    Tensor m = Blocks.readMatrix(Blocks.open(in[src]), be);
    return be.view(m, 0, m.length());
  }

  /** Rank {@code part}'s share of a contiguous tensor's values in a reduce-scatter. */
  private Tensor chunk(Tensor values, int part) {
    long n = values.length(), from = part * n / ranks, to = (part + 1) * n / ranks;
    return values.backend().view(values, from, to - from);
  }

  private long begin(StepProgram.Kind kind) {
    int layer = labelLayer;
    boolean toExperts = labelToExperts;
    labelLayer = -1;
    labelToExperts = false;
    if (observer != null) {
      observer.call(kind, layer, toExperts);
    }
    return System.nanoTime();
  }

  private byte[][] swap(long s, byte[][] out) {
    for (int d = 0; d < ranks; d++) {
      if (d != rank && out[d] != null) {
        bytesSent += out[d].length;
      }
    }
    return transport.swap(s, out);
  }

  @Override
  public void close() {
    transport.close();
  }
}
