package io.moespark.job;

import io.moespark.job.shuffle.PinnedShuffledRDD;
import io.moespark.job.shuffle.ShardPartitioner;
import io.moespark.ops.train.StepProgram;
import io.moespark.ops.train.StepReport;
import io.moespark.ops.train.Trainer;
import java.io.Serializable;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.function.Consumer;
import org.apache.spark.SparkEnv;
import org.apache.spark.TaskContext;
import org.apache.spark.api.java.JavaFutureAction;
import org.apache.spark.api.java.JavaRDD;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.api.java.function.FlatMapFunction;
import org.apache.spark.rdd.RDD;
import scala.Tuple2;

/**
 * The shuffle path: one Spark job per training step (and per validation pass) whose exchanges are
 * shuffles. The job is laid out from the {@link StepProgram}: one stage per exchange round, named after
 * the compute it runs ("L1 experts fwd", ...). In stage k the task of rank r delivers the blocks that
 * round k - 1's shuffle brought to the rank's {@link ShuffleBridge}, lets the rank's step run on to its
 * next exchange, and emits the outgoing blocks, one record per (source, destination): keyed by an
 * expert id of the destination shard for dispatch-direction rounds (partitioned through the driver's
 * {@link ExpertPlacement}), by destination rank otherwise. The dense-gradient all-reduce is a
 * reduce-scatter round and an all-gather round. Every shuffle is pinned to the ranks' executors.
 */
final class ShuffleRunner implements StepRunner {
  private final RankGroup group;
  private final StallBound stall;

  ShuffleRunner(RankGroup group) {
    this.group = group;
    this.stall = new StallBound(group.config().parallel().timeoutS());
  }

  /** How the driver's description of a group of steps begins ("steps 11–20/300"). */
  private static final String GROUP = "^steps? \\d+(–\\d+)?/\\d+";

  @Override
  public List<StepResult> steps(int count, Consumer<StepResult> onStep, String description) {
    StepProgram program = StepProgram.training(group.config(), group.placement().ranks());
    List<StepResult> done = new ArrayList<>();
    for (int i = 0; i < count; i++) {
      int step = group.nextStep();
      // One job per step: its description names the step and the latest loss (the group's text says it first).
      StepResult prev = done.isEmpty() ? null : done.get(done.size() - 1);
      String head = "step " + (step + 1) + "/" + group.config().train().steps();
      String d = prev != null ? head + String.format(java.util.Locale.ROOT, " · loss %.4f · max/mean load %.2f",
          prev.loss(), prev.report().maxOverMeanLoad())
          : description.matches(GROUP + ".*") ? description.replaceFirst(GROUP, head) : head + " · " + description;
      List<Outcome> outcomes = run(program, new RankTasks.Steps(step, 1), d);
      Outcome zero = outcomes.get(0);
      if (zero.diverged() != null) {
        throw zero.diverged();
      }
      long bytes = outcomes.stream().mapToLong(Outcome::bytesSent).sum();
      StepResult s = new StepResult(zero.report(), zero.waitSeconds(), bytes);
      stall.stepTook(zero.report().seconds());
      group.advance(1);
      onStep.accept(s);
      done.add(s);
    }
    return done;
  }

  @Override
  public double evaluate() {
    StepProgram program = StepProgram.evaluation(group.config(), group.placement().ranks(), (int) group.valTokens());
    return run(program, new RankTasks.Evaluate(), "validation after step " + group.nextStep()).get(0).valLoss();
  }

  /** A job of one shuffle round whose blocks are the moved experts' tensors (the experts move as Spark data). */
  @Override
  public RankGroup.MoveCost move(ExpertPlacement next) {
    if (next.hasReplicas()) {
      throw new IllegalStateException("the shuffle path holds each expert once, the placement has replicas: " + next);
    }
    int step = group.nextStep();
    RankTasks.Move move = new RankTasks.Move(group.placement(), next);
    long bytes = 0;
    int tensors = 0;
    double seconds = 0;
    for (Outcome o : run(StepProgram.move(), move, "move experts after step " + step)) {
      bytes += o.moved().bytesSent();
      tensors += o.moved().tensorsSent();
      seconds = Math.max(seconds, o.moved().seconds());
    }
    return group.moved(next, new RankGroup.MoveCost(bytes, tensors, seconds));
  }

