package io.moespark.job;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.moespark.job.data.RunData;
import io.moespark.job.io.CheckpointStore;
import io.moespark.job.io.HfInit;
import io.moespark.job.io.RunFiles;
import io.moespark.job.net.Collectives;
import io.moespark.ops.backend.Backend;
import io.moespark.ops.backend.Backends;
import io.moespark.ops.collective.Collective;
import io.moespark.ops.config.ConfigException;
import io.moespark.ops.config.ConfigLoader;
import io.moespark.ops.config.RunConfig;
import io.moespark.ops.io.Checkpoint;
import io.moespark.ops.tensor.DType;
import io.moespark.ops.tensor.Param;
import io.moespark.ops.tensor.Tensor;
import io.moespark.ops.train.ExpertMove;
import io.moespark.ops.train.StepProgram;
import io.moespark.ops.train.StepReport;
import io.moespark.ops.train.Trainer;
import java.io.Serializable;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.apache.hadoop.conf.Configuration;
import org.apache.spark.BarrierTaskContext;
import org.apache.spark.SparkEnv;

/**
 * The executor side of the rank stages that {@link RankGroup} submits: what one rank does for each
 * {@link Op}, against its resident {@link RankState}. Everything here runs inside a barrier task.
 */
final class RankTasks {
  private static final ObjectMapper JSON = new ObjectMapper();

  private RankTasks() {}

  /** What a stage asks every rank to do. */
  sealed interface Op extends Serializable permits Open, Steps, Evaluate, Save, Gather, Move, Close {}

  /** Creates the ranks: fresh from the seed, from a checkpoint ({@code from}), or from a Hugging Face model ({@code init}). */
  record Open(String cfgJson, ExpertPlacement placement, CheckpointStore.Stored from, HfInit init) implements Op {}

  /** Steps [from, from + count) on the direct path: a rank at another step fails instead of running out of order. */
  record Steps(int from, int count) implements Op {}

  record Evaluate() implements Op {}

  record Save(String dir) implements Op {}

  record Gather() implements Op {}

  /**
   * Moves experts from placement {@code from} to {@code to} in memory: a barrier stage over the direct
   * path's collective, or the work of a shuffle job ({@link ShuffleRunner#move}).
   */
  record Move(ExpertPlacement from, ExpertPlacement to) implements Op {}

  record Close() implements Op {}

  /** One rank's answer to an {@link Op}: one type per op, so that the driver reads only what the op gives. */
  sealed interface RankReply extends Serializable permits Opened, Stepped, Evaluated, SavedShard, Gathered, Moved,
      Closed {
    int rank();
  }

  /** {@link Open}: where the rank lives (its executor, host, address for the direct path, GPU and arena). */
  record Opened(int rank, String executor, String location, String address, String gpu, String arena, long valTokens)
      implements RankReply {}

  /** {@link Steps}: rank 0's step results (other ranks': none), and the divergence that stopped them, if any. */
  record Stepped(int rank, List<StepResult> steps, Trainer.DivergenceException diverged) implements RankReply {}

  /** {@link Evaluate}: the validation loss (the same on every rank). */
  record Evaluated(int rank, double valLoss) implements RankReply {}

  /** {@link Save}: the shard written, and (rank 0) the trainer state for state.json. */
  record SavedShard(int rank, CheckpointStore.Shard shard, String stateJson) implements RankReply {}

  /** {@link Gather}: the rank's parameters by name (rank 0's dense ones, every rank's experts). */
  record Gathered(int rank, Map<String, float[]> params) implements RankReply {}

  /** {@link Move}: the bytes this rank sent and how long its move took. */
  record Moved(int rank, long bytesSent, int tensorsSent, double seconds) implements RankReply {}

  /** {@link Close}. */
  record Closed(int rank) implements RankReply {}

