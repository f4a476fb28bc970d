package io.moespark.ops.moe;

import java.util.concurrent.BrokenBarrierException;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import io.moespark.ops.TestTensors;
import io.moespark.ops.tensor.Tensor;

/**
 * R ranks as threads of one process, exchanging through shared mailboxes: an {@link Exchange} and a
 * {@link Reducer} per rank. Sums run in rank order, so results are deterministic. For tests of the
 * phase API with more than one rank.
 */
public final class InMemoryGroup {
  private final int ranks;
  private final CyclicBarrier barrier;
  private final Object[][] mail;

  public InMemoryGroup(int ranks) {
    this.ranks = ranks;
    this.barrier = new CyclicBarrier(ranks);
    this.mail = new Object[ranks][ranks];
  }

  public Exchange exchange(int rank) {
    return new Exchange() {
      @Override
      public int ranks() {
        return ranks;
      }

      @Override
      public int rank() {
        return rank;
      }

      @Override
      public Tensor[] allToAll(Tensor[] send) {
        Object[] got = swap(rank, send);
        Tensor[] r = new Tensor[ranks];
        for (int s = 0; s < ranks; s++) {
          r[s] = ((Tensor) got[s]);
        }
        return r;
      }

      @Override
      public int[][] allToAllCounts(int[][] send) {
        Object[] got = swap(rank, send);
        int[][] r = new int[ranks][];
        for (int s = 0; s < ranks; s++) {
          r[s] = ((int[]) got[s]).clone();
        }
        return r;
      }
    };
  }

  public Reducer reducer(int rank) {
    return new Reducer() {
      @Override
      public void sum(double[] values) {
        Object[] all = gather(rank, values.clone());
        java.util.Arrays.fill(values, 0);
        for (Object o : all) {
          double[] v = (double[]) o;
          for (int i = 0; i < v.length; i++) {
            values[i] += v[i];
          }
        }
        await();
      }

      @Override
      public void sum(Tensor values) {
        Object[] all = gather(rank, TestTensors.dup(values));
        values.fill(0);
        for (Object o : all) {
          values.addi((Tensor) o);
        }
        await();
      }
    };
  }

  /** send[d] to rank d; returns what each rank sent to this one (copied before anyone writes again). */
  private Object[] swap(int rank, Object[] send) {
    for (int d = 0; d < ranks; d++) {
      mail[rank][d] = send[d] instanceof Tensor a ? TestTensors.dup(a) : send[d];
    }
    await();
    Object[] got = new Object[ranks];
    for (int s = 0; s < ranks; s++) {
      got[s] = mail[s][rank];
    }
    await();
    return got;
  }

  private Object[] gather(int rank, Object mine) {
    Object[] send = new Object[ranks];
    java.util.Arrays.fill(send, mine);
    return swap(rank, send);
  }

  private void await() {
    try {
      barrier.await(60, TimeUnit.SECONDS);
    } catch (InterruptedException | BrokenBarrierException | TimeoutException e) {
      throw new IllegalStateException("rank group broke", e);
    }
  }
}
