package io.moespark.job;

import io.moespark.job.RankTasks.Close;
import io.moespark.job.RankTasks.Gather;
import io.moespark.job.RankTasks.Op;
import io.moespark.job.RankTasks.Open;
import io.moespark.job.RankTasks.RankReply;
import io.moespark.job.RankTasks.Save;
import io.moespark.job.data.RunData;
import io.moespark.job.io.CheckpointStore;
import io.moespark.job.io.HfInit;
import io.moespark.ops.config.ConfigLoader;
import io.moespark.ops.config.RunConfig;
import java.io.Serializable;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import org.apache.spark.api.java.JavaFutureAction;
import org.apache.spark.api.java.JavaRDD;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.rdd.RDD;
import scala.Function1;
import scala.jdk.javaapi.CollectionConverters;
import scala.reflect.ClassTag;
import scala.reflect.ClassTag$;

/**
 * The driver's handle on the R ranks of a run, resident on executors ({@link RankState}). {@link #open}
 * creates the ranks (fresh, or from a checkpoint written with any R) in one barrier stage; every later
 * stage is pinned to the executors that hold the ranks (preferred locations). Steps and validation run
 * through a {@link StepRunner} of the run's {@code parallel.dispatch}; checkpoints, the parameter gather
 * and closing are plain pinned barrier stages. What each rank does in a stage is {@link RankTasks}'.
 */
public final class RankGroup implements AutoCloseable {
  private static final ClassTag<RankReply> REPLY = ClassTag$.MODULE$.apply(RankReply.class);

  private final JavaSparkContext sc;
  private final String runId;
  private final RunConfig cfg;
  private ExpertPlacement placement;
  private final String[] executors;
  private final String[] locations;
  private final String[] addresses;
  private final String[] gpus;
  private final String[] arenas;
  private long valTokens;
  private int nextStep;

  private RankGroup(JavaSparkContext sc, RunConfig cfg, ExpertPlacement placement, String lineage) {
    this.sc = sc;
    this.runId = RankState.runId(lineage, UUID.randomUUID().toString());
    this.cfg = cfg;
    this.placement = placement;
    this.executors = new String[placement.ranks()];
    this.locations = new String[placement.ranks()];
    this.addresses = new String[placement.ranks()];
    this.gpus = new String[placement.ranks()];
    this.arenas = new String[placement.ranks()];
  }

  /**
   * Creates the ranks of a run on R = {@code placement.ranks()} executor task slots: data loaded on each
   * executor, model built from the config's seed or restored from {@code from}, exchanges connected.
   */
  public static RankGroup open(JavaSparkContext sc, RunConfig cfg, ExpertPlacement placement,
      CheckpointStore.Stored from) {
    return open(sc, cfg, placement, from, null, "");
  }

  /**
   * As {@link #open}, starting from a Hugging Face model directory when {@code init} is set. Groups of one
   * {@code lineage} (the run directory) replace each other: opening one releases what an earlier, failed
   * group of the same lineage left on the executors.
   */
  public static RankGroup open(JavaSparkContext sc, RunConfig cfg, ExpertPlacement placement,
      CheckpointStore.Stored from, HfInit init, String lineage) {
    RankStages.checkSlots(sc, placement.ranks());
    RankGroup d = new RankGroup(sc, cfg, placement, lineage);
    String cfgJson = ConfigLoader.toTree(RunData.withAbsolutePath(cfg)).toString();
    List<RankTasks.Opened> replies = d.stage(new Open(cfgJson, placement, from, init), RankTasks.Opened.class,
        "open " + placement.ranks() + " ranks" + (from == null ? "" : " from " + from.dir()), null);
    for (RankTasks.Opened r : replies) {
      d.executors[r.rank()] = r.executor();
      d.locations[r.rank()] = r.location();
      d.addresses[r.rank()] = r.address();
      d.gpus[r.rank()] = r.gpu();
      d.arenas[r.rank()] = r.arena();
    }
    d.valTokens = replies.get(0).valTokens();
    d.nextStep = from == null ? 0 : from.step();
    return d;
  }

  JavaSparkContext sc() {
    return sc;
  }

  String runId() {
    return runId;
  }

  RunConfig config() {
    return cfg;
  }

  ExpertPlacement placement() {
    return placement;
  }

  /** What an expert move cost: bytes sent by all ranks, tensors moved, the slowest rank's seconds. */
  record MoveCost(long bytes, int tensors, double seconds) {}

  /** Moves the ranks' experts to {@code next} in memory (a barrier stage over the direct path's collective). */
  MoveCost move(ExpertPlacement next) {
    if (cfg.parallel().dispatch() != RunConfig.Dispatch.DIRECT) {
      throw new IllegalStateException("a barrier-stage move needs the direct path; the shuffle runner moves experts");
    }
    long bytes = 0;
    int tensors = 0;
    double seconds = 0;
    for (RankTasks.Moved m : stage(new RankTasks.Move(placement, next), RankTasks.Moved.class,
        "move experts after step " + nextStep, null)) {
      bytes += m.bytesSent();
      tensors += m.tensorsSent();
      seconds = Math.max(seconds, m.seconds());
    }
    return moved(next, new MoveCost(bytes, tensors, seconds));
  }

  /** The ranks' experts are now where {@code next} says (a runner moved them); returns {@code cost}. */
  MoveCost moved(ExpertPlacement next, MoveCost cost) {
    placement = next;
    return cost;
  }

  /** The next step the ranks will run (0-based). */
  public int nextStep() {
    return nextStep;
  }

  /** Records that the ranks have run {@code steps} more steps (the runners call it). */
  void advance(int steps) {
    nextStep += steps;
  }

