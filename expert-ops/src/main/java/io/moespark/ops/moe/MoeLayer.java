package io.moespark.ops.moe;

import io.moespark.ops.backend.Backend;
import io.moespark.ops.tensor.DType;
import io.moespark.ops.tensor.Param;
import io.moespark.ops.tensor.ParamStore;
import io.moespark.ops.tensor.Tensor;
import java.util.Arrays;
import java.util.List;

/**
 * One MoE layer as seen from one rank: the router and shared experts (replicated, dense) and this
 * rank's shard of the routed experts. The step is a fixed program of phases that a runner cuts at its
 * exchanges:
 *
 * <pre>
 * forward:  route -> dispatch (blocks per destination) | exchange | expertForward (blocks per source)
 *           | exchange | combine
 * backward: combineBackward (blocks per destination) | exchange | expertBackward (blocks per source)
 *           | exchange | dispatchBackward -> routeBackward
 * </pre>
 *
 * {@link #forward} and {@link #backward} run that program over an {@link Exchange}; the single-process
 * trainer uses {@link Exchange#LOCAL}. Global statistics (aux-loss counts) enter through a
 * {@link Reducer}.
 */
public final class MoeLayer {
  private final int layer;
  private final MoeSpec spec;
  private final ShardLayout layout;
  private final Router router;
  private final Param routerWeight;
  private final int[] localExperts;
  private final ExpertBank experts;
  private final ExpertBank[] shared;
  /** The layout's experts destination-major (I32, uploaded once). */
  private final Tensor expertOrder;
  private double capacityFactor;
  /** Aux-free selection bias (F64 [E]) or null. */
  private Tensor selectionBias;

  // The step in flight, in buffers kept from step to step.
  private Tensor x;
  private DispatchPlan plan;
  private Tensor slotBuf;
  private Tensor sendTokenBuf;
  private Tensor statsBuf;
  private Tensor sendBuf;
  private Tensor recvBuf;
  private Tensor recv;
  private Tensor expertOutBuf;
  private Tensor returnedBuf;
  private Tensor dReturnedBuf;
  private Tensor dOutBuf;
  private Tensor dInBuf;
  private Tensor dBlocksBuf;
  private int[][] recvCounts;
  private Tensor returned;
  /** Scratch for one shared expert's output (forward) or input gradient (backward), reused every step. */
  private Tensor sharedScratch;
  private Tensor dGate;
  /** dLoss/dp per expert from the aux loss (F64 [E], top-k only; derived from the global counts). */
  private Tensor auxGradPerProb;
  private boolean auxActive;
  private double zScale;
  private MoeStats stats;

  /** Registers this rank's parameters of layer {@code layer} in {@code params} under DESIGN §3 names. */
  public MoeLayer(int layer, long dModel, MoeSpec spec, ShardLayout layout, ParamStore params) {
    if (layout.experts() != spec.experts()) {
      throw new IllegalArgumentException("layout has " + layout.experts() + " experts, spec " + spec.experts());
    }
    this.layer = layer;
    this.spec = spec;
    this.layout = layout;
    this.router = new Router(spec);
    this.capacityFactor = spec.capacityFactor();
    String prefix = "layers." + layer + ".moe.";
    this.routerWeight = spec.router() == RouterKind.HASH ? null
        : params.add(prefix + "router.weight", -1, spec.experts(), dModel);
    this.localExperts = layout.expertsOf(layout.rank());
    this.experts = bank(params, prefix + "experts.", localExperts, dModel, spec.dExpert(), true);
    this.shared = new ExpertBank[spec.sharedExperts()];
    for (int s = 0; s < shared.length; s++) {
      shared[s] = bank(params, prefix + "shared.", new int[] {s}, dModel, spec.dExpert(), false);
    }
    this.expertOrder = DispatchPlan.expertOrder(params.backend(), layout);
  }

  private ExpertBank bank(ParamStore params, String prefix, int[] ids, long d, long f, boolean routed) {
    Param[] w1 = new Param[ids.length], w3 = new Param[ids.length], w2 = new Param[ids.length];
    for (int j = 0; j < ids.length; j++) {
      int expert = routed ? ids[j] : -1;
      boolean replica = routed && layout.ownerOf(ids[j]) != layout.rank();
      String p = prefix + ids[j] + ".";
      w1[j] = params.add(p + "w1.weight", expert, replica, f, d);
      if (spec.activation().gated()) {
        w3[j] = params.add(p + "w3.weight", expert, replica, f, d);
      }
      w2[j] = params.add(p + "w2.weight", expert, replica, d, f);
    }
    return new ExpertBank(spec.activation(), w1, w3, w2);
  }

  public MoeSpec spec() {
    return spec;
  }

  public ShardLayout layout() {
    return layout;
  }

  /** The parameters of routed expert {@code expert}, which this rank holds, in creation order. */
  public List<Param> expertParams(int expert) {
    int j = Arrays.binarySearch(localExperts, expert);
    if (j < 0) {
      throw new IllegalArgumentException("rank " + layout.rank() + " does not hold expert " + expert);
    }
    return experts.params(j);
  }

