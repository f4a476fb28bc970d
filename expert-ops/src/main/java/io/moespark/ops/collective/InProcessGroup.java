package io.moespark.ops.collective;

import io.moespark.ops.moe.Exchange;
import io.moespark.ops.moe.Reducer;
import java.util.concurrent.BrokenBarrierException;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * R ranks as threads of one process: each rank's {@link Exchange} and {@link Reducer} is the project's
 * {@link RankOrderedCollective} over an in-memory {@link BlockTransport} (shared mailboxes), so the
 * semantics are those of the Spark paths. For the tests of the phase API with more than one rank, and
 * the GPU check's ranks sharing one GPU.
 */
public final class InProcessGroup {
  private final int ranks;
  private final CyclicBarrier barrier;
  private final byte[][][] mail;
  private final RankOrderedCollective[] collectives;

  public InProcessGroup(int ranks) {
    this.ranks = ranks;
    this.barrier = new CyclicBarrier(ranks);
    this.mail = new byte[ranks][ranks][];
    this.collectives = new RankOrderedCollective[ranks];
    for (int r = 0; r < ranks; r++) {
      collectives[r] = new RankOrderedCollective(new Mailbox(r));
    }
  }

  public Exchange exchange(int rank) {
    return collectives[rank];
  }

  public Reducer reducer(int rank) {
    return collectives[rank];
  }

  private final class Mailbox implements BlockTransport {
    private final int rank;

    Mailbox(int rank) {
      this.rank = rank;
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
    public byte[][] swap(long seq, byte[][] out) {
      System.arraycopy(out, 0, mail[rank], 0, ranks);
      await();
      byte[][] got = new byte[ranks][];
      for (int s = 0; s < ranks; s++) {
        got[s] = mail[s][rank];
      }
      await();
      return got;
    }

    @Override
    public boolean routesSelf() {
      return false;
    }

    @Override
    public String endpoint() {
      return "memory rank " + rank;
    }

    @Override
    public void close() {}
  }

  private void await() {
    try {
      barrier.await(60, TimeUnit.SECONDS);
    } catch (InterruptedException | BrokenBarrierException | TimeoutException e) {
      throw new IllegalStateException("the in-process group of " + ranks + " ranks: waited up to 60 s for every "
          + "rank to reach the exchange, " + barrier.getNumberWaiting() + " had: " + e, e);
    }
  }
}