  /** Runs {@code op} as rank {@code partitionId} of the current barrier task; failures name the run, rank and executor. */
  static RankReply run(String runId, String[] homes, Op op) {
    BarrierTaskContext task = BarrierTaskContext.get();
    int r = task.partitionId();
    SparkEnv env = SparkEnv.get();
    String executor = env.executorId();
    try {
      if (op instanceof Open o) {
        return open(runId, task, o);
      }
      if (op instanceof Close) {
        RankState.release(runId, r);
        return new Closed(r);
      }
      RankState st = RankState.get(runId, r, executor, homes[r]);
      Trainer t = st.trainer;
      if (op instanceof Steps s) {
        return steps(runId, r, st, s);
      }
      if (op instanceof Move m) {
        return move(st, r, m);
      }
      if (op instanceof Evaluate) {
        st.progress.doing("validation");
        double loss = t.evaluate(st.val, st.collective, st.collective);
        st.progress.doing("idle");
        return new Evaluated(r, loss);
      }
      if (op instanceof Save s) {
        st.progress.doing("checkpoint");
        CheckpointStore.Shard shard = CheckpointStore.writeShard(s.dir(), r, t.checkpointTensors(),
            RunFiles.hadoopConf(env.conf()));
        String state = r == 0 ? Checkpoint.toJson(t.checkpointState()).toString() : null;
        st.progress.doing("idle");
        return new SavedShard(r, shard, state);
      }
      Map<String, float[]> params = new LinkedHashMap<>(); // Gather
      for (Param p : t.model().params().all()) {
        if (p.writtenBy(r)) {
          params.put(p.name(), floats(p.value()));
        }
      }
      return new Gathered(r, params);
    } catch (ConfigException e) {
      // Bad input this rank found (a GPU it cannot use, too little GPU memory): the driver reports it as
      // such (RankStages.inputProblem), with where and when.
      ConfigException c = new ConfigException("rank " + r + " on executor " + executor + ", " + phase(op) + ": "
          + e.getMessage(), e);
      throw new IllegalStateException("run " + runId + " rank " + r + " on executor " + executor + ": " + c, c);
    } catch (RuntimeException e) {
      throw e.getMessage() != null && e.getMessage().startsWith("run ") ? e
          : new IllegalStateException("run " + runId + " rank " + r + " on executor " + executor + ": " + e, e);
    } catch (Exception e) {
      throw new IllegalStateException("run " + runId + " rank " + r + " on executor " + executor + ": " + e, e);
    }
  }

  /** What a rank was doing, for messages. */
  private static String phase(Op op) {
    if (op instanceof Open o) {
      return o.from() != null ? "loading the checkpoint" : "creating the model";
    }
    if (op instanceof Steps s) {
      return "steps " + (s.from() + 1) + "-" + (s.from() + s.count());
    }
    return op instanceof Evaluate ? "validation" : op instanceof Save ? "writing a checkpoint"
        : op instanceof Gather ? "gathering the model" : op instanceof Move ? "moving experts" : "closing";
  }

  /** A float32 tensor's values on the host (for the export, gathered on the driver). */
  private static float[] floats(Tensor t) {
    ByteBuffer b = ByteBuffer.allocate((int) t.length() * 4).order(ByteOrder.LITTLE_ENDIAN);
    t.backend().toHost(t, b);
    float[] v = new float[(int) t.length()];
    b.flip().asFloatBuffer().get(v);
    return v;
  }

