package io.moespark.ops.moe;

import io.moespark.ops.backend.Backend;
import io.moespark.ops.tensor.DType;
import io.moespark.ops.tensor.Tensor;

/**
 * Capacity dropping and the layout transform of one rank's assignments. Kept assignments are laid out
 * destination-major, then by expert, then in assignment order, so each destination receives one
 * contiguous block whose per-expert segments are contiguous too. {@code slot[a]} (I32 on the backend)
 * is the row of assignment a in that layout, -1 when a was dropped; it is also the metadata that
 * restores token order. The host holds only the counts ({@link Backend#planDispatch}'s statistics, one
 * copy per layer): they size the exchange.
 */
public final class DispatchPlan {
  private final Routing routing;
  private final Tensor slot;
  private final Tensor sendToken;
  private final double[] stats;
  private final int[][] sendCounts;
  private final int[] destStart;
  private final long[] keptPerExpert;

  private DispatchPlan(Routing routing, Tensor slot, Tensor sendToken, double[] stats, int[][] sendCounts,
      int[] destStart, long[] keptPerExpert) {
    this.routing = routing;
    this.slot = slot;
    this.sendToken = sendToken;
    this.stats = stats;
    this.sendCounts = sendCounts;
    this.destStart = destStart;
    this.keptPerExpert = keptPerExpert;
  }

  /** A plan in buffers of its own (tests, tools); the MoE layer passes buffers it keeps from step to step. */
  public static DispatchPlan build(Routing r, ShardLayout layout, int capacity, DropPolicy policy) {
    Backend be = r.expert().backend();
    int a = Math.max(1, r.assignments());
    return build(r, layout, capacity, policy, expertOrder(be, layout), be.empty(DType.I32, a),
        be.empty(DType.I32, a), be.empty(DType.F64, 3L * r.experts() + 1));
  }

  /**
   * @param capacity the most assignments each expert keeps from this rank (Integer.MAX_VALUE: dropless)
   * @param policy which assignments win when an expert is over capacity
   * @param expertOrder {@link #expertOrder} of the layout
   * @param slot, sendToken I32 of at least A elements; stats F64 [3E + 1]
   */
  public static DispatchPlan build(Routing r, ShardLayout layout, int capacity, DropPolicy policy, Tensor expertOrder,
      Tensor slot, Tensor sendToken, Tensor stats) {
    Backend be = r.expert().backend();
    int a = r.assignments(), e = r.experts();
    Tensor slotA = slot.rows(0, a), sendA = sendToken.rows(0, a);
    be.planDispatch(r.token().rows(0, a), r.expert().rows(0, a), r.gate().rows(0, a), r.probs(), r.lse(), capacity,
        policy == DropPolicy.GATE, expertOrder, slotA, sendA, stats);
    double[] g = stats.toDoubles();
    long[] kept = new long[e];
    for (int j = 0; j < e; j++) {
      kept[j] = Math.round(g[e + j]);
    }
    int ranks = layout.ranks();
    int[] destStart = new int[ranks + 1];
    int[][] sendCounts = new int[ranks][];
    int row = 0;
    for (int d = 0; d < ranks; d++) {
      destStart[d] = row;
      int[] held = layout.expertsOf(d);
      sendCounts[d] = new int[held.length]; // 0 for an expert whose tokens from this rank go to another holder
      for (int j = 0; j < held.length; j++) {
        if (layout.destination(layout.rank(), held[j]) == d) {
          sendCounts[d][j] = (int) kept[held[j]];
          row += (int) kept[held[j]];
        }
      }
    }
    destStart[ranks] = row;
    return new DispatchPlan(r, slotA, sendA, g, sendCounts, destStart, kept);
  }

  /**
   * Every expert once, grouped by the holder this rank sends its tokens to, holders ascending (I32 [E], the
   * order of the send buffer's segments).
   */
  public static Tensor expertOrder(Backend be, ShardLayout layout) {
    int[] order = new int[layout.experts()];
    int i = 0;
    for (int d = 0; d < layout.ranks(); d++) {
      for (int x : layout.expertsOf(d)) {
        if (layout.destination(layout.rank(), x) == d) {
          order[i++] = x;
        }
      }
    }
    Tensor t = be.empty(DType.I32, order.length);
    be.fromInts(order, t);
    return t;
  }

  public Routing routing() {
    return routing;
  }

  /** This rank's statistics (a copy): assignments per expert | kept per expert | sum of probs | sum of lse^2. */
  public double[] stats() {
    return stats.clone();
  }

  /** Rows of the dispatch buffer (kept assignments). */
  public int kept() {
    return destStart[destStart.length - 1];
  }

  public long[] keptPerExpert() {
    return keptPerExpert.clone();
  }

  /** Row of assignment a in the dispatch buffer, or -1 if it was dropped (a host copy: tests, inspection). */
  public int slot(int a) {
    return (int) slot.toDoubles()[a];
  }

  /** sendCounts[d][j]: rows for the j-th expert (ascending) held by rank d (0 where they go to another holder). */
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
    x.backend().gather(x, sendToken, kept(), buffer);
  }

  /** Gradient of {@link #pack}: dx[token[a]] += dBuffer[slot[a]]. */
  public void packBackward(Tensor dBuffer, Tensor dx) {
    dx.backend().scatterAdd(dBuffer, slot, null, routing.token(), routing.assignments(), dx);
  }

  /** Inverse layout transform with gating: y[token[a]] += gate[a] * out[slot[a]], in assignment order. */
  public void combine(Tensor out, Tensor y) {
    y.backend().scatterAdd(out, slot, routing.gate(), routing.token(), routing.assignments(), y);
  }

  /**
   * Gradient of {@link #combine}: dOut[slot[a]] = gate[a] * dy[token[a]] (every row of dOut is written:
   * slots are one per kept assignment) and dGate[a] (F64) = dy[token[a]] . out[slot[a]] (0 when dropped).
   */
  public void combineBackward(Tensor dy, Tensor out, Tensor dOut, Tensor dGate) {
    int a = routing.assignments();
    dy.backend().scatter(dy, routing.token(), routing.gate(), slot, a, dOut);
    dy.backend().rowDots(dy, routing.token(), out, slot, a, dGate);
  }
}
