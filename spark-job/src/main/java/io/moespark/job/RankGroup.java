package io.moespark.job;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.moespark.job.data.RunData;
import io.moespark.job.io.CheckpointStore;
import io.moespark.job.net.Collective;
import io.moespark.job.shuffle.PinnedShuffledRDD;
import io.moespark.ops.config.ConfigException;
import io.moespark.ops.backend.Backend;
import io.moespark.ops.backend.cpu.CpuBackend;
import io.moespark.ops.config.ConfigLoader;
import io.moespark.ops.tensor.DType;
import io.moespark.ops.tensor.Tensor;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import io.moespark.ops.config.RunConfig;
import io.moespark.ops.io.Checkpoint;
import io.moespark.ops.tensor.Param;
import io.moespark.ops.train.StepProgram;
import io.moespark.ops.train.StepReport;
import io.moespark.ops.train.Trainer;
import java.io.Serializable;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.hadoop.conf.Configuration;
import org.apache.spark.BarrierTaskContext;
import org.apache.spark.SparkConf;
import org.apache.spark.SparkEnv;
import org.apache.spark.api.java.JavaFutureAction;
import org.apache.spark.api.java.JavaRDD;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.rdd.RDD;
import scala.Function1;
import scala.Tuple2;
import scala.jdk.javaapi.CollectionConverters;
import scala.reflect.ClassTag;
import scala.reflect.ClassTag$;

/**
 * The R ranks of a run, resident on executors ({@link RankState}), and the Spark jobs that drive them.
 * {@link #open} creates the ranks (fresh, or from a checkpoint written with any R) in one barrier stage;
 * every later stage is pinned to the executors that hold the ranks (preferred locations). Steps run by
 * the run's {@code parallel.dispatch}: on the direct path, barrier stages of a few steps each whose
 * exchanges go over the ranks' {@link Collective} (each step's statistics reach the driver as the step
 * ends through {@link StepFeedPlugin} when installed, else when the stage ends); on the shuffle path,
 * one job per step whose exchanges are shuffles ({@link ShuffleSteps}). Validation follows the same
 * path; checkpoints, the parameter gather and closing are plain pinned barrier stages.
 */
public final class RankGroup implements AutoCloseable {
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final ClassTag<Integer> INT = ClassTag$.MODULE$.apply(Integer.class);
  private static final ClassTag<RankReply> REPLY = ClassTag$.MODULE$.apply(RankReply.class);
  private static final Pattern LOCAL = Pattern.compile("local(?:\\[(\\*|\\d+)(?:,\\d+)?])?");
  private static final Pattern LOCAL_CLUSTER = Pattern.compile("local-cluster\\[(\\d+),\\s*(\\d+),.*]");

  /** What a stage asks every rank to do. */
  sealed interface Op extends Serializable permits Open, Steps, Evaluate, Save, Gather, Close {}

  record Open(String cfgJson, ExpertPlacement placement, CheckpointStore.Stored from) implements Op {}

  /** Steps [from, from + count): a rank at another step fails instead of running out of order. */
  record Steps(int from, int count) implements Op {}

  record Evaluate() implements Op {}

  record Save(String dir) implements Op {}

  record Gather() implements Op {}

  record Close() implements Op {}