  /** Capacity factor for the next steps (training and evaluation may differ); <= 0 is dropless. */
  public void setCapacityFactor(double cf) {
    this.capacityFactor = cf;
  }

  /**
   * Aux-loss-free balancing bias (DeepSeek-V3): shifts top-k selection only, never the gates. The driver
   * updates it from the global loads, so it goes up (E values) each step it is on.
   */
  public void setSelectionBias(double[] bias) {
    if (bias == null) {
      selectionBias = null;
      return;
    }
    Backend be = expertOrder.backend();
    selectionBias = be.ensure(selectionBias, DType.F64, bias.length);
    be.fromDoubles(bias, selectionBias);
  }

  /** Statistics of the last forward (global over ranks). */
  public MoeStats stats() {
    return stats;
  }

  // ---- forward phases ----

  /**
   * Routes the rank's T tokens, applies capacity, reduces the global statistics and returns the plan. The
   * host receives this rank's counts (one copy) and, for top-k, sends the aux-loss coefficients back.
   *
   * @param tokenIds the rows' input token ids (I32 [T]; hash routing reads them)
   * @param globalTokens tokens of the global batch (N of the aux and z losses)
   */
  public DispatchPlan route(Tensor x, Tensor tokenIds, long globalTokens, Reducer reducer) {
    this.x = x;
    Backend be = x.backend();
    int t = (int) x.size(0), e = spec.experts();
    Routing r = router.forward(x, tokenIds, routerWeight == null ? null : routerWeight.value(),
        spec.router() == RouterKind.TOPK ? selectionBias : null);
    int capacity = spec.router() == RouterKind.EXPERT_CHOICE ? Integer.MAX_VALUE
        : spec.withCapacityFactor(capacityFactor).capacity(t);
    int a = Math.max(1, r.assignments());
    slotBuf = be.ensure(slotBuf, DType.I32, a);
    sendTokenBuf = be.ensure(sendTokenBuf, DType.I32, a);
    statsBuf = be.ensure(statsBuf, DType.F64, 3L * e + 1);
    plan = DispatchPlan.build(r, layout, capacity, spec.dropPolicy(), expertOrder, slotBuf, sendTokenBuf, statsBuf);
    // One reduction per layer: [assigned E | kept E | sum p E | z sum].
    double[] g = plan.stats();
    reducer.labelled(layer, false).sum(g);
    long[] gAssigned = new long[e], gKept = new long[e];
    double aux = 0;
    auxActive = spec.router() == RouterKind.TOPK;
    if (auxActive) {
      double[] auxGrad = new double[e];
      for (int j = 0; j < e; j++) {
        double f = g[j] / ((double) spec.topK() * globalTokens);
        aux += e * f * g[2 * e + j] / globalTokens;
        auxGrad[j] = spec.auxLossCoef() * e * f / globalTokens;
      }
      auxGradPerProb = be.ensure(auxGradPerProb, DType.F64, e);
      be.fromDoubles(auxGrad, auxGradPerProb);
    }
    for (int j = 0; j < e; j++) {
      gAssigned[j] = Math.round(g[j]);
      gKept[j] = Math.round(g[e + j]);
    }
    boolean hasRouter = routerWeight != null;
    double z = hasRouter ? g[3 * e] / globalTokens : 0;
    zScale = hasRouter ? spec.zLossCoef() / globalTokens : 0;
    stats = new MoeStats(gAssigned, gKept, aux, z);
    return plan;
  }

  /** Packs the routed token rows into one block per destination rank. */
  public Tensor[] dispatch() {
    sendBuf = x.backend().grow(sendBuf, x.dtype(), plan.kept(), x.size(1));
    Tensor send = sendBuf.rows(0, plan.kept());
    plan.pack(x, send);
    return plan.blocks(send);
  }

  /**
   * Runs this rank's experts on the blocks received from every source rank.
   *
   * @param countsFromSources counts[s][j]: rows from rank s for the j-th local expert
   * @return one output block per source rank, in the order received
   */
  public Tensor[] expertForward(int[][] countsFromSources, Tensor[] received) {
    recvCounts = countsFromSources;
    recvBuf = concatRows(received, recvBuf);
    recv = rowsOf(received, recvBuf);
    int sources = received.length, l = localExperts.length;
    int[] segExpert = new int[sources * l], segStart = new int[sources * l], segLen = new int[sources * l];
    int row = 0;
    for (int s = 0; s < sources; s++) {
      for (int j = 0; j < l; j++) {
        segExpert[s * l + j] = j;
        segStart[s * l + j] = row;
        segLen[s * l + j] = countsFromSources[s][j];
        row += countsFromSources[s][j];
      }
    }
    expertOutBuf = x.backend().grow(expertOutBuf, x.dtype(), recv.size(0), x.size(1));
    Tensor expertOut = expertOutBuf.rows(0, recv.size(0));
    experts.forward(recv, segExpert, segStart, segLen, expertOut);
    return splitBySource(expertOut);
  }

