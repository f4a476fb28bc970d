package io.moespark.ops.moe;

import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * The all-to-all between ranks that the MoE layer is cut at. One contiguous block per (source,
 * destination), never one record per token. {@link #LOCAL} is the one-rank exchange of the
 * single-process trainer; the Spark job supplies network implementations.
 */
public interface Exchange {
  int ranks();

  int rank();

  /** send[d] goes to rank d; returns the block from each rank s at index s. */
  INDArray[] allToAll(INDArray[] send);

  /** The same for small integer metadata (per-expert counts). */
  int[][] allToAllCounts(int[][] send);

  Exchange LOCAL = new Exchange() {
    @Override
    public int ranks() {
      return 1;
    }

    @Override
    public int rank() {
      return 0;
    }

    @Override
    public INDArray[] allToAll(INDArray[] send) {
      return send.clone();
    }

    @Override
    public int[][] allToAllCounts(int[][] send) {
      return send.clone();
    }
  };
}