  /** One rank's answer; the fields its op does not fill are null or 0 (made by the factories below). */
  record RankReply(int rank, String executor, String location, String address, long valTokens, List<StepResult> steps,
      Trainer.DivergenceException diverged, double valLoss, CheckpointStore.Shard shard, String stateJson,
      Map<String, float[]> params) implements Serializable {
    static RankReply done(int rank) {
      return new RankReply(rank, null, null, null, 0, List.of(), null, 0, null, null, Map.of());
    }

    static RankReply opened(int rank, String executor, String location, String address, long valTokens) {
      return new RankReply(rank, executor, location, address, valTokens, List.of(), null, 0, null, null, Map.of());
    }

    static RankReply stepped(int rank, List<StepResult> steps, Trainer.DivergenceException diverged) {
      return new RankReply(rank, null, null, null, 0, steps, diverged, 0, null, null, Map.of());
    }

    static RankReply evaluated(int rank, double valLoss) {
      return new RankReply(rank, null, null, null, 0, List.of(), null, valLoss, null, null, Map.of());
    }

    static RankReply saved(int rank, CheckpointStore.Shard shard, String stateJson) {
      return new RankReply(rank, null, null, null, 0, List.of(), null, 0, shard, stateJson, Map.of());
    }

    static RankReply gathered(int rank, Map<String, float[]> params) {
      return new RankReply(rank, null, null, null, 0, List.of(), null, 0, null, null, params);
    }
  }

  /** Both runners' view of a finished run. */
  public record Result(List<StepResult> steps, Map<String, float[]> params) {}

  private final JavaSparkContext sc;
  private final String runId = UUID.randomUUID().toString();
  private final RunConfig cfg;
  private final ExpertPlacement placement;
  private final String[] executors;
  private final String[] locations;
  private final String[] addresses;
  private long valTokens;
  private int nextStep;

  private RankGroup(JavaSparkContext sc, RunConfig cfg, ExpertPlacement placement) {
    this.sc = sc;
    this.cfg = cfg;
    this.placement = placement;
    this.executors = new String[placement.ranks()];
    this.locations = new String[placement.ranks()];
    this.addresses = new String[placement.ranks()];
  }

  /**
   * Creates the ranks of a run on R = {@code placement.ranks()} executor task slots: data loaded on each
   * executor, model built from the config's seed or restored from {@code from}, collective connected.
   */
  public static RankGroup open(JavaSparkContext sc, RunConfig cfg, ExpertPlacement placement,
      CheckpointStore.Stored from) {
    checkSlots(sc, placement.ranks());
    RankGroup d = new RankGroup(sc, cfg, placement);
    List<RankReply> replies = d.stage(new Open(ConfigLoader.toTree(absoluteData(cfg)).toString(), placement, from),
        "open " + placement.ranks() + " ranks" + (from == null ? "" : " from " + from.dir()), null);
    for (RankReply r : replies) {
      d.executors[r.rank()] = r.executor();
      d.locations[r.rank()] = r.location();
      d.addresses[r.rank()] = r.address();
    }
    d.valTokens = replies.get(0).valTokens();
    d.nextStep = from == null ? 0 : from.step();
    return d;
  }

  /**
   * A barrier stage of R tasks needs R free task slots at once; Spark finds out only after minutes of
   * retries, so local masters, whose slots are known up front, are checked here.
   */
  private static void checkSlots(JavaSparkContext sc, int ranks) {
    String master = sc.master();
    int taskCpus = sc.getConf().getInt("spark.task.cpus", 1);
    Matcher local = LOCAL.matcher(master), cluster = LOCAL_CLUSTER.matcher(master);
    int slots;
    if (local.matches()) {
      String n = local.group(1);
      int cores = n == null ? 1 : n.equals("*") ? Runtime.getRuntime().availableProcessors() : Integer.parseInt(n);
      slots = cores / taskCpus;
    } else if (cluster.matches()) {
      slots = Integer.parseInt(cluster.group(1)) * (Integer.parseInt(cluster.group(2)) / taskCpus);
    } else {
      return;
    }
    if (slots < ranks) {
      throw new ConfigException("parallel.ranks = " + ranks + " needs " + ranks + " task slots at once; master "
          + master + " has " + slots + " (lower parallel.ranks or give the master more cores)");
    }
  }

  /** The config with a relative local data path made absolute: executors have their own working directories. */
  private static RunConfig absoluteData(RunConfig cfg) {
    String data = cfg.data().path();
    if (data.contains(":") || Path.of(data).isAbsolute()) {
      return cfg;
    }
    ObjectNode tree = (ObjectNode) ConfigLoader.toTree(cfg);
    ((ObjectNode) tree.get("data")).put("path", Path.of(data).toAbsolutePath().normalize().toString());
    return ConfigLoader.fromTree(tree, "run config");
  }