  /**
   * Creates the rank: data loaded here, model from the seed or the checkpoint, and its end of the run's
   * exchanges (the direct path's collective, or the shuffle path's bridge and the same collective over it).
   */
  private static Opened open(String runId, BarrierTaskContext task, Open o) throws Exception {
    int r = task.partitionId(), ranks = task.numPartitions();
    RankState.releaseLineage(runId);
    SparkEnv env = SparkEnv.get();
    RunConfig cfg = ConfigLoader.fromTree(JSON.readTree(o.cfgJson()), "run config");
    // The GPU Spark assigned to this task (spark.task.resource.gpu.amount); local mode assigns none and its
    // ranks share GPU 0.
    var gpu = task.resourcesJMap().get("gpu");
    String gpuId = gpu == null || gpu.addresses().length == 0 ? null : String.join(",", gpu.addresses());
    boolean local = env.executorId().equals("driver");
    Backend backend = Backends.forRank(cfg.parallel(), gpuId == null && local ? "0" : gpuId);
    backend.setThreads(task.cpus());
    Configuration conf = RunFiles.hadoopConf(env.conf());
    RunData data = RunData.load(cfg, conf);
    Trainer trainer = new Trainer(cfg, data.train(), backend, DType.F32, r, ranks, l -> o.placement().layout(l, r));
    if (o.from() != null) {
      Set<String> needed = new HashSet<>();
      for (Param p : trainer.model().params().all()) {
        needed.add(p.name());
        needed.add("exp_avg." + p.name());
        needed.add("exp_avg_sq." + p.name());
      }
      String source = o.from().dir();
      Map<String, Tensor> shards = CheckpointStore.readShards(o.from(), needed, conf, backend);
      trainer.restore(shards, Checkpoint.fromJson(JSON.readTree(o.from().stateJson()), source + "/" + Checkpoint.STATE),
          source);
      shards.values().forEach(backend::free); // copied into the parameters and moments: back to the arena
    } else if (o.init() != null) {
      o.init().load(trainer.model(), cfg, conf);
    }
    long timeoutMs = cfg.parallel().timeoutS() * 1000L;
    String host = env.blockManager().blockManagerId().host();
    RankProgress progress = new RankProgress(runId, r, env.executorId(), host,
        StepProgram.training(cfg, ranks, o.placement().hasReplicas()),
        StepFeedPlugin::beat);
    RankState state = switch (cfg.parallel().dispatch()) {
      case DIRECT -> RankState.direct(trainer,
          Collectives.forBarrierTask(cfg.parallel().transport(), task, timeoutMs), data.val(), progress);
      case SHUFFLE -> RankState.shuffle(trainer, new ShuffleBridge(r, ranks, timeoutMs), data.val(), progress);
    };
    progress.doing("idle");
    RankState.register(runId, r, state);
    // The form Spark's scheduler reads as "this executor" (ExecutorCacheTaskLocation); none in local mode.
    String location = local ? null : "executor_" + host + "_" + env.executorId();
    String address = cfg.parallel().dispatch() == RunConfig.Dispatch.DIRECT ? state.collective.endpoint() : null;
    // The rank's arena once its parameters and optimizer state exist (activations join at the first step).
    String arena = backend.name() + " " + backend.footprint();
    return new Opened(r, env.executorId(), location, address, gpuId, arena, data.val().length);
  }

  private static Stepped steps(String runId, int r, RankState st, Steps s) throws Exception {
    Trainer t = st.trainer;
    if (t.nextStep() != s.from()) {
      throw new IllegalStateException("run " + runId + " rank " + r + " is at step " + t.nextStep()
          + ", the driver asked for step " + s.from() + " (a stage retried after a partial failure); "
          + "restart the run with --resume from its last checkpoint");
    }
    Collective c = st.collective;
    List<StepResult> results = new ArrayList<>();
    for (int i = 0; i < s.count(); i++) {
      long bytes0 = c.bytesSent();
      double busy0 = c.busySeconds();
      StepReport rep;
      st.progress.stepBegins(t.nextStep());
      try {
        rep = t.step(c, c);
      } catch (Trainer.DivergenceException e) {
        return new Stepped(r, r == 0 ? results : List.of(), e);
      }
      double exchange = c.busySeconds() - busy0;
      double[] bytes = {c.bytesSent() - bytes0};
      c.sum(bytes);
      StepResult result = new StepResult(rep, exchange, (long) bytes[0]);
      if (r == 0) {
        results.add(result);
        StepFeedPlugin.publish(runId, result);
      }
    }
    st.progress.doing("idle");
    return new Stepped(r, results, null);
  }

  /**
   * Rank r's side of an expert move, over the collective its steps use (the direct path's in a barrier
   * stage, the shuffle bridge's in a shuffle job): the rank's trainer is replaced by the one holding its new
   * experts.
   */
  static Moved move(RankState st, int r, Move m) {
    st.progress.doing("expert move");
    long t0 = System.nanoTime();
    Trainer t = st.trainer;
    ExpertMove.Result moved = ExpertMove.move(t, l -> m.from().layout(l, r), l -> m.to().layout(l, r), st.collective);
    st.moved(moved.trainer());
    st.progress.follow(StepProgram.training(t.config(), m.to().ranks(), m.to().hasReplicas()));
    st.progress.doing("idle");
    return new Moved(r, moved.bytesSent(), moved.tensorsSent(), (System.nanoTime() - t0) / 1e9);
  }
}
