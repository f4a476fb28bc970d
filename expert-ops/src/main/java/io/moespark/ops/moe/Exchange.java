package io.moespark.ops.moe;

import io.moespark.ops.tensor.Tensor;

/**
 * The all-to-all between ranks that the MoE layer is cut at. One contiguous block per (source,
 * destination), never one record per token. Blocks are the project's tensors, so a device backend
 * can hand device buffers to a device transport (NCCL) and a host transport copies them through the host. {@link #LOCAL} is the one-rank exchange of the
 * single-process trainer; the Spark job supplies network implementations.
 */
public interface Exchange {
  int ranks();

  int rank();

  /** send[d] goes to rank d; returns the block from each rank s at index s. */
  Tensor[] allToAll(Tensor[] send);

  /** The same for small integer metadata (per-expert counts). */
  int[][] allToAllCounts(int[][] send);

  /**
   * This exchange for the next call, which belongs to MoE layer {@code layer}, in the dispatch direction
   * (token ranks to expert shards) when {@code toExperts}. A runner that lays a step out in advance (the
   * shuffle path) checks each call against its plan; others ignore the label.
   */
  default Exchange labelled(int layer, boolean toExperts) {
    return this;
  }

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
    public Tensor[] allToAll(Tensor[] send) {
      return send.clone();
    }

    @Override
    public int[][] allToAllCounts(int[][] send) {
      return send.clone();
    }
  };
}