  /** What a rank returns from the last stage of a step, a validation pass or a move. */
  record Outcome(int rank, StepReport report, Trainer.DivergenceException diverged, double valLoss,
      RankTasks.Moved moved, double waitSeconds, long bytesSent) implements Serializable {}

  /** One exchange round of the job: the stage that produces it, its partitioner and record keys by destination. */
  private record Round(String stage, ShardPartitioner partitioner, int[] keys) implements Serializable {}

  /**
   * Runs one job of {@code work} on every rank: one step ({@link RankTasks.Steps} of one), a validation pass
   * ({@link RankTasks.Evaluate}) or an expert move ({@link RankTasks.Move}), at the group's next step.
   */
  private List<Outcome> run(StepProgram program, RankTasks.Op work, String description) {
    boolean train = work instanceof RankTasks.Steps;
    int step = group.nextStep();
    JavaSparkContext sc = group.sc();
    String runId = group.runId();
    String[] homes = group.executorArray(), locations = group.locationArray();
    List<Round> rounds = rounds(program, group.placement());
    int last = rounds.size();
    RDD<Integer> ids = RankStages.pinned(sc, locations);
    String name = rounds.get(0).stage();
    sc.setCallSite(name);
    JavaRDD<Tuple2<Integer, byte[]>> cur = JavaRDD.fromRDD(ids, ids.elementClassTag()).mapPartitions(
        stage(runId, homes, 0, rounds.get(0), program, work, step));
    for (int k = 1; k < last; k++) {
      RDD<Tuple2<Integer, byte[]>> shuffled = new PinnedShuffledRDD(cur.rdd(), rounds.get(k - 1).partitioner(),
          locations);
      sc.setCallSite(rounds.get(k).stage());
      cur = JavaRDD.fromRDD(shuffled, shuffled.elementClassTag()).mapPartitions(
          stage(runId, homes, k, rounds.get(k), program, work, step));
    }
    RDD<Tuple2<Integer, byte[]>> shuffled = new PinnedShuffledRDD(cur.rdd(), rounds.get(last - 1).partitioner(),
        locations);
    sc.setCallSite(train ? "optimizer + statistics" : work instanceof RankTasks.Move ? "moved experts"
        : "validation result");
    JavaRDD<Outcome> out = JavaRDD.fromRDD(shuffled, shuffled.elementClassTag()).mapPartitions(finish(runId, homes, last - 1));
    sc.setJobDescription(description);
    JavaFutureAction<List<Outcome>> job = out.collectAsync(); // the result stage is named by the call site too
    // A step job is watched against the stall bound; a validation pass (longer) against parallel.timeout_s.
    double bound = train ? stall.seconds() : group.config().parallel().timeoutS();
    try {
      return RankStages.byRank(job, j -> {
        long start = System.nanoTime();
        while (!j.isDone()) {
          if ((System.nanoTime() - start) / 1e9 > bound) {
            j.cancel(true);
            throw stall.stalled(bound, step, group.runId(), group.executors());
          }
          Thread.sleep(50);
        }
      }, Outcome::rank, description);
    } finally {
      sc.clearCallSite();
      sc.setJobDescription(null);
    }
  }