  /** y = sum over kept assignments of gate * expert output, plus every shared expert; writes y. */
  public void combine(Tensor[] returnedBlocks, Tensor y) {
    returnedBuf = concatRows(returnedBlocks, returnedBuf);
    returned = rowsOf(returnedBlocks, returnedBuf);
    y.fill(0);
    plan.combine(returned, y);
    int[] all = {0}, start = {0}, len = {(int) x.size(0)};
    sharedScratch = x.backend().ensure(sharedScratch, x.dtype(), x.shape());
    for (ExpertBank s : shared) {
      s.forward(x, all, start, len, sharedScratch);
      y.addi(sharedScratch);
    }
  }

  // ---- backward phases ----

  /** Shared experts' backward into dx, gate gradients, and the expert-output gradient per destination. */
  public Tensor[] combineBackward(Tensor dy, Tensor dx) {
    for (ExpertBank s : shared) {
      s.backward(dy, sharedScratch);
      dx.addi(sharedScratch);
    }
    dReturnedBuf = x.backend().grow(dReturnedBuf, x.dtype(), returned.size(0), x.size(1));
    Tensor dReturned = dReturnedBuf.rows(0, returned.size(0));
    dGate = x.backend().ensure(dGate, DType.F64, Math.max(1, plan.routing().assignments()));
    plan.combineBackward(dy, returned, dReturned, dGate);
    return plan.blocks(dReturned);
  }

  /** Expert backward on the gradient blocks from every source; returns input-gradient blocks per source. */
  public Tensor[] expertBackward(Tensor[] dOutFromSources) {
    dOutBuf = concatRows(dOutFromSources, dOutBuf);
    Tensor dOut = rowsOf(dOutFromSources, dOutBuf);
    dInBuf = x.backend().grow(dInBuf, x.dtype(), recv.size(0), x.size(1));
    Tensor dIn = dInBuf.rows(0, recv.size(0));
    experts.backward(dOut, dIn);
    return splitBySource(dIn);
  }

  /** dx += gradient through the layout transform, from the blocks returned by each destination. */
  public void dispatchBackward(Tensor[] dBlocks, Tensor dx) {
    dBlocksBuf = concatRows(dBlocks, dBlocksBuf);
    plan.packBackward(rowsOf(dBlocks, dBlocksBuf), dx);
  }

  /** dx += gradient through the router (gates, aux loss, z-loss); router weight gradient. */
  public void routeBackward(Tensor dx) {
    if (routerWeight != null) {
      router.backward(plan.routing(), dGate, auxActive ? auxGradPerProb : null, zScale, x, routerWeight.value(), dx,
          routerWeight.grad());
    }
  }

  // ---- the whole program over an exchange ----

  public void forward(Tensor x, Tensor tokenIds, long globalTokens, Exchange ex, Reducer reducer, Tensor y) {
    DispatchPlan p = route(x, tokenIds, globalTokens, reducer);
    int[][] counts = ex.labelled(layer, true).allToAllCounts(p.sendCounts());
    Tensor[] received = ex.labelled(layer, true).allToAll(dispatch());
    Tensor[] out = expertForward(counts, received);
    combine(ex.labelled(layer, false).allToAll(out), y);
  }

  /** dx += dLoss/dx given dy. */
  public void backward(Tensor dy, Tensor dx, Exchange ex) {
    Tensor[] dOut = ex.labelled(layer, true).allToAll(combineBackward(dy, dx));
    Tensor[] dIn = ex.labelled(layer, false).allToAll(expertBackward(dOut));
    dispatchBackward(dIn, dx);
    routeBackward(dx);
  }

  private Tensor[] splitBySource(Tensor m) {
    Tensor[] b = new Tensor[recvCounts.length];
    int row = 0;
    for (int s = 0; s < b.length; s++) {
      int n = 0;
      for (int c : recvCounts[s]) {
        n += c;
      }
      b[s] = m.rows(row, row + n);
      row += n;
    }
    return b;
  }

  /**
   * The blocks one after the other in {@code buffer} (grown when too small; returned), or the buffer
   * untouched when there is one block (read in place). {@link #rowsOf} gives the rows to read.
   */
  private Tensor concatRows(Tensor[] blocks, Tensor buffer) {
    if (blocks.length == 1) {
      return buffer;
    }
    Tensor out = x.backend().grow(buffer, x.dtype(), totalRows(blocks), x.size(1));
    long row = 0;
    for (Tensor b : blocks) {
      if (b.size(0) > 0) {
        out.rows(row, row + b.size(0)).assign(b);
        row += b.size(0);
      }
    }
    return out;
  }

  private static Tensor rowsOf(Tensor[] blocks, Tensor buffer) {
    return blocks.length == 1 ? blocks[0] : buffer.rows(0, totalRows(blocks));
  }

  private static long totalRows(Tensor[] blocks) {
    long rows = 0;
    for (Tensor b : blocks) {
      rows += b.size(0);
    }
    return rows;
  }
}
