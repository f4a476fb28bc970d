package io.moespark.ops.moe;

import io.moespark.ops.tensor.Tensor;

/**
 * Capacity dropping and the layout transform of one rank's assignments. Kept assignments are laid out
 * destination-major, then by expert, then in assignment order, so each destination receives one
 * contiguous block whose per-expert segments are contiguous too. {@code slot[a]} is the row of
 * assignment a in that layout, -1 when a was dropped; it is also the metadata that restores token order.
 */
public final class DispatchPlan {
  private final Routing routing;
  private final int[] slot;
  private final int[] sendToken;
  private final int[][] sendCounts;
  private final int[] destStart;
  private final long[] keptPerExpert;

  private DispatchPlan(Routing routing, int[] slot, int[] sendToken, int[][] sendCounts, int[] destStart,
      long[] keptPerExpert) {
    this.routing = routing;
    this.slot = slot;
    this.sendToken = sendToken;
    this.sendCounts = sendCounts;
    this.destStart = destStart;
    this.keptPerExpert = keptPerExpert;
  }

  /**
   * @param capacity the most assignments each expert keeps from this rank (Integer.MAX_VALUE: dropless)
   * @param policy which assignments win when an expert is over capacity
   */
  public static DispatchPlan build(Routing r, ShardLayout layout, int capacity, DropPolicy policy) {
    int a = r.assignments(), e = r.experts();
    int[] expert = r.expert();
    int[] priority = policy == DropPolicy.GATE ? IndexSort.descending(r.gate(), a) : null;
    long[] kept = new long[e];
    boolean[] keep = new boolean[a];
    for (int i = 0; i < a; i++) {
      int as = priority == null ? i : priority[i];
      if (kept[expert[as]] < capacity) {
        keep[as] = true;
        kept[expert[as]]++;
      }
    }
    int ranks = layout.ranks();
    int[] cursor = new int[e];
    int[] destStart = new int[ranks + 1];
    int[][] sendCounts = new int[ranks][];
    int row = 0;
    for (int d = 0; d < ranks; d++) {
      destStart[d] = row;
      int[] local = layout.expertsOf(d);
      sendCounts[d] = new int[local.length];
      for (int j = 0; j < local.length; j++) {
        cursor[local[j]] = row;
        sendCounts[d][j] = (int) kept[local[j]];
        row += (int) kept[local[j]];
      }
    }
    destStart[ranks] = row;
    int[] slot = new int[a], sendToken = new int[row];
    for (int i = 0; i < a; i++) {
      if (keep[i]) {
        slot[i] = cursor[expert[i]]++;
        sendToken[slot[i]] = r.token()[i];
      } else {
        slot[i] = -1;
      }
    }
    return new DispatchPlan(r, slot, sendToken, sendCounts, destStart, kept);
  }

  public Routing routing() {
    return routing;
  }

  /** Rows of the dispatch buffer (kept assignments). */
  public int kept() {
    return sendToken.length;
  }

  public long[] keptPerExpert() {
    return keptPerExpert.clone();
  }

  /** Row of assignment a in the dispatch buffer, or -1 if it was dropped. */
  public int slot(int a) {
    return slot[a];
  }

  /** sendCounts[d][j]: rows for the j-th expert (ascending) held by rank d. */
  public int[][] sendCounts() {
    int[][] c = new int[sendCounts.length][];
    for (int d = 0; d < c.length; d++) {
      c[d] = sendCounts[d].clone();
    }
    return c;
  }

  /** The dispatch buffer cut into one block per destination rank (views, empty where nothing goes). */
  public Tensor[] blocks(Tensor buffer) {
    Tensor[] b = new Tensor[destStart.length - 1];
    for (int d = 0; d < b.length; d++) {
      b[d] = buffer.rows(destStart[d], destStart[d + 1]);
    }
    return b;
  }

  /** Layout transform: buffer[slot[a]] = x[token[a]] for every kept assignment. */
  public void pack(Tensor x, Tensor buffer) {
    x.backend().gather(x, sendToken, sendToken.length, buffer);
  }

  /** Gradient of {@link #pack}: dx[token[a]] += dBuffer[slot[a]]. */
  public void packBackward(Tensor dBuffer, Tensor dx) {
    dx.backend().scatterAdd(dBuffer, slot, null, routing.token(), slot.length, dx);
  }

  /** Inverse layout transform with gating: y[token[a]] += gate[a] * out[slot[a]], in assignment order. */
  public void combine(Tensor out, Tensor y) {
    y.backend().scatterAdd(out, slot, routing.gate(), routing.token(), slot.length, y);
  }

  /**
   * Gradient of {@link #combine}: dOut[slot[a]] = gate[a] * dy[token[a]] (every row of dOut is written:
   * slots are one per kept assignment) and dGate[a] = dy[token[a]] . out[slot[a]] (0 when dropped).
   */
  public void combineBackward(Tensor dy, Tensor out, Tensor dOut, double[] dGate) {
    dy.backend().scatter(dy, routing.token(), routing.gate(), slot, slot.length, dOut);
    dy.backend().rowDots(dy, routing.token(), out, slot, slot.length, dGate);
  }
}