  /** The program's calls as rounds (an array sum takes two). */
  private static List<Round> rounds(StepProgram program, ExpertPlacement placement) {
    if (placement.hasReplicas()) {
      throw new IllegalStateException("the shuffle path holds each expert once, the placement has replicas: "
          + placement);
    }
    int ranks = placement.ranks();
    int[] byRank = new int[ranks];
    for (int d = 0; d < ranks; d++) {
      byRank[d] = d;
    }
    List<Round> rounds = new ArrayList<>();
    for (StepProgram.Call c : program.calls()) {
      if (c.kind() == StepProgram.Kind.SUM_ARRAY) {
        rounds.add(new Round(c.after() + " (reduce-scatter)", ShardPartitioner.byRank(ranks), byRank));
        rounds.add(new Round(c.after() + " (all-gather)", ShardPartitioner.byRank(ranks), byRank));
      } else if (c.toExperts()) {
        int[] owner = placement.layout(c.layer(), 0).owner();
        int[] keys = new int[ranks];
        java.util.Arrays.fill(keys, -1);
        for (int e = owner.length - 1; e >= 0; e--) {
          keys[owner[e]] = e; // the lowest expert id each shard holds
        }
        rounds.add(new Round(c.after(), ShardPartitioner.byExpert(ranks, owner), keys));
      } else {
        rounds.add(new Round(c.after(), ShardPartitioner.byRank(ranks), byRank));
      }
    }
    return rounds;
  }

  /** Stage k: deliver round k - 1's blocks (none for k = 0, which starts the work), emit round k's. */
  private static <I> FlatMapFunction<Iterator<I>, Tuple2<Integer, byte[]>> stage(String runId, String[] homes,
      int k, Round round, StepProgram program, RankTasks.Op work, int step) {
    boolean train = work instanceof RankTasks.Steps;
    return it -> {
      RankState st = here(runId, homes);
      ShuffleBridge bridge = st.bridge();
      if (k == 0) {
        if (st.trainer.nextStep() != step) {
          throw new IllegalStateException("run " + runId + " rank " + bridge.rank() + " is at step "
              + st.trainer.nextStep() + ", the driver asked for step " + step
              + "; restart the run with --resume from its last checkpoint");
        }
        bridge.start(program, train ? () -> {
          st.progress.stepBegins(step);
          return st.trainer.step(st.collective, st.collective);
        } : work instanceof RankTasks.Move m ? () -> RankTasks.move(st, bridge.rank(), m) : () -> {
          st.progress.doing("validation");
          return st.trainer.evaluate(st.val, st.collective, st.collective);
        });
      } else {
        bridge.deliver(k - 1, blocks(it));
      }
      ShuffleBridge.Outgoing o = bridge.awaitOutgoing(k);
      List<Tuple2<Integer, byte[]>> records = new ArrayList<>();
      for (int d = 0; o != null && d < o.blocks().length; d++) {
        if (o.blocks()[d] != null && round.keys()[d] >= 0) {
          records.add(new Tuple2<>(round.keys()[d], o.blocks()[d]));
        }
      }
      return records.iterator();
    };
  }

  private static FlatMapFunction<Iterator<Tuple2<Integer, byte[]>>, Outcome> finish(String runId, String[] homes,
      int lastRound) {
    return it -> {
      ShuffleBridge bridge = here(runId, homes).bridge();
      bridge.deliver(lastRound, blocks(it));
      Object result = bridge.awaitResult();
      double wait = bridge.waitSeconds();
      long bytes = bridge.bytesSent();
      Outcome o = result instanceof StepReport r ? new Outcome(bridge.rank(), r, null, 0, null, wait, bytes)
          : result instanceof Trainer.DivergenceException e ? new Outcome(bridge.rank(), null, e, 0, null, wait, bytes)
          : result instanceof RankTasks.Moved m ? new Outcome(bridge.rank(), null, null, 0, m, wait, bytes)
          : new Outcome(bridge.rank(), null, null, (Double) result, null, wait, bytes);
      return List.of(o).iterator();
    };
  }

  private static RankState here(String runId, String[] homes) {
    int r = TaskContext.getPartitionId();
    return RankState.get(runId, r, SparkEnv.get().executorId(), homes[r]);
  }

  private static List<byte[]> blocks(Iterator<?> it) {
    List<byte[]> got = new ArrayList<>();
    while (it.hasNext()) {
      @SuppressWarnings("unchecked")
      Tuple2<Integer, byte[]> rec = (Tuple2<Integer, byte[]>) it.next();
      got.add(rec._2());
    }
    return got;
  }
}
