package io.moespark.ops.train;

import io.moespark.ops.config.RunConfig;
import io.moespark.ops.io.Checkpoint;
import io.moespark.ops.model.LossTerms;
import io.moespark.ops.model.TransformerLM;
import io.moespark.ops.moe.Exchange;
import io.moespark.ops.moe.MoeLayer;
import io.moespark.ops.moe.MoeStats;
import io.moespark.ops.moe.Reducer;
import io.moespark.ops.moe.ShardLayout;
import io.moespark.ops.optim.AdamW;
import io.moespark.ops.optim.GradClip;
import io.moespark.ops.optim.LrSchedule;
import io.moespark.ops.backend.Backend;
import io.moespark.ops.tensor.DType;
import io.moespark.ops.tensor.Param;
import io.moespark.ops.tensor.Tensor;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.function.IntFunction;

/**
 * One rank's trainer: its model replica and expert shard, optimizer state, and the step. A step takes the
 * rank's slice of the global batch, runs forward and backward (the MoE exchanges over an
 * {@link Exchange}), sums replicated experts' gradients among their holders, all-reduces the dense gradients
 * (one flat block, no copies), clips by the global norm, applies
 * AdamW and updates the aux-free biases from global loads (statistics through a {@link Reducer}). The
 * single-process reference trainer ({@link #singleProcess}) is rank 0 of 1 over {@link Exchange#LOCAL}
 * and {@link Reducer#LOCAL}; the Spark runners run the same class on every rank.
 */
public final class Trainer {
  private final RunConfig cfg;
  private final int rank;
  private final int ranks;
  private final TransformerLM model;
  private final AdamW optimizer;
  private final LrSchedule schedule;
  private final Batches batches;
  private final int[] trainTokens;
  private final double[][] selectionBias;
  /** Null when every expert has one holder. */
  private final ReplicaGradients replicaGradients;
  private int step;

  /** The single-process reference trainer: every expert on one rank. */
  public static Trainer singleProcess(RunConfig cfg, int[] trainTokens, Backend backend, DType type) {
    return new Trainer(cfg, trainTokens, backend, type, 0, 1, l -> ShardLayout.single(cfg.moe().experts()));
  }

  /** Rank {@code rank} of {@code ranks}, holding the experts that {@code layouts} gives it in each layer. */
  public Trainer(RunConfig cfg, int[] trainTokens, Backend backend, DType type, int rank, int ranks,
      IntFunction<ShardLayout> layouts) {
    this.cfg = cfg;
    this.rank = rank;
    this.ranks = ranks;
    this.model = new TransformerLM(cfg.model(), cfg.moe(), layouts, backend, type);
    model.init(cfg.train().seed());
    RunConfig.Train t = cfg.train();
    this.optimizer = new AdamW(model.params(), t.beta1(), t.beta2(), t.adamEps(), t.weightDecay());
    this.schedule = new LrSchedule(t.lr(), t.warmupSteps(), t.steps(), t.minLrRatio());
    this.batches = new Batches(trainTokens, cfg.model().seqLen(), t.batchSize(), t.seed());
    this.trainTokens = trainTokens;
    this.selectionBias = new double[model.moeLayers().size()][cfg.moe().experts()];
    this.replicaGradients = ReplicaGradients.of(model);
  }

  public TransformerLM model() {
    return model;
  }

  public RunConfig config() {
    return cfg;
  }

  /** The next step to run (0-based). */
  public int nextStep() {
    return step;
  }

  /** Runs one optimizer step of the single-process trainer. */
  public StepReport step() {
    return step(Exchange.LOCAL, Reducer.LOCAL);
  }

  /** Runs this rank's part of one optimizer step on the global batch of the current step. */
  public StepReport step(Exchange ex, Reducer reducer) {
    long start = System.nanoTime();
    List<MoeLayer> moe = model.moeLayers();
    for (int i = 0; i < moe.size(); i++) {
      moe.get(i).setSelectionBias(cfg.moe().biasUpdateRate() > 0 ? selectionBias[i] : null);
    }
    model.setCapacityFactor(cfg.moe().capacityFactor());
    int global = cfg.train().batchSize();
    Batches.Slice b = batches.slice(step, rank, ranks);
    model.params().zeroGrads();
    LossTerms loss = model.forward(b.inputs(), b.targets(), b.sequences(), global, ex, reducer);
    if (!loss.isFinite()) {
      throw new DivergenceException(step, loss);
    }
    model.backward(ex);
    if (replicaGradients != null) {
      replicaGradients.sum(ex, model.params().backend(), model.params().type());
    }
    if (ranks > 1) {
      reducer.sum(model.params().grads(Param.Kind.DENSE));
    }
    double norm = GradClip.clip(model.params(), cfg.train().gradClip(), reducer);
    double lr = schedule.at(step);
    optimizer.update(lr);
    List<MoeStats> stats = new ArrayList<>();
    for (MoeLayer m : moe) {
      stats.add(m.stats());
    }
    updateBiases(stats);
    StepReport r = new StepReport(step, loss, lr, norm, (System.nanoTime() - start) / 1e9,
        (long) global * cfg.model().seqLen(), stats);
    step++;
    return r;
  }

  /** Aux-loss-free balancing: b_e += rate * sign(mean load - load_e) from the global loads. */
  private void updateBiases(List<MoeStats> stats) {
    double rate = cfg.moe().biasUpdateRate();
    if (rate <= 0) {
      return;
    }
    for (int i = 0; i < stats.size(); i++) {
      long[] load = stats.get(i).assignedPerExpert();
      double mean = (double) stats.get(i).assigned() / load.length;
      for (int e = 0; e < load.length; e++) {
        selectionBias[i][e] += rate * Math.signum(mean - load[e]);
      }
    }
  }