  /** Validation tokens the ranks hold (0: no validation data). */
  public long valTokens() {
    return valTokens;
  }

  /** Each rank's direct-path endpoint (host:port), by rank; null on the shuffle path. */
  public List<String> addresses() {
    return java.util.Arrays.asList(addresses.clone());
  }

  /** Each rank's executor as Spark's scheduler names it ("executor_HOST_ID"), null in local mode. */
  public List<String> locations() {
    return java.util.Arrays.asList(locations.clone());
  }

  /** The GPU Spark assigned to each rank's task (its address), null where none was. */
  public List<String> gpus() {
    return java.util.Arrays.asList(gpus.clone());
  }

  /** Each rank's backend and memory footprint as it opened ("cpu 3.2 MiB (peak ...)"). */
  public List<String> arenas() {
    return java.util.Arrays.asList(arenas.clone());
  }

  /** The host of each rank's executor ("driver" in local mode), from its location. */
  public List<String> hosts() {
    List<String> hosts = new ArrayList<>();
    for (String loc : locations) {
      hosts.add(loc == null ? "driver" : loc.substring("executor_".length(), loc.lastIndexOf('_')));
    }
    return hosts;
  }

  String[] locationArray() {
    return locations.clone();
  }

  String[] executorArray() {
    return executors.clone();
  }

  /** The executor id holding each rank. */
  public List<String> executors() {
    return List.of(executors);
  }

  /** Every rank writes its checkpoint shard into {@code dir}; returns the shards and rank 0's state. */
  public Saved save(String dir) {
    List<RankTasks.SavedShard> replies = stage(new Save(dir), RankTasks.SavedShard.class, "checkpoint at step "
        + nextStep, null);
    List<CheckpointStore.Shard> shards = new ArrayList<>();
    for (RankTasks.SavedShard r : replies) {
      shards.add(r.shard());
    }
    return new Saved(shards, replies.get(0).stateJson());
  }

  /** What {@link #save} returns: the shards written and the trainer state for state.json. */
  public record Saved(List<CheckpointStore.Shard> shards, String stateJson) {}

  /** All parameters by name (dense from rank 0, experts from their owners). */
  public Map<String, float[]> gather() {
    Map<String, float[]> params = new LinkedHashMap<>();
    for (RankTasks.Gathered r : stage(new Gather(), RankTasks.Gathered.class, "gather parameters", null)) {
      params.putAll(r.params());
    }
    return params;
  }

  /** Releases the ranks' state and collectives on their executors. */
  @Override
  public void close() {
    stage(new Close(), RankTasks.Closed.class, "close ranks", null);
    StepFeedPlugin.forget(runId);
  }

  /**
   * After a failure: releases the ranks' state on the executors that still have it, waiting a few seconds
   * at most (a barrier stage needs every slot, and a lost executor's may not come back in time); errors
   * are ignored, since the next group of the lineage releases leftovers when it opens.
   */
  public void abandon() {
    try {
      stage(new Close(), RankTasks.Closed.class, "release ranks after a failure", job -> {
        try {
          job.get(3, java.util.concurrent.TimeUnit.SECONDS);
        } catch (java.util.concurrent.TimeoutException | java.util.concurrent.ExecutionException e) {
          job.cancel(true);
        }
      });
    } catch (RuntimeException ignored) {
      // Best effort by design (see above).
    }
    StepFeedPlugin.forget(runId);
  }

  /**
   * One barrier stage of R tasks running {@code op}, pinned to the ranks' executors once they exist,
   * named {@code callSite} in the UI's stage list; returns the replies by rank, each of the op's reply type.
   */
  <R extends RankReply> List<R> stage(Op op, Class<R> reply, String description, RankStages.Waiter<RankReply> waiter) {
    RDD<Integer> ids = RankStages.pinned(sc, locations);
    String id = runId;
    String[] homes = executors.clone();
    Function1<scala.collection.Iterator<Integer>, scala.collection.Iterator<RankReply>> body =
        (Function1<scala.collection.Iterator<Integer>, scala.collection.Iterator<RankReply>> & Serializable)
            it -> CollectionConverters.asScala(List.of(RankTasks.run(id, homes, op)).iterator());
    sc.setJobDescription(description);
    sc.setCallSite(callSite(op));
    try {
      JavaFutureAction<List<RankReply>> job =
          JavaRDD.fromRDD(ids.barrier().mapPartitions(body, false, REPLY), REPLY).collectAsync();
      List<R> typed = new ArrayList<>();
      for (RankReply r : RankStages.byRank(job, waiter == null ? j -> {} : waiter, RankReply::rank, description)) {
        typed.add(reply.cast(r));
      }
      return typed;
    } finally {
      sc.clearCallSite();
      sc.setJobDescription(null);
    }
  }

  /** The name the Spark UI shows for a rank stage (instead of the code location of collectAsync). */
  private static String callSite(Op op) {
    if (op instanceof Open o) {
      return o.from() != null ? "open ranks from checkpoint"
          : o.init() != null ? "open ranks from a Hugging Face model" : "open ranks";
    }
    if (op instanceof RankTasks.Steps s) {
      return "train steps " + (s.from() + 1) + "–" + (s.from() + s.count()) + " (direct path)";
    }
    if (op instanceof RankTasks.Evaluate) {
      return "validation (direct path)";
    }
    if (op instanceof Save) {
      return "checkpoint shards";
    }
    if (op instanceof RankTasks.Move) {
      return "move experts (direct path)";
    }
    return op instanceof Gather ? "gather parameters" : "close ranks";
  }
}