  /** Trains {@code steps} steps with R = {@code cfg.parallel.ranks} fresh ranks and gathers the parameters. */
  public static Result run(JavaSparkContext sc, RunConfig cfg, int steps, Consumer<StepResult> onStep) {
    try (RankGroup d = open(sc, cfg, ExpertPlacement.contiguous(cfg, cfg.parallel().ranks()), null)) {
      List<StepResult> all = new ArrayList<>();
      while (all.size() < steps) {
        all.addAll(d.steps(Math.min(cfg.parallel().stepsPerStage(), steps - all.size()), onStep, "direct run"));
      }
      return new Result(all, d.gather());
    }
  }

  public int nextStep() {
    return nextStep;
  }

  /** Validation tokens the ranks hold (0: no validation data). */
  public long valTokens() {
    return valTokens;
  }

  /** Each rank's direct-path endpoint (host:port), by rank. */
  public List<String> addresses() {
    return List.of(addresses);
  }

  /** Each rank's executor as Spark's scheduler names it ("executor_HOST_ID"), null in local mode. */
  public List<String> locations() {
    return java.util.Arrays.asList(locations.clone());
  }

  /** The executor id holding each rank. */
  public List<String> executors() {
    return List.of(executors);
  }

  /**
   * Runs the next {@code count} steps as one stage, calling {@code onStep} once per step in order as soon
   * as the driver has its statistics. Throws {@link Trainer.DivergenceException} on a non-finite loss
   * (the ranks stop at that step together: the loss is global).
   */
  public List<StepResult> steps(int count, Consumer<StepResult> onStep, String description) {
    if (shuffle()) {
      return shuffleSteps(count, onStep, description);
    }
    int from = nextStep;
    BlockingQueue<StepResult> feed = StepFeedPlugin.open(runId);
    List<StepResult> delivered = new ArrayList<>();
    List<RankReply> replies;
    try {
      replies = stage(new Steps(from, count), description, job -> {
        while (!job.isDone()) {
          StepResult s = feed.poll(100, TimeUnit.MILLISECONDS);
          if (s != null && s.step() == from + delivered.size()) {
            onStep.accept(s);
            delivered.add(s);
          }
        }
      });
    } finally {
      StepFeedPlugin.close(runId);
    }
    RankReply zero = replies.get(0);
    // Steps whose message had not arrived when the stage ended (or no plugin): from the stage's result.
    for (StepResult s : zero.steps().subList(delivered.size(), zero.steps().size())) {
      onStep.accept(s);
      delivered.add(s);
    }
    nextStep = from + zero.steps().size();
    if (zero.diverged() != null) {
      throw zero.diverged();
    }
    return delivered;
  }

  /** Validation loss over every rank's share of the validation windows. */
  public double evaluate() {
    String description = "validation after step " + nextStep;
    if (shuffle()) {
      StepProgram program = StepProgram.evaluation(cfg, placement.ranks(), (int) valTokens);
      return ShuffleSteps.run(sc, runId, executors, locations, placement, program, false, nextStep, description)
          .get(0).valLoss();
    }
    return stage(new Evaluate(), description, null).get(0).valLoss();
  }

  private boolean shuffle() {
    return cfg.parallel().dispatch().equals("shuffle");
  }

  /** The shuffle path: one Spark job per step, its statistics with the job's result. */
  private List<StepResult> shuffleSteps(int count, Consumer<StepResult> onStep, String description) {
    StepProgram program = StepProgram.training(cfg, placement.ranks());
    List<StepResult> done = new ArrayList<>();
    for (int i = 0; i < count; i++) {
      List<ShuffleSteps.Outcome> outcomes = ShuffleSteps.run(sc, runId, executors, locations, placement, program,
          true, nextStep, description + " · step " + (nextStep + 1));
      ShuffleSteps.Outcome zero = outcomes.get(0);
      if (zero.diverged() != null) {
        throw zero.diverged();
      }
      long bytes = outcomes.stream().mapToLong(ShuffleSteps.Outcome::bytesSent).sum();
      StepResult s = new StepResult(zero.report(), zero.waitSeconds(), bytes);
      nextStep++;
      onStep.accept(s);
      done.add(s);
    }
    return done;
  }