  /** Mean next-token CE over {@code tokens} predicted positions. */
  public record Evaluation(double loss, long tokens) {}

  /**
   * Mean next-token CE of a model holding every expert over the consecutive windows of a token stream
   * (at most maxWindows), dropless unless a capacity factor is given.
   */
  public static Evaluation evaluate(TransformerLM model, int[] tokens, int batch, int maxWindows,
      double capacityFactor) {
    return evaluate(model, tokens, batch, maxWindows, capacityFactor, 0, 1, Exchange.LOCAL, Reducer.LOCAL);
  }

  /**
   * Rank {@code rank}'s part of a distributed evaluation: every batch of windows is split over the
   * ranks as a training batch is, and the CE sums are added over ranks. The windows are a function of
   * the data only, so the result does not depend on R.
   */
  static Evaluation evaluate(TransformerLM model, int[] tokens, int batch, int maxWindows, double capacityFactor,
      int rank, int ranks, Exchange ex, Reducer reducer) {
    int seq = model.config().seqLen();
    int[] starts = Batches.evalStarts(tokens.length, seq);
    int[] sizes = evalBatchSizes(tokens.length, seq, batch, maxWindows, ranks);
    model.setCapacityFactor(capacityFactor);
    for (MoeLayer m : model.moeLayers()) {
      m.setSelectionBias(null);
    }
    double[] sum = {0};
    int first = 0;
    for (int size : sizes) {
      int from = first + (int) ((long) rank * size / ranks), to = first + (int) ((long) (rank + 1) * size / ranks);
      Batches.Slice s = Batches.windows(tokens, starts, from, to, seq);
      sum[0] += model.evalLossSum(s.inputs(), s.targets(), s.sequences(), ex, reducer);
      first += size;
    }
    reducer.sum(sum);
    long count = (long) first * seq;
    return new Evaluation(sum[0] / count, count);
  }

  /**
   * The windows of each evaluation batch: batches of {@code batch} of the first min(windows, maxWindows)
   * windows of T + 1; a last partial batch counts when every rank gets a window of it (always, for one
   * rank).
   */
  static int[] evalBatchSizes(int tokens, int seq, int batch, int maxWindows, int ranks) {
    int n = Math.min(Batches.evalStarts(tokens, seq).length, maxWindows);
    int b = Math.min(batch, n);
    if (b < ranks) {
      throw new IllegalArgumentException("evaluation data has " + tokens + " tokens: " + n + " windows of "
          + (seq + 1) + ", fewer than one per rank (" + ranks + ")");
    }
    int[] sizes = new int[n / b + (n % b >= ranks ? 1 : 0)];
    for (int i = 0; i < sizes.length; i++) {
      sizes[i] = Math.min(b, n - i * b);
    }
    return sizes;
  }

  /** Validation loss with the run's eval settings, over this rank's exchange (all ranks call it together). */
  public double evaluate(int[] valTokens, Exchange ex, Reducer reducer) {
    RunConfig.Train t = cfg.train();
    double loss = evaluate(model, valTokens, t.batchSize(), t.evalBatches() * t.batchSize(),
        cfg.moe().evalCapacityFactor(), rank, ranks, ex, reducer).loss();
    model.setCapacityFactor(cfg.moe().capacityFactor());
    return loss;
  }

  /** Validation loss of the single-process trainer. */
  public double evaluate(int[] valTokens) {
    return evaluate(valTokens, Exchange.LOCAL, Reducer.LOCAL);
  }

  /**
   * A trainer of the same run and rank holding the experts {@code layouts} gives it, freshly initialised:
   * {@link ExpertMove} fills it with {@link #restore}.
   */
  Trainer relaid(IntFunction<ShardLayout> layouts) {
    return new Trainer(cfg, trainTokens, model.params().backend(), model.params().type(), rank, ranks, layouts);
  }

  /** Every tensor this rank holds: all its parameters (dense ones and replicas too) and their moments. */
  Map<String, Tensor> allTensors() {
    return Checkpoint.tensors(model, optimizer, p -> true);
  }

  /** This rank's checkpoint shard: see {@link Checkpoint#shardTensors}. */
  public Map<String, Tensor> checkpointTensors() {
    return Checkpoint.shardTensors(model, optimizer, rank);
  }

  public Checkpoint.State checkpointState() {
    double[][] bias = new double[selectionBias.length][];
    for (int i = 0; i < bias.length; i++) {
      bias[i] = selectionBias[i].clone();
    }
    return new Checkpoint.State(step, optimizer.step(), bias);
  }

  /** Restores a checkpoint (tensors: the union of the shards this rank needs); the next step is the one after it. */
  public void restore(Map<String, Tensor> tensors, Checkpoint.State s, String source) {
    if (s.selectionBias().length != selectionBias.length) {
      throw new IllegalArgumentException(source + ": checkpoint has " + s.selectionBias().length
          + " MoE layers of selection bias, the config " + selectionBias.length);
    }
    Checkpoint.restore(tensors, model, optimizer, s.optimizerStep(), source);
    for (int i = 0; i < selectionBias.length; i++) {
      selectionBias[i] = s.selectionBias()[i].clone();
    }
    step = s.step();
  }

  /** A step whose loss is NaN or infinite: training stops with this message. */
  public static final class DivergenceException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public DivergenceException(int step, LossTerms loss) {
      super("training diverged at step " + step + ": loss " + loss.total() + " (ce " + loss.ce() + ", aux "
          + loss.aux() + ", z " + loss.z() + "); lower train.lr or raise train.warmup_steps");
    }
  }
}
