package io.moespark.ops.train;

import io.moespark.ops.config.RunConfig;
import io.moespark.ops.model.TransformerLM;
import java.util.ArrayList;
import java.util.List;

/**
 * The collective calls of one training step, or of one evaluation, in order, built from the model's
 * layer list ({@link TransformerLM#moeLayers}; DESIGN §4: the program is built once; the runners
 * execute it). A runner that cannot call back into
 * a running step, such as the shuffle runner with one Spark stage per exchange, lays out its job from
 * this before the step starts, and checks every call against it as it happens. Each call says what it
 * carries, which compute precedes it (so stages can be named after the step's phases) and, for MoE
 * exchanges, the layer and direction, which the MoE layer labels its calls with
 * ({@link io.moespark.ops.moe.Exchange#labelled}). {@link Trainer}'s actual calls are tested against
 * it, kind, layer and direction.
 */
public record StepProgram(List<Call> calls) implements java.io.Serializable {
  /** What a call carries: per-peer int arrays, per-peer matrices, or a sum of doubles or of an array. */
  public enum Kind { COUNTS, BLOCKS, SUM_VALUES, SUM_ARRAY }

  /**
   * @param after the compute that runs before this call, e.g. "L1 experts fwd"
   * @param layer the model layer of an MoE exchange, -1 for the step's own reductions
   * @param toExperts true when blocks travel from token ranks to the expert shards (dispatch direction)
   */
  public record Call(Kind kind, String after, int layer, boolean toExperts) implements java.io.Serializable {}

  public StepProgram {
    calls = List.copyOf(calls);
  }

  /** One training step of rank r of {@code ranks} ({@link Trainer#step(io.moespark.ops.moe.Exchange,
   * io.moespark.ops.moe.Reducer)}), every expert held once. */
  public static StepProgram training(RunConfig cfg, int ranks) {
    return training(cfg, ranks, false);
  }

  /** The same, with the replicated experts' gradient exchange when {@code replicas} ({@link ReplicaGradients}). */
  public static StepProgram training(RunConfig cfg, int ranks, boolean replicas) {
    List<Call> c = new ArrayList<>();
    forward(cfg, c);
    c.add(new Call(Kind.SUM_VALUES, "lm head + loss", -1, false));
    boolean[] moe = TransformerLM.moeLayers(cfg.model(), cfg.moe());
    for (int i = moe.length - 1; i >= 0; i--) {
      if (moe[i]) {
        c.add(new Call(Kind.BLOCKS, "L" + i + " combine bwd", i, true));
        c.add(new Call(Kind.BLOCKS, "L" + i + " experts bwd", i, false));
      }
    }
    if (replicas) {
      c.add(new Call(Kind.BLOCKS, "replica grads", -1, false));
    }
    if (ranks > 1) {
      c.add(new Call(Kind.SUM_ARRAY, "dense grads", -1, false));
    }
    c.add(new Call(Kind.SUM_VALUES, "grad norm", -1, false));
    return new StepProgram(c);
  }

  /** An expert move ({@link ExpertMove#move}): one all-to-all of the moved tensors. */
  public static StepProgram move() {
    return new StepProgram(List.of(new Call(Kind.BLOCKS, "expert move", -1, false)));
  }

  /** One validation pass over {@code valTokens} tokens ({@link Trainer#evaluate(int[],
   * io.moespark.ops.moe.Exchange, io.moespark.ops.moe.Reducer)}). */
  public static StepProgram evaluation(RunConfig cfg, int ranks, int valTokens) {
    RunConfig.Train t = cfg.train();
    int batches = Trainer.evalBatchSizes(valTokens, cfg.model().seqLen(), t.batchSize(),
        t.evalBatches() * t.batchSize(), ranks).length;
    List<Call> c = new ArrayList<>();
    for (int b = 0; b < batches; b++) {
      forward(cfg, c);
    }
    c.add(new Call(Kind.SUM_VALUES, "validation loss", -1, false));
    return new StepProgram(c);
  }

  private static void forward(RunConfig cfg, List<Call> c) {
    boolean[] moe = TransformerLM.moeLayers(cfg.model(), cfg.moe());
    for (int i = 0; i < moe.length; i++) {
      if (moe[i]) {
        c.add(new Call(Kind.SUM_VALUES, "L" + i + " attention + router", i, false));
        c.add(new Call(Kind.COUNTS, "L" + i + " route", i, true));
        c.add(new Call(Kind.BLOCKS, "L" + i + " dispatch", i, true));
        c.add(new Call(Kind.BLOCKS, "L" + i + " experts fwd", i, false));
      }
    }
  }
}