  /** Every rank writes its checkpoint shard into {@code dir}; returns the shards and rank 0's state. */
  public Saved save(String dir) {
    List<RankReply> replies = stage(new Save(dir), "checkpoint at step " + nextStep, null);
    List<CheckpointStore.Shard> shards = new ArrayList<>();
    for (RankReply r : replies) {
      shards.add(r.shard());
    }
    return new Saved(shards, replies.get(0).stateJson());
  }

  /** What {@link #save} returns: the shards written and the trainer state for state.json. */
  public record Saved(List<CheckpointStore.Shard> shards, String stateJson) {}

  /** All parameters by name (dense from rank 0, experts from their owners). */
  public Map<String, float[]> gather() {
    Map<String, float[]> params = new LinkedHashMap<>();
    for (RankReply r : stage(new Gather(), "gather parameters", null)) {
      params.putAll(r.params());
    }
    return params;
  }

  /** Releases the ranks' state and collectives on their executors. */
  @Override
  public void close() {
    stage(new Close(), "close ranks", null);
  }

  private interface Waiter {
    void await(JavaFutureAction<List<RankReply>> job) throws InterruptedException;
  }

  /** One barrier stage of R tasks running {@code op}, pinned to the ranks' executors once they exist. */
  private List<RankReply> stage(Op op, String description, Waiter waiter) {
    RDD<Integer> ids = pinned(sc, locations);
    String id = runId;
    String[] homes = executors.clone();
    Function1<scala.collection.Iterator<Integer>, scala.collection.Iterator<RankReply>> body =
        (Function1<scala.collection.Iterator<Integer>, scala.collection.Iterator<RankReply>> & Serializable)
            it -> CollectionConverters.asScala(List.of(rank(id, homes, op)).iterator());
    sc.setJobDescription(description);
    try {
      JavaFutureAction<List<RankReply>> job =
          JavaRDD.fromRDD(ids.barrier().mapPartitions(body, false, REPLY), REPLY).collectAsync();
      if (waiter != null) {
        waiter.await(job);
      }
      List<RankReply> replies = new ArrayList<>(job.get());
      replies.sort((a, b) -> Integer.compare(a.rank(), b.rank()));
      return replies;
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException("interrupted while waiting for " + description, e);
    } catch (java.util.concurrent.ExecutionException e) {
      throw new IllegalStateException(description + " failed: " + rootMessage(e), e);
    } finally {
      sc.setJobDescription(null);
    }
  }

  /** Partitions 0..n-1 holding their own index, partition i preferring {@code locations[i]} (null: anywhere). */
  static RDD<Integer> pinned(JavaSparkContext sc, String[] locations) {
    List<Tuple2<Integer, scala.collection.immutable.Seq<String>>> items = new ArrayList<>();
    for (int i = 0; i < locations.length; i++) {
      items.add(new Tuple2<>(i, PinnedShuffledRDD.preference(locations[i])));
    }
    return sc.sc().makeRDD(CollectionConverters.asScala(items).toList(), INT);
  }

  /** The most specific "run …" message in a failure's causes (the rank's own words), else its message. */
  static String rootMessage(Throwable e) {
    String m = e.getMessage();
    for (Throwable t = e; t != null; t = t.getCause()) {
      if (t.getMessage() != null && t.getMessage().contains("run ")) {
        m = t.getMessage();
      }
    }
    return m;
  }

  private static RankReply rank(String runId, String[] homes, Op op) {
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
        return RankReply.done(r);
      }
      RankState st = RankState.get(runId, r, executor, homes[r]);
      Trainer t = st.trainer;
      if (op instanceof Steps s) {
        return steps(runId, r, st, s);
      }
      if (op instanceof Evaluate) {
        double loss = t.evaluate(st.val, st.collective, st.collective);
        return RankReply.evaluated(r, loss);
      }
      if (op instanceof Save s) {
        CheckpointStore.Shard shard = CheckpointStore.writeShard(s.dir(), r, t.checkpointTensors(),
            hadoopConf(env.conf()));
        String state = r == 0 ? Checkpoint.toJson(t.checkpointState()).toString() : null;
        return RankReply.saved(r, shard, state);
      }
      Map<String, float[]> params = new LinkedHashMap<>(); // Gather
      for (Param p : t.model().params().all()) {
        if (p.isExpert() || r == 0) {
          params.put(p.name(), floats(p.value()));
        }
      }
      return RankReply.gathered(r, params);
    } catch (RuntimeException e) {
      throw e.getMessage() != null && e.getMessage().startsWith("run ") ? e
          : new IllegalStateException("run " + runId + " rank " + r + " on executor " + executor + ": " + e, e);
    } catch (Exception e) {
      throw new IllegalStateException("run " + runId + " rank " + r + " on executor " + executor + ": " + e, e);
    }
  }

  /** A float32 tensor's values on the host (for the export, gathered on the driver). */
  private static float[] floats(Tensor t) {
    ByteBuffer b = ByteBuffer.allocate((int) t.length() * 4).order(ByteOrder.LITTLE_ENDIAN);
    t.backend().toHost(t, b);
    float[] v = new float[(int) t.length()];
    b.flip().asFloatBuffer().get(v);
    return v;
  }

  private static RankReply open(String runId, BarrierTaskContext task, Open o) throws Exception {
    int r = task.partitionId(), ranks = task.numPartitions();
    SparkEnv env = SparkEnv.get();
    RunConfig cfg = ConfigLoader.fromTree(JSON.readTree(o.cfgJson()), "run config");
    Backend backend = CpuBackend.INSTANCE;
    backend.setThreads(task.cpus());
    Configuration conf = hadoopConf(env.conf());
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
      trainer.restore(CheckpointStore.readShards(o.from(), needed, conf, backend),
          Checkpoint.fromJson(JSON.readTree(o.from().stateJson()), source + "/" + Checkpoint.STATE), source);
    }
    long timeoutMs = cfg.parallel().timeoutS() * 1000L;
    boolean shuffle = cfg.parallel().dispatch().equals("shuffle");
    Collective c = shuffle ? null : Collective.forBarrierTask(cfg.parallel().transport(), task, timeoutMs);
    RankState.register(runId, r, trainer, c, shuffle ? new ShuffleBridge(r, ranks, timeoutMs) : null, data.val());
    String host = env.blockManager().blockManagerId().host();
    // The form Spark's scheduler reads as "this executor" (ExecutorCacheTaskLocation); none in local mode.
    String location = env.executorId().equals("driver") ? null : "executor_" + host + "_" + env.executorId();
    return RankReply.opened(r, env.executorId(), location, c == null ? null : c.endpoint(), data.val().length);
  }

  private static RankReply steps(String runId, int r, RankState st, Steps s) throws Exception {
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
      try {
        rep = t.step(c, c);
      } catch (Trainer.DivergenceException e) {
        return RankReply.stepped(r, r == 0 ? results : List.of(), e);
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
    return RankReply.stepped(r, results, null);
  }

  /** The Hadoop configuration an executor sees: defaults plus the application's spark.hadoop.* settings. */
  static Configuration hadoopConf(SparkConf conf) {
    Configuration c = new Configuration();
    for (Tuple2<String, String> kv : conf.getAllWithPrefix("spark.hadoop.")) {
      c.set(kv._1(), kv._2());
    }
    return c;
  }
}
